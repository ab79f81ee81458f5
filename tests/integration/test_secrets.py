"""Secrets never leak: not in task logs, exception messages, XCom or rendered template fields.

The example DAGs run with ``dag.test()`` against the sandbox with three connections (``tls_client_auth``
with key files; ``private_key_jwt`` with key files; ``tls_client_auth`` with PEM text and an encrypted
key plus its passphrase), and also through failing runs (a refused client assertion, a wrong
passphrase). Every access token the authorisation server issued and every client assertion the provider
signed is caught in-process by spies on the token client (the spies only collect; the assertions are
on what Airflow recorded): all captured log records at DEBUG (every logger), everything written to the
process's stdout/stderr, any file under the Airflow home's logs folder, every XCom value, every rendered
template field and every audit-log entry of the run are searched for those tokens and assertions, for
every base64 line of every private key of the sandbox PKI (and the one-line form of each key), and for
the key passphrases.

Then: the hook registers the connection's PEM key text, the passphrase, tokens and client assertions
with Airflow's secret masker (``redact`` hides them), and the transport is safe (the configured CA wins
over ``REQUESTS_CA_BUNDLE`` and friends, verification cannot be switched off, TLS 1.2 is the minimum).
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import stat
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk._shared.secrets_masker import redact

from airflow_provider_raidiam import credentials
from airflow_provider_raidiam.auth.client_auth import PrivateKeyJwt
from airflow_provider_raidiam.auth.token_client import AccessToken, TokenClient
from airflow_provider_raidiam.exceptions import ConfigurationError, DiscoveryError, RaidiamError
from airflow_provider_raidiam.hooks.raidiam import RaidiamHook
from raidiam_sandbox import Sandbox
from raidiam_sandbox.constants import KEY_PASSPHRASE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
REFERENCE_DATE = datetime(2025, 6, 30, 12, tzinfo=UTC)
WRONG_PASSPHRASE = "not-the-passphrase-4f1c9a"


@dataclass
class Issued:
    """Secrets the provider created during a test, caught in-process."""

    tokens: list[str] = field(default_factory=list)
    assertions: list[str] = field(default_factory=list)


@pytest.fixture
def issued(monkeypatch: pytest.MonkeyPatch) -> Issued:
    """Record every access token obtained and every client assertion signed (works in ``dag.test()``,
    which runs the tasks in this process)."""
    caught = Issued()
    real_request = TokenClient._request
    real_fields = PrivateKeyJwt.form_fields

    def request(self: TokenClient) -> AccessToken:
        token = real_request(self)
        caught.tokens.append(token.value)
        return token

    def form_fields(self: PrivateKeyJwt, *, issuer: str, token_endpoint: str) -> dict[str, str]:
        fields = real_fields(self, issuer=issuer, token_endpoint=token_endpoint)
        caught.assertions.append(fields["client_assertion"])
        return fields

    monkeypatch.setattr(TokenClient, "_request", request)
    monkeypatch.setattr(PrivateKeyJwt, "form_fields", form_fields)
    return caught


def key_material(sandbox: Sandbox) -> dict[str, str]:
    """Every private key of the sandbox PKI: each base64 line, the one-line body, and the passphrases."""
    pki = sandbox.pki
    keys = [pki.key(name) for name in ("tls-client", "other-client", "pkj-transport", "expired-client", "ca", "server")]
    keys += [pki.encrypted_key, pki.signing_key("rsa"), pki.signing_key("ec")]
    secrets: dict[str, str] = {"passphrase": KEY_PASSPHRASE, "wrong passphrase": WRONG_PASSPHRASE}
    for path in keys:
        body = [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]
        body = [line for line in body if ":" not in line]  # legacy PEM headers (Proc-Type, DEK-Info)
        secrets[f"{path.name} (one line)"] = "".join(body)
        for number, line in enumerate(body):
            if len(line) >= 16:
                secrets[f"{path.name} line {number + 1}"] = line
    return secrets


@dataclass
class Evidence:
    """Everything Airflow recorded of a run, by where it came from."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, source: str, text: str) -> None:
        self.texts[source] = self.texts.get(source, "") + "\n" + text


def run_evidence(dag_id: str, run_id: str) -> Evidence:
    """XComs, rendered template fields and audit log entries of one run, as text."""
    from airflow.models.log import Log
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    evidence = Evidence()
    with create_session() as session:
        xcoms = session.scalars(select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id))
        for xcom in xcoms:
            evidence.add(f"XCom {xcom.task_id}.{xcom.key}", json.dumps(xcom.value, default=str))
        rendered = session.scalars(
            select(RenderedTaskInstanceFields).where(
                RenderedTaskInstanceFields.dag_id == dag_id, RenderedTaskInstanceFields.run_id == run_id
            )
        )
        for fields in rendered:
            evidence.add(f"rendered fields {fields.task_id}", json.dumps(fields.rendered_fields, default=str))
        for entry in session.scalars(select(Log).where(Log.dag_id == dag_id, Log.run_id == run_id)):
            evidence.add("audit log", f"{entry.event} {entry.extra}")
    return evidence


def log_files(airflow_home: Path) -> str:
    folder = airflow_home / "logs"
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()) if folder.exists() else ""


_RUNS = (re.compile(r"[A-Za-z0-9_-]{24,}"), re.compile(r"[A-Za-z0-9+/]{24,}"))
"""Runs of base64url (JWT) and base64 (PEM) characters: a secret's fragment shows up as (part of) one."""


def assert_no_secret(evidence: Evidence, secrets: dict[str, str]) -> None:
    """No secret in any source, whole or in part (any 24+ character base64 run that is part of one)."""
    wholes = {name: secret for name, secret in secrets.items() if " line " not in name and len(secret) >= 24}
    leaks = []
    for source, text in evidence.texts.items():
        leaks += [f"{name} in {source}" for name, secret in secrets.items() if secret in text]
        runs = {run for pattern in _RUNS for run in pattern.findall(text)}
        leaks += [
            f"{len(run)} characters of {name} in {source}"
            for run in runs
            for name, secret in wholes.items()
            if run in secret
        ]
    assert not leaks, sorted(set(leaks))[:20]


class PemFileSpy:
    """Stands in for ``os`` inside ``credentials``: records the mode of every PEM temp file it creates
    (the file's own mode, read back, and its directory's)."""

    def __init__(self) -> None:
        self.created: list[tuple[str, int, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def open(self, path: str, flags: int, mode: int = 0o777) -> int:
        descriptor = os.open(path, flags, mode)
        file_mode = stat.S_IMODE(os.fstat(descriptor).st_mode)
        self.created.append((path, file_mode, stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)))
        return descriptor


@dataclass
class DagRunner:
    run: Callable[..., tuple[Any, Evidence]]
    pem_files: PemFileSpy


@pytest.fixture
def run_dag(sandbox: Sandbox, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagRunner]:
    """Run an example DAG with a given sandbox connection; return the run and the DB evidence.

    PEM text temp files go to a private temp folder, checked empty at the end.
    """
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    monkeypatch.setenv("AIRFLOW_VAR_RAIDIAM_OUTPUT_ROOT", tmp_path.as_uri())
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    spy = PemFileSpy()
    monkeypatch.setattr(credentials, "os", spy)

    def run(dag_id: str, connection: dict[str, Any], **kwargs: Any) -> tuple[Any, Evidence]:
        monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_DEFAULT", json.dumps(connection))
        dag = bag.get_dag(dag_id)
        dag_run = dag.test(logical_date=REFERENCE_DATE, **kwargs)
        return dag_run, run_evidence(dag_id, dag_run.run_id)

    yield DagRunner(run, spy)
    assert [p.name for p in temp.iterdir() if p.name.startswith("raidiam-")] == [], "PEM temp files left behind"
    for path, file_mode, folder_mode in spy.created:
        assert Path(path).parent.parent == temp
        assert (file_mode, folder_mode) == (0o600, 0o700), path


CONNECTIONS: dict[str, dict[str, Any]] = {
    "tls": {"client": "tls"},
    "pkj": {"client": "pkj"},
    "tls-pem-text-encrypted-key": {"client": "tls", "pem_text": True, "encrypted_key": True},
}


@pytest.mark.parametrize("variant", list(CONNECTIONS))
def test_example_dags_leak_no_secret(
    sandbox: Sandbox,
    run_dag: DagRunner,
    issued: Issued,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    airflow_db: Path,
    variant: str,
) -> None:
    caplog.set_level(0)  # every record of every logger
    sandbox.reset_stats()
    connection = sandbox.connection(**CONNECTIONS[variant])
    evidence = Evidence()
    runs = [
        ("raidiam_directory_snapshot", {}),
        ("raidiam_certificate_expiry", {"run_conf": {"days": 30, "fail_when_found": False}}),
        ("raidiam_participants", {}),
    ]
    for dag_id, kwargs in runs:
        dag_run, recorded = run_dag.run(dag_id, connection, **kwargs)
        assert dag_run.state == "success", dag_id
        evidence.texts.update({f"{dag_id}: {k}": v for k, v in recorded.texts.items()})

    out, err = capfd.readouterr()
    evidence.add("stdout", out)
    evidence.add("stderr", err)
    evidence.add("log records", caplog.text)
    evidence.add("log records", "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records))
    evidence.add("log files", log_files(airflow_db))
    assert "Obtained an access token" in evidence.texts["log records"], "the logs were captured"
    assert any(k.startswith("raidiam_directory_snapshot: XCom") for k in evidence.texts)
    assert any(k.startswith("raidiam_directory_snapshot: rendered fields") for k in evidence.texts)

    secrets = key_material(sandbox)
    assert issued.tokens, "the spy saw the tokens of the run"
    assert len(issued.tokens) == sandbox.as_stats()["token_requests"], "every token issued was caught"
    secrets.update({f"access token {n}": token for n, token in enumerate(issued.tokens)})
    if CONNECTIONS[variant]["client"] == "pkj":
        assert issued.assertions
        secrets.update({f"client assertion {n}": value for n, value in enumerate(issued.assertions)})
    assert_no_secret(evidence, secrets)
    assert bool(run_dag.pem_files.created) is bool(CONNECTIONS[variant].get("pem_text")), "PEM text went to files"


@pytest.mark.parametrize(
    ("variant", "overrides", "message"),
    [
        ("pkj-refused", {"client": "pkj", "assertion_audience": "https://wrong.example/token"}, "invalid_client"),
        (
            "wrong-passphrase",
            {"client": "tls", "pem_text": True, "encrypted_key": True, "password": WRONG_PASSPHRASE},
            "passphrase (connection Password) is wrong",
        ),
    ],
    ids=["pkj-refused", "wrong-passphrase"],
)
def test_failing_runs_leak_no_secret(
    sandbox: Sandbox,
    run_dag: DagRunner,
    issued: Issued,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    airflow_db: Path,
    variant: str,
    overrides: dict[str, Any],
    message: str,
) -> None:
    caplog.set_level(0)
    overrides = dict(overrides)
    connection = sandbox.connection(overrides.pop("client"), **overrides)
    dag_run, evidence = run_dag.run("raidiam_directory_snapshot", connection)
    assert dag_run.state == "failed"
    out, err = capfd.readouterr()
    evidence.add("stdout", out)
    evidence.add("stderr", err)
    evidence.add("log records", caplog.text)
    evidence.add("log files", log_files(airflow_db))
    everything = "\n".join(evidence.texts.values())
    assert message in everything, "the error and its traceback were logged"
    secrets = key_material(sandbox)
    secrets.update({f"client assertion {n}": value for n, value in enumerate(issued.assertions)})
    if variant == "pkj-refused":
        assert issued.assertions, "assertions were signed and sent (and refused)"
    assert_no_secret(evidence, secrets)


# ---- typed errors never carry secrets --------------------------------------------------------------


def error_of(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, client: str, call: str, **overrides: Any
) -> RaidiamError:
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_ERR", sandbox.connection_uri_env(client, **overrides))
    hook = RaidiamHook(raidiam_conn_id="raidiam_err")
    action: Callable[[], object] = hook.get_access_token if call == "token" else lambda: hook.request("GET", call)
    try:
        with pytest.raises(RaidiamError) as caught:
            action()
        return caught.value
    finally:
        hook.close()


def test_typed_errors_carry_no_secret(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, issued: Issued) -> None:
    pki = sandbox.pki
    pasted_key = "".join(pki.key("tls-client").read_text().splitlines()[1:-1])  # without BEGIN/END lines
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("pkj", "token", {"assertion_audience": "https://wrong.example/token"}),
        ("pkj", "token", {"signing_key_id": "no-such-kid", "pem_text": True}),
        ("tls", "token", {"encrypted_key": True, "password": WRONG_PASSPHRASE}),
        ("tls", "token", {"encrypted_key": True, "pem_text": True, "password": WRONG_PASSPHRASE}),
        ("tls", "token", {"encrypted_key": True, "password": None}),
        ("tls", "token", {"transport_private_key": pasted_key}),
        ("tls", "token", {"transport_private_key": pki.key("other-client").read_text()}),
        ("tls", "token", {"transport_cert": pki.key("tls-client").read_text()}),
        ("tls", "token", {"scope": "directory:software openid"}),
        ("other", "token", {"login": "sandbox-tls-client"}),
        ("tls", "/organisations/no-such-org", {}),
    ]
    secrets = key_material(sandbox)
    messages = []
    for client, call, overrides in cases:
        error = error_of(sandbox, monkeypatch, client, call, **overrides)
        messages.append(f"{type(error).__name__}: {error} {error.__dict__!r}")
    secrets.update({f"access token {n}": t for n, t in enumerate(issued.tokens)})
    secrets.update({f"client assertion {n}": a for n, a in enumerate(issued.assertions)})
    assert len(issued.assertions) >= 2
    leaks = [
        f"{name} in {message[:80]}" for name, secret in secrets.items() for message in messages if secret in message
    ]
    assert not leaks, leaks


# ---- the secret masker --------------------------------------------------------------------------


def test_the_hook_masks_pem_key_text_passphrase_tokens_and_assertions(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, issued: Issued
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_MASKED", sandbox.connection_uri_env("pkj", pem_text=True))
    hook = RaidiamHook(raidiam_conn_id="raidiam_masked")
    settings = hook.settings
    assert settings.transport_private_key is not None
    assert settings.signing_private_key is not None
    assert redact(f"transport_private_key={settings.transport_private_key}") == "transport_private_key=***"
    assert redact(f"signing_private_key={settings.signing_private_key}") == "signing_private_key=***"
    token = hook.get_access_token()
    assert redact(f"Bearer {token}") == "Bearer ***"
    (assertion,) = issued.assertions
    assert redact(f"client_assertion={assertion}") == "client_assertion=***"
    hook.close()

    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_ENCRYPTED", sandbox.connection_uri_env("tls", encrypted_key=True))
    encrypted = RaidiamHook(raidiam_conn_id="raidiam_encrypted")
    assert encrypted.settings.key_passphrase == KEY_PASSPHRASE
    assert redact(f"passphrase {KEY_PASSPHRASE}") == "passphrase ***"
    assert redact(f"Bearer {encrypted.get_access_token()}") == "Bearer ***"
    encrypted.close()


# ---- transport security -------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"])
def test_the_configured_ca_wins_over_the_environment(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    # An environment CA that does not trust the sandbox changes nothing...
    monkeypatch.setenv(variable, str(sandbox.pki.foreign_ca_cert))
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_CA", sandbox.connection_uri_env("tls"))
    with RaidiamHook(raidiam_conn_id="raidiam_ca") as hook:
        assert hook.request("GET", "/organisations", params={"page": 0, "size": 1}).status_code == 200
    # ...and one that does trust it cannot rescue a connection whose configured CA does not.
    from airflow_provider_raidiam import discovery

    discovery.clear_cache()
    monkeypatch.setenv(variable, str(sandbox.pki.ca_cert))
    monkeypatch.setenv(
        "AIRFLOW_CONN_RAIDIAM_CA", sandbox.connection_uri_env("tls", ca_bundle=str(sandbox.pki.foreign_ca_cert))
    )
    with RaidiamHook(raidiam_conn_id="raidiam_ca") as hook, pytest.raises(DiscoveryError, match="SSLError"):
        hook.get_discovery()


@pytest.mark.parametrize(
    "kwargs", [{"verify": False}, {"verify": "/etc/ssl/certs/ca-certificates.crt"}, {"cert": None}]
)
def test_verification_cannot_be_switched_off_per_request(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any]
) -> None:
    sandbox.reset_stats()
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_VERIFY", sandbox.connection_uri_env("tls"))
    with RaidiamHook(raidiam_conn_id="raidiam_verify") as hook:
        hook.get_access_token()
        if kwargs == {"cert": None}:
            kwargs = {"cert": (str(sandbox.pki.cert("other-client")), str(sandbox.pki.key("other-client")))}
        with pytest.raises(ConfigurationError, match="verification cannot be disabled"):
            hook.request("GET", "/organisations", **kwargs)
    assert sandbox.api_stats()["requests"] == 0


@pytest.fixture
def tls11_server(sandbox: Sandbox) -> Iterator[tuple[str, list[str]]]:
    """A TLS server (the sandbox's server certificate) that speaks at most TLS 1.1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.load_cert_chain(sandbox.pki.server_cert, sandbox.pki.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    outcomes: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    outcomes.append(str(tls.version()))
                    tls.recv(65536)
                    body = b'{"issuer": "x"}'
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except (ssl.SSLError, OSError) as error:
                outcomes.append(f"refused: {error}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}", outcomes
    stop.set()
    thread.join()
    listener.close()


def test_tls_1_1_servers_are_refused(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tls11_server: tuple[str, list[str]]
) -> None:
    url, outcomes = tls11_server
    # Control: a client that allows TLS 1.1 does get through, so the server itself works.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
        permissive.minimum_version = ssl.TLSVersion.TLSv1
    permissive.load_verify_locations(sandbox.pki.ca_cert)
    raw = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    with permissive.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() == "TLSv1.1"
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        tls.recv(1024)
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_OLD_TLS", sandbox.connection_uri_env("tls", host=url))
    with RaidiamHook(raidiam_conn_id="raidiam_old_tls") as hook, pytest.raises(DiscoveryError, match="SSLError"):
        hook.get_discovery()
    assert outcomes[0] == "TLSv1.1"
    assert outcomes[1:], "the provider's client reached the server"
    assert all(outcome.startswith("refused") for outcome in outcomes[1:]), outcomes
    for context in (hook.client.tls.server_only_context, hook.client.tls.mtls_context):
        assert context is not None
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
