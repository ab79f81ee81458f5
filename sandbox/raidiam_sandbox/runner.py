"""Start and stop the local sandbox: the authorisation server (node ``oidc-provider``) and the Directory emulator.

Authorisation server config (JSON file given to ``node server.mjs <config>``)::

    {
      "host": "127.0.0.1",            # the only address ever bound
      "issuer_port": 0, "mtls_port": 0,  # 0 = any free port
      "server_cert": path, "server_key": path,  # TLS server certificate for both listeners
      "ca_cert": path,                # CA the mTLS listener trusts for client certificates
      "signing_jwks": path,           # private JWK Set of the AS's token-signing key
      "audience": DIRECTORY_AUDIENCE, "scopes": [...],
      "access_token_ttl": 300,        # seconds
      "clients": [ ...oidc-provider client metadata... ],
      "ready_file": path,             # written once listening: {"issuer", "mtls_base_url", "pid"}
      "exit_on_stdin_eof": true       # optional: exit when stdin closes (the parent holds it open)
    }

Both servers expose ``/__sandbox/stats``, ``/__sandbox/reset`` and ``/__sandbox/faults`` admin endpoints
(loopback only, no auth) that the methods of :class:`Sandbox` call.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Literal

import requests

from raidiam_sandbox.constants import (
    DIRECTORY_AUDIENCE,
    HOST,
    KEY_PASSPHRASE,
    OTHER_CLIENT_ID,
    PKJ_CLIENT_ID,
    PKJ_EC_CLIENT_ID,
    SCOPES,
    TLS_CLIENT_ID,
)
from raidiam_sandbox.pki import SandboxPki

AUTHSERVER_DIR: Final = Path(__file__).resolve().parent / "authserver"
DIRECTORY_MODULE: Final = "raidiam_sandbox.directory_api"
NPM_CACHE_ENV: Final = "RAIDIAM_SANDBOX_NPM_CACHE"
"""Environment variable naming the directory of the npm package cache (see :func:`prepare_authserver`)."""
_STAMP = ".raidiam-sandbox-lock.sha256"
_SOURCE_ROOT = Path(__file__).resolve().parents[1]


class SandboxError(RuntimeError):
    """The sandbox could not be prepared or started."""


@dataclass(frozen=True)
class _ClientSpec:
    client_id: str
    auth_method: str
    transport: str
    signing: Literal["rsa", "ec"] | None = None
    signing_alg: str | None = None


CLIENTS: Final = {
    "tls": _ClientSpec(TLS_CLIENT_ID, "tls_client_auth", "tls-client"),
    "other": _ClientSpec(OTHER_CLIENT_ID, "tls_client_auth", "other-client"),
    "pkj": _ClientSpec(PKJ_CLIENT_ID, "private_key_jwt", "pkj-transport", "rsa", "PS256"),
    "pkj-ec": _ClientSpec(PKJ_EC_CLIENT_ID, "private_key_jwt", "pkj-transport", "ec", "ES256"),
}
"""The sandbox's registered clients, by the short name :meth:`Sandbox.connection` takes."""


def client_metadata(pki: SandboxPki) -> list[dict[str, Any]]:
    """oidc-provider metadata of the sandbox clients (see :data:`CLIENTS`)."""
    common = {
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
        "scope": " ".join(SCOPES),
    }
    clients: list[dict[str, Any]] = []
    for spec in CLIENTS.values():
        meta: dict[str, Any] = {
            **common,
            "client_id": spec.client_id,
            "token_endpoint_auth_method": spec.auth_method,
        }
        if spec.auth_method == "tls_client_auth":
            meta["tls_client_auth_subject_dn"] = pki.subject_dn(spec.transport)
            meta["tls_client_certificate_bound_access_tokens"] = True
        else:
            assert spec.signing is not None
            meta["jwks"] = {"keys": [pki.signing_jwk(spec.signing)]}
            # The RSA client is left unpinned so both PS256 and RS256 assertions are accepted.
            if spec.signing == "ec":
                meta["token_endpoint_auth_signing_alg"] = "ES256"  # noqa: S105 - an algorithm name
        clients.append(meta)
    return clients


# ---- node and npm ---------------------------------------------------------------------------------


def min_node_major() -> int:
    """The oldest Node.js major version the authorisation server supports: ``engines.node`` (``>=N...``)
    of its ``package.json``, the one place that says it (``scripts/bootstrap.sh`` reads it too)."""
    engines = json.loads((AUTHSERVER_DIR / "package.json").read_text())["engines"]["node"]
    match = re.fullmatch(r">=\s*(\d+)(\.\d+)*", engines.strip())
    if match is None:
        raise SandboxError(f"engines.node in {AUTHSERVER_DIR / 'package.json'} must read '>=N', not {engines!r}.")
    return int(match.group(1))


def check_node(node: str | None = None) -> str:
    """Return the path of a usable ``node`` (at least :func:`min_node_major`).

    :raises SandboxError: node is missing or too old.
    """
    minimum = min_node_major()
    path = node or shutil.which("node")
    if path is None:
        raise SandboxError(
            f"Node.js {minimum}+ is needed to run the sandbox authorisation server (node oidc-provider), "
            "but no 'node' is on PATH. Install Node.js (e.g. 'apt-get install nodejs npm') or pass node=..."
        )
    try:
        version = subprocess.run(
            [path, "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise SandboxError(f"Could not run {path!r} --version: {exc}") from exc
    if major < minimum:
        raise SandboxError(
            f"Node.js {version} at {path} is too old for the sandbox authorisation server: it needs Node.js "
            f"{minimum} or later."
        )
    return path


def npm_cache_dir() -> Path:
    """Where the authorisation server's npm packages are installed, one directory per lockfile digest:
    ``$RAIDIAM_SANDBOX_NPM_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/raidiam-sandbox/npm``."""
    configured = os.environ.get(NPM_CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "raidiam-sandbox" / "npm"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_authserver(node: str, run_dir: Path, log_path: Path) -> Path:
    """Make sure the authorisation server's npm packages are installed; return the directory to run
    ``server.mjs`` from.

    The packages go into ``<npm_cache_dir()>/<lockfile digest>/node_modules`` (``npm ci``, once per
    lockfile, under a file lock so that concurrent test runs do not race), never into the installed
    package. ``run_dir`` (one per sandbox) gets a copy of ``server.mjs`` and a ``node_modules`` link to
    the cache, so a sandbox always runs its own version of the server.
    """
    lock = (AUTHSERVER_DIR / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock).hexdigest()[:16]
    install_dir = npm_cache_dir() / digest
    if not _installed(install_dir, digest):
        with _file_lock(npm_cache_dir() / f"{digest}.lock"):
            if not _installed(install_dir, digest):
                install_dir.mkdir(parents=True, exist_ok=True)
                for name in ("package.json", "package-lock.json"):
                    shutil.copyfile(AUTHSERVER_DIR / name, install_dir / name)
                _npm_ci(node, install_dir, log_path)
                (install_dir / "node_modules" / _STAMP).write_text(digest)
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(AUTHSERVER_DIR / "server.mjs", run_dir / "server.mjs")
    link = run_dir / "node_modules"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(install_dir / "node_modules", target_is_directory=True)
    return run_dir


def _installed(directory: Path, digest: str) -> bool:
    stamp = directory / "node_modules" / _STAMP
    return stamp.is_file() and stamp.read_text().strip() == digest


def _npm_ci(node: str, directory: Path, log_path: Path) -> None:
    npm = shutil.which("npm", path=os.pathsep.join([str(Path(node).parent), os.environ.get("PATH", "")]))
    if npm is None:
        raise SandboxError(
            f"npm is needed once to install the sandbox authorisation server's dependencies in {directory}, "
            "but it is not on PATH. Install npm (it comes with Node.js) and try again."
        )
    with log_path.open("ab") as log:
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=900,
            check=False,
        )
    if result.returncode != 0:
        raise SandboxError(
            f"'npm ci' failed in {directory} (exit {result.returncode}); see {log_path}:\n{_tail(log_path)}"
        )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---- the sandbox ----------------------------------------------------------------------------------


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]


class Sandbox:
    """The local sandbox: a real oidc-provider authorisation server plus the Directory API emulator.

    Use as a context manager (or call :meth:`start` / :meth:`stop`)::

        with Sandbox(".sandbox", organisations=300) as sb:
            conn = sb.connection("tls")

    Everything lives in ``state_dir``: the test PKI (``pki/``), configs, ready files and the servers'
    logs (``authserver.log``, ``directory.log``). Both child processes are stopped on exit.
    """

    def __init__(
        self,
        state_dir: Path | str = ".sandbox",
        *,
        seed: int = 7,
        organisations: int = 2000,
        latency_ms: int = 0,
        access_token_ttl: int = 300,
        directory: bool = True,
        directory_module: str = DIRECTORY_MODULE,
        node: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.seed = seed
        self.organisations = organisations
        self.latency_ms = latency_ms
        self.access_token_ttl = access_token_ttl
        self.with_directory = directory
        self.directory_module = directory_module
        self.node = node
        self.startup_timeout = startup_timeout
        self._children: list[_Child] = []
        self._as_ready: dict[str, Any] | None = None
        self._api_ready: dict[str, Any] | None = None
        self._pki: SandboxPki | None = None
        self._session: requests.Session | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Sandbox:
        """Generate/load the PKI, install node deps if needed, start both servers and wait until ready.

        :raises SandboxError: something could not be prepared or a server did not become ready.
        """
        if self._children:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        try:
            self._pki = SandboxPki.generate(self.state_dir / "pki")
            node = check_node(self.node)
            server_dir = prepare_authserver(node, self.state_dir / "authserver", self.state_dir / "npm-install.log")
            self._as_ready = self._start_authserver(node, server_dir)
            if self.with_directory:
                self._api_ready = self._start_directory()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both servers (SIGTERM, then SIGKILL after 10 s). Safe to call more than once."""
        atexit.unregister(self.stop)
        for child in reversed(self._children):
            if child.process.poll() is None:
                child.process.terminate()
                try:
                    child.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait(timeout=10)
            if child.process.stdin is not None:
                child.process.stdin.close()
            child.log.close()
        self._children.clear()
        self._as_ready = self._api_ready = None
        if self._session is not None:
            self._session.close()
            self._session = None

    def _start_authserver(self, node: str, server_dir: Path) -> dict[str, Any]:
        pki = self.pki
        config = {
            "host": HOST,
            "issuer_port": 0,
            "mtls_port": 0,
            "server_cert": str(pki.server_cert),
            "server_key": str(pki.server_key),
            "ca_cert": str(pki.ca_cert),
            "signing_jwks": str(pki.as_signing_jwks),
            "audience": DIRECTORY_AUDIENCE,
            "scopes": list(SCOPES),
            "access_token_ttl": self.access_token_ttl,
            "clients": client_metadata(pki),
            "ready_file": str(self.state_dir / "authserver.ready.json"),
            "exit_on_stdin_eof": True,
        }
        command = [node, str(server_dir / "server.mjs")]
        return self._spawn("authserver", command, config, cwd=server_dir)

    def _start_directory(self) -> dict[str, Any]:
        pki = self.pki
        config = {
            "host": HOST,
            "server_cert": str(pki.server_cert),
            "server_key": str(pki.server_key),
            "ca_cert": str(pki.ca_cert),
            "issuer": self.issuer,
            "audience": DIRECTORY_AUDIENCE,
            "seed": self.seed,
            "organisations": self.organisations,
            "latency_ms": self.latency_ms,
            "ready_file": str(self.state_dir / "directory.ready.json"),
        }
        command = [sys.executable, "-m", self.directory_module, "--config"]
        return self._spawn("directory", command, config, cwd=self.state_dir)

    def _spawn(self, name: str, command: list[str], config: dict[str, Any], cwd: Path) -> dict[str, Any]:
        config_path = self.state_dir / f"{name}.config.json"
        config_path.write_text(json.dumps(config, indent=2))
        ready_file = Path(config["ready_file"])
        ready_file.unlink(missing_ok=True)
        log_path = self.state_dir / f"{name}.log"
        env = dict(os.environ)
        # Let the emulator import this package even when it runs from a source tree.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_SOURCE_ROOT), env.get("PYTHONPATH")) if p)
        log = log_path.open("wb")
        try:
            process = subprocess.Popen(
                [*command, str(config_path)],
                cwd=cwd,
                # Held open while we live: a child may treat EOF on stdin as "parent gone" and exit.
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        except BaseException:
            log.close()
            raise
        self._children.append(_Child(name, process, log_path, log))
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SandboxError(
                    f"The sandbox {name} exited with code {process.returncode} before it was ready; "
                    f"log {log_path}:\n{_tail(log_path)}"
                )
            try:
                ready: dict[str, Any] = json.loads(ready_file.read_text())
                return ready
            except (FileNotFoundError, ValueError):
                time.sleep(0.02)
        raise SandboxError(
            f"The sandbox {name} was not ready after {self.startup_timeout:.0f} s; log {log_path}:\n{_tail(log_path)}"
        )

    # ---- URLs --------------------------------------------------------------------------------------

    @property
    def pki(self) -> SandboxPki:
        """The sandbox's test PKI (available once started)."""
        if self._pki is None:
            raise SandboxError("The sandbox is not started.")
        return self._pki

    @property
    def issuer(self) -> str:
        """Issuer of the authorisation server (its plain-TLS listener)."""
        return str(self._ready(self._as_ready, "authorisation server")["issuer"])

    @property
    def mtls_base_url(self) -> str:
        """Base URL of the authorisation server's mTLS listener (``mtls_endpoint_aliases``)."""
        return str(self._ready(self._as_ready, "authorisation server")["mtls_base_url"])

    @property
    def api_base_url(self) -> str:
        """Base URL of the Directory emulator's protected (mTLS) API."""
        return str(self._ready(self._api_ready, "Directory emulator")["api_base_url"])

    @property
    def public_base_url(self) -> str:
        """Base URL of the Directory emulator's public listener (participants, admin endpoints)."""
        return str(self._ready(self._api_ready, "Directory emulator")["public_base_url"])

    @property
    def participants_url(self) -> str:
        """The public ``/participants`` URL of the Directory emulator."""
        return self.public_base_url + "/participants"

    @staticmethod
    def _ready(info: dict[str, Any] | None, what: str) -> dict[str, Any]:
        if info is None:
            raise SandboxError(f"The sandbox {what} is not running.")
        return info

    # ---- admin endpoints -----------------------------------------------------------------------

    def _admin(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False  # REQUESTS_CA_BUNDLE etc. must not replace the sandbox CA
        response = self._session.request(method, url, json=body, verify=str(self.pki.ca_cert), timeout=30)
        response.raise_for_status()
        return response.json()

    def as_stats(self) -> dict[str, Any]:
        """Counters of the authorisation server (token requests, handshakes, ...)."""
        stats: dict[str, Any] = self._admin("GET", self.issuer + "/__sandbox/stats")
        return stats

    def api_stats(self) -> dict[str, Any]:
        """Counters of the Directory emulator."""
        stats: dict[str, Any] = self._admin("GET", self.public_base_url + "/__sandbox/stats")
        return stats

    def reset_stats(self) -> None:
        """Zero the counters and clear the faults of both servers."""
        self._admin("POST", self.issuer + "/__sandbox/reset")
        if self._api_ready is not None:
            self._admin("POST", self.public_base_url + "/__sandbox/reset")

    def set_as_faults(self, **faults: Any) -> dict[str, Any]:
        """Set authorisation server faults: ``token_ttl`` (s or None), ``token_failures`` (next n token
        requests get 503 ``temporarily_unavailable``), ``token_failure_every`` (n > 0: every n-th token
        request fails the same way; 0 stops it), ``latency_ms``. Unnamed faults keep their value; ``None``
        restores a fault's default. Returns the faults now in force."""
        result: dict[str, Any] = self._admin("PUT", self.issuer + "/__sandbox/faults", faults)
        return result

    def as_faults(self) -> dict[str, Any]:
        """The authorisation server faults in force."""
        result: dict[str, Any] = self._admin("GET", self.issuer + "/__sandbox/faults")
        return result

    def set_api_faults(self, **faults: Any) -> dict[str, Any]:
        """Set Directory emulator faults (``PUT /__sandbox/faults`` with ``faults`` as the JSON body).

        Replaces all faults: ``seed``, ``error_rate`` (statuses from ``error_statuses``), ``rate_limit_rate``,
        ``retry_after`` (``none``/``seconds``/``http-date``) with ``retry_after_seconds``, ``drop_rate``,
        ``latency_ms``, ``mutate_after_requests`` and ``mutate_repeat`` (see
        :mod:`raidiam_sandbox.directory_api`), ``page_totals`` and ``page_shift`` (see
        :mod:`raidiam_sandbox.paging_faults`).
        """
        result: dict[str, Any] = self._admin("PUT", self.public_base_url + "/__sandbox/faults", faults)
        return result

    def set_gateway(self, **limit: Any) -> dict[str, Any]:
        """Set the Directory API gateway's rate limit (``PUT /__sandbox/gateway``; replaces it all).

        ``mode`` (``off``/``fixed-window``/``token-bucket``/``closed``), ``rate``, ``window``, ``burst`` and
        ``retry_after`` (``none``/``seconds``/``http-date``); see :mod:`raidiam_sandbox.gateway`.
        """
        result: dict[str, Any] = self._admin("PUT", self.public_base_url + "/__sandbox/gateway", limit)
        return result

    def gateway(self) -> dict[str, Any]:
        """The gateway's limit, refusal count and request log (``[arrived monotonic, status, connection]``)."""
        result: dict[str, Any] = self._admin("GET", self.public_base_url + "/__sandbox/gateway")
        return result

    def ground_truth(self) -> Any:
        """What the Directory emulator serves, for comparing against what a client read."""
        return self._admin("GET", self.public_base_url + "/__sandbox/ground-truth")

    def change_data(self, **changes: int) -> dict[str, Any]:
        """Change the Directory emulator's data (``POST /__sandbox/changes``) and return what changed.

        See :mod:`raidiam_sandbox.mutations` for the counts and the answer's shape.
        """
        result: dict[str, Any] = self._admin("POST", self.public_base_url + "/__sandbox/changes", changes)
        return result

    def read_counters(self) -> dict[str, Any]:
        """Both servers' counters, each read over a new TLS connection that is closed afterwards.

        Unlike :meth:`as_stats`/:meth:`api_stats` (one keep-alive session), every read costs exactly one
        handshake on the issuer listener and one on the emulator's public listener, which
        :func:`counters_since` removes: handshake counts between two reads are then exact.
        """

        def fresh_get(url: str) -> dict[str, Any]:
            with requests.Session() as session:
                session.trust_env = False
                response = session.get(url, verify=str(self.pki.ca_cert), headers={"Connection": "close"}, timeout=30)
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

        return {
            "as": fresh_get(self.issuer + "/__sandbox/stats"),
            "api": fresh_get(self.public_base_url + "/__sandbox/stats"),
        }

    # ---- Airflow connections ----------------------------------------------------------------

    def connection(
        self,
        client: str = "tls",
        *,
        pem_text: bool = False,
        encrypted_key: bool = False,
        **overrides: Any,
    ) -> dict[str, Any]:
        """A ``raidiam`` Airflow connection (JSON-able dict) for one of the sandbox clients.

        :param client: ``"tls"``, ``"other"``, ``"pkj"`` or ``"pkj-ec"`` (see :data:`CLIENTS`).
        :param pem_text: put PEM text instead of file paths in the certificate and key fields.
        :param encrypted_key: use the passphrase-protected copy of the ``tls-client`` key (the
            passphrase goes in ``password``); only for clients using the ``tls-client`` certificate.
        :param overrides: ``host``/``login``/``password`` replace those fields, anything else is set in
            ``extra`` (``None`` removes an extra).
        """
        try:
            spec = CLIENTS[client]
        except KeyError:
            raise ValueError(f"Unknown sandbox client {client!r}; use one of {sorted(CLIENTS)}.") from None
        pki = self.pki

        def material(path: Path) -> str:
            return path.read_text() if pem_text else str(path)

        key_path = pki.key(spec.transport)
        if encrypted_key:
            if spec.transport != "tls-client":
                raise ValueError("encrypted_key is only available for the tls-client certificate.")
            key_path = pki.encrypted_key
        extra: dict[str, Any] = {
            "auth_method": spec.auth_method,
            "transport_cert": material(pki.cert(spec.transport)),
            "transport_private_key": material(key_path),
            "ca_bundle": material(pki.ca_cert),
            "timeout": 30,
        }
        if spec.signing is not None:
            extra["signing_private_key"] = material(pki.signing_key(spec.signing))
            extra["signing_key_id"] = pki.signing_key_id(spec.signing)
            extra["signing_alg"] = spec.signing_alg
        if self._api_ready is not None:
            extra["api_base_url"] = self.api_base_url
            extra["participants_url"] = self.participants_url
        conn: dict[str, Any] = {"conn_type": "raidiam", "host": self.issuer, "login": spec.client_id}
        if encrypted_key:
            conn["password"] = KEY_PASSPHRASE
        for name, value in overrides.items():
            target = conn if name in ("conn_type", "host", "login", "password") else extra
            if value is None:
                target.pop(name, None)
            else:
                target[name] = value
        conn["extra"] = extra
        return conn

    def connection_uri_env(self, client: str = "tls", **kwargs: Any) -> str:
        """The value for an ``AIRFLOW_CONN_<ID>`` environment variable (Airflow's JSON form)."""
        return json.dumps(self.connection(client, **kwargs))


def counters_since(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What happened between two :meth:`Sandbox.read_counters` reads (the reads' own handshakes removed)."""
    a0, a1, p0, p1 = before["as"], after["as"], before["api"], after["api"]
    handshakes = {
        "as_issuer": a1["tls_handshakes"]["issuer"] - a0["tls_handshakes"]["issuer"] - 1,
        "as_mtls": a1["tls_handshakes"]["mtls"] - a0["tls_handshakes"]["mtls"],
        "api_mtls": p1["tls_handshakes"]["mtls"] - p0["tls_handshakes"]["mtls"],
        "api_public": p1["tls_handshakes"]["public"] - p0["tls_handshakes"]["public"] - 1,
    }
    routes = Counter(p1["requests_by_route"])
    routes.subtract(p0["requests_by_route"])
    statuses = Counter(p1["requests_by_status"])
    statuses.subtract(p0["requests_by_status"])
    return {
        "token_requests": a1["token_requests"] - a0["token_requests"],
        "discovery_requests": a1["discovery_requests"] - a0["discovery_requests"],
        "tls_handshakes": handshakes,
        "tls_handshakes_total": sum(handshakes.values()),
        "api_requests": p1["requests"] - p0["requests"],
        "requests_by_route": {route: n for route, n in sorted(routes.items()) if n},
        "requests_by_status": {status: n for status, n in sorted(statuses.items()) if n},
        "tokens_seen": p1["tokens_seen"] - p0["tokens_seen"],
        "rejected_tokens": p1["rejected_tokens"] - p0["rejected_tokens"],
    }
