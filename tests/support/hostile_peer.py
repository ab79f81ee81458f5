"""A hostile TLS peer for tests: a small HTTPS server on loopback that records everything it receives.

The provider must never send its credentials (Bearer token, client assertion, client certificate) to a
host it was not configured for, and must survive whatever a server answers. Tests prove both from the
*server's* side with this peer:

* it listens on a loopback address of its own (``127.0.0.2`` by default; another port or address counts
  as another host), with a server certificate issued by the test CA, so the provider's verifying client
  trusts it exactly as it trusts the real sandbox;
* it asks for a client certificate (optional), so a client that would present its transport certificate
  does, and the certificate's ``x5t#S256`` thumbprint is recorded;
* it records every TCP connection, TLS handshake, request line, header (incl. ``Authorization``) and body,
  and how each answer went (:class:`Answer`: bytes sent, or the client hung up before the end);
* it answers with a scripted :class:`Reply`: status, headers, body, and hostile behaviours (redirects,
  a body dripped slowly, a gzip bomb, a huge streamed body, raw bytes).

Typical use, with the ``hostile_peer`` fixture of ``tests/conftest.py`` (a factory)::

    def test_no_token_to_another_host(hostile_peer, sandbox):
        peer = hostile_peer(sandbox.pki)                       # https://127.0.0.2:<port>, CA = sandbox CA
        peer.respond(Reply.json({"data": []}))                 # or a function of the Received request
        ...                                                    # make the provider misbehave
        peer.assert_untouched()                                # no TCP connection at all
        assert peer.bearer_tokens == [] and peer.client_certificates == []

Only for tests: the peer's private key and certificate live in a temporary directory removed by
:meth:`HostilePeer.stop`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
import ipaddress
import json
import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_RECORDED_BODY = 1 << 20
"""Request bodies are recorded up to this many bytes (the rest is read and dropped)."""


class CertificateAuthority(Protocol):
    """What the peer needs from a test PKI (``SandboxPki`` of the sandbox has both)."""

    @property
    def ca_cert(self) -> Path: ...

    @property
    def ca_key(self) -> Path: ...


def thumbprint(der: bytes) -> str:
    """``x5t#S256`` of a DER certificate: base64url (no padding) of its SHA-256."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


# -- what the peer received ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """One TCP connection accepted by the peer, and how its TLS handshake went."""

    number: int
    client_address: tuple[Any, ...]
    handshake_ok: bool
    client_certificate: str | None
    """``x5t#S256`` thumbprint of the certificate the client presented, if any."""
    tls_version: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Received:
    """One HTTP request as the peer received it (over a completed TLS handshake)."""

    connection: int
    method: str
    target: str
    """The request target exactly as sent (path and query)."""
    request_line: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    client_certificate: str | None

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), or ``None``."""
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)

    @property
    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer ...`` header, if one was sent."""
        value = self.header("Authorization") or ""
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    @property
    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded`` (first value of each field)."""
        fields = parse_qs(self.body.decode("latin-1"), keep_blank_values=True)
        return {name: values[0] for name, values in fields.items()}

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.partition("?")[0]


@dataclass(frozen=True)
class Answer:
    """How the peer's answer to one request went: did the client take all of it?"""

    request: int
    """Index of the request in :attr:`HostilePeer.requests`."""
    bytes_sent: int
    """Bytes of the body (or of ``raw``) written before the answer ended."""
    completed: bool
    """``False`` when the client closed the connection (or the peer stopped) before the answer was complete."""
    error: str | None = None


# -- what the peer answers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A scripted response. Build one with the class methods, or directly for anything unusual.

    :param status: HTTP status code.
    :param headers: response headers; ``Content-Length`` is added for a ``bytes`` body unless given.
    :param body: bytes, or a function returning an iterator of byte chunks (streamed, never held whole).
    :param chunk_delay: seconds to wait before each chunk after the first (a dripping server).
    :param raw: bytes written to the socket instead of an HTTP response (malformed-server behaviours).
    :param close: close the connection after this reply.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | Callable[[], Iterator[bytes]] = b""
    chunk_delay: float = 0.0
    raw: bytes | None = None
    close: bool = False

    @classmethod
    def json(cls, document: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        """A JSON document."""
        return cls(
            status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(document).encode("utf-8")
        )

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Reply:
        """A redirect (301/302/303/307/308) to ``location``."""
        return cls(status, {"Location": location, "Content-Type": "application/json"}, b'{"moved": true}')

    @classmethod
    def drip(cls, body: bytes, *, every: float = 1.0, chunk: int = 1, content_type: str = "application/json") -> Reply:
        """``body`` sent ``chunk`` bytes at a time, one chunk every ``every`` seconds (Content-Length set)."""

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), chunk):
                yield body[start : start + chunk]

        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        return cls(200, headers, chunks, chunk_delay=every)

    @classmethod
    def gzip_bomb(cls, inflated_size: int, *, prefix: bytes = b'{"data": "') -> Reply:
        """A small ``Content-Encoding: gzip`` body inflating to ``inflated_size`` bytes (``prefix`` then zeros)."""
        return cls(
            200,
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            _gzip_of_zeros(inflated_size, prefix),
        )

    @classmethod
    def huge(
        cls, size: int, *, content_length: bool = True, prefix: bytes = b'{"data": "', chunk_size: int = 1 << 16
    ) -> Reply:
        """A ``size``-byte JSON-looking body, streamed (``prefix`` then zeros); close-delimited without length."""

        def chunks() -> Iterator[bytes]:
            yield prefix
            remaining = size - len(prefix)
            block = b"0" * chunk_size
            while remaining > 0:
                yield block[: min(chunk_size, remaining)]
                remaining -= chunk_size

        headers = {"Content-Type": "application/json"}
        if content_length:
            headers["Content-Length"] = str(size)
        return cls(200, headers, chunks, close=not content_length)

    @classmethod
    def drip_raw(cls, data: bytes, *, every: float = 1.0) -> Reply:
        """``data`` written as is (status line and headers included), one byte every ``every`` seconds."""
        return cls(raw=data, chunk_delay=every, close=True)

    @classmethod
    def raw_bytes(cls, data: bytes) -> Reply:
        """``data`` written as is (no status line or headers added), then the connection closed."""
        return cls(raw=data, close=True)


@functools.lru_cache(maxsize=4)
def _gzip_of_zeros(size: int, prefix: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(prefix)]
    block = b"0" * (1 << 20)
    remaining = size - len(prefix)
    while remaining > 0:
        parts.append(compressor.compress(block[: min(len(block), remaining)]))
        remaining -= len(block)
    parts.append(compressor.flush())
    return b"".join(parts)


Handler = Callable[[Received], Reply]


# -- the server ---------------------------------------------------------------------------------------


class HostilePeer:
    """A threaded HTTPS server on a loopback address that records what it receives and answers as scripted.

    :param ca: the test PKI whose CA issues the peer's server certificate (``ca_cert``/``ca_key`` paths).
    :param host: loopback address to listen on (``127.0.0.2``: a host the provider was never configured for).
    :param port: port to listen on; 0 picks a free one.
    :param request_client_certificate: ask clients for a certificate (verified against ``ca``'s CA).
    :param reply: the answer to every request, or a function of the :class:`Received` request.
    """

    def __init__(
        self,
        ca: CertificateAuthority,
        host: str = "127.0.0.2",
        *,
        port: int = 0,
        request_client_certificate: bool = True,
        reply: Reply | Handler | None = None,
    ) -> None:
        self.host = host
        self._ca = ca
        self._request_client_certificate = request_client_certificate
        self._handler: Handler = _as_handler(reply or Reply.json({"hostile": True}))
        self._lock = threading.Lock()
        self._connections: list[Connection] = []
        self._requests: list[Received] = []
        self._answers: list[Answer] = []
        self._stopping = threading.Event()
        self._open_sockets: set[ssl.SSLSocket] = set()
        self._accepted: list[tuple[Any, ...]] = []
        self._sentinels: set[tuple[Any, ...]] = set()
        self._workdir = Path(tempfile.mkdtemp(prefix="hostile-peer-"))
        self._server = _Server(self, (host, port))
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> HostilePeer:
        """Start serving in a background thread; returns ``self``."""
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"hostile-peer-{self.port}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end dripping replies and remove the peer's key material."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
        with self._lock:
            for open_socket in self._open_sockets:
                with contextlib.suppress(OSError):
                    open_socket.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._server.server_close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> HostilePeer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addressing --

    @property
    def netloc(self) -> str:
        """``host:port`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The peer's base URL, ``https://host:port`` (no trailing slash)."""
        return f"https://{self.netloc}"

    def url_for(self, path: str = "/") -> str:
        """Absolute URL of ``path`` on the peer."""
        return f"{self.url}/{path.lstrip('/')}"

    # -- scripting --

    def respond(self, reply: Reply | Handler) -> None:
        """Answer every further request with ``reply`` (or the function's result for each request)."""
        self._handler = _as_handler(reply)

    def reset(self) -> None:
        """Forget everything received so far."""
        self.settle()
        with self._lock:
            self._connections.clear()
            self._requests.clear()
            self._answers.clear()
            self._accepted.clear()

    # -- evidence --

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until every connection made before this call is accepted and its handshake recorded.

        A client may give up before the peer's threads have seen its connection (a refused handshake);
        a sentinel connection of our own, accepted after it, proves the queue is drained.
        """
        if self._stopping.is_set():
            return
        with socket.create_connection((self.host, self.port), timeout=timeout) as sentinel:
            address = sentinel.getsockname()
            with self._lock:
                self._sentinels.add(address)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with self._lock:
                    accepted = [a for a in self._accepted if a not in self._sentinels]
                    recorded = {c.client_address for c in self._connections}
                    if address in self._accepted and all(a in recorded for a in accepted):
                        return
                time.sleep(0.005)
        raise AssertionError(f"the hostile peer {self.url} did not settle within {timeout}s")

    @property
    def connections(self) -> list[Connection]:
        """Every TCP connection accepted so far (with or without a completed handshake)."""
        self.settle()
        with self._lock:
            return [c for c in self._connections if c.client_address not in self._sentinels]

    @property
    def requests(self) -> list[Received]:
        """Every HTTP request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def answers(self) -> list[Answer]:
        """How each answer went (recorded when it ends), in the order the answers ended."""
        with self._lock:
            return list(self._answers)

    def wait_for_answers(self, count: int, timeout: float = 60.0) -> list[Answer]:
        """Wait until at least ``count`` answers ended (a dripping answer ends when the client hangs up)."""
        deadline = time.monotonic() + timeout
        while len(self.answers) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.answers

    @property
    def bearer_tokens(self) -> list[str]:
        """Bearer tokens received (one entry per request that carried one)."""
        return [token for request in self.requests if (token := request.bearer_token) is not None]

    @property
    def client_certificates(self) -> list[str]:
        """Thumbprints of the client certificates presented (one entry per handshake that presented one)."""
        return [c.client_certificate for c in self.connections if c.client_certificate is not None]

    @property
    def client_assertions(self) -> list[str]:
        """``client_assertion`` form fields received (token requests re-posted to the peer)."""
        return [r.form["client_assertion"] for r in self.requests if "client_assertion" in r.form]

    def assert_untouched(self) -> None:
        """Fail unless the peer received no connection at all (no handshake, no request, no credential)."""
        connections, requests = self.connections, self.requests
        assert not connections, (
            f"the hostile peer {self.url} was contacted: {len(connections)} connection(s), "
            f"{len(requests)} request(s) {[r.request_line for r in requests]}, "
            f"{len(self.bearer_tokens)} bearer token(s), {len(self.client_certificates)} client certificate(s)"
        )

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until at least ``count`` requests arrived (for clients that do not wait for the answer)."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.requests

    # -- internals used by the server --

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """The server-side TLS context (certificate for :attr:`host`, ``localhost``, 127.0.0.1 and ::1)."""
        cert_path, key_path = _issue_server_certificate(self._ca, self.host, self._workdir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        if self._request_client_certificate:
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cafile=str(self._ca.ca_cert))
        return context

    def _record_connection(self, connection: Connection) -> None:
        with self._lock:
            self._connections.append(connection)

    def _record_request(self, request: Received) -> int:
        with self._lock:
            self._requests.append(request)
            return len(self._requests) - 1

    def _record_answer(self, answer: Answer) -> None:
        with self._lock:
            self._answers.append(answer)

    def _connection_number(self, client_address: tuple[Any, ...]) -> int:
        with self._lock:
            return self._accepted.index(client_address) if client_address in self._accepted else -1

    def _answer(self, request: Received) -> Reply:
        return self._handler(request)


def _as_handler(reply: Reply | Handler) -> Handler:
    if isinstance(reply, Reply):
        return lambda _request: reply
    return reply


def _issue_server_certificate(ca: CertificateAuthority, host: str, directory: Path) -> tuple[Path, Path]:
    ca_cert = x509.load_pem_x509_certificate(Path(ca.ca_cert).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(ca.ca_key).read_bytes(), password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for address in {host, "127.0.0.1", "::1"}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"hostile peer {host}")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "peer.pem", directory / "peer.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, peer: HostilePeer, address: tuple[str, int]) -> None:
        self.peer = peer
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, socketserver.BaseRequestHandler)  # unused: finish_request builds the handler

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Runs in the accepting thread, in accept order: the record that a connection arrived."""
        with self.peer._lock:
            self.peer._accepted.append(client_address)
        return True

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in the connection's own thread, recorded whether it succeeds or not."""
        peer = self.peer
        number = peer._connection_number(client_address)
        request.settimeout(30)
        try:
            tls = peer.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            peer._record_connection(Connection(number, client_address, False, None, error=repr(error)))
            return
        der = tls.getpeercert(binary_form=True)
        peer._record_connection(
            Connection(number, client_address, True, thumbprint(der) if der else None, tls.version())
        )
        with peer._lock:
            peer._open_sockets.add(tls)
        try:
            _RequestHandler(tls, client_address, self, number, thumbprint(der) if der else None)
        finally:
            with peer._lock:
                peer._open_sockets.discard(tls)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def __init__(self, request: Any, client_address: Any, server: _Server, number: int, cert: str | None) -> None:
        self.connection_number = number
        self.client_certificate = cert
        super().__init__(request, client_address, server)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the record is the log."""

    def _serve(self) -> None:
        peer = self.server.peer
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_RECORDED_BODY)) if length else b""
        if length > MAX_RECORDED_BODY:
            self.rfile.read(length - MAX_RECORDED_BODY)
        received = Received(
            connection=self.connection_number,
            method=self.command,
            target=self.path,
            request_line=self.requestline,
            headers=tuple(self.headers.items()),
            body=body,
            client_certificate=self.client_certificate,
        )
        index = peer._record_request(received)
        reply = peer._answer(received)
        sent = [0]
        try:
            completed = self._write(reply, peer._stopping, sent)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError) as error:
            self.close_connection = True
            peer._record_answer(Answer(index, sent[0], completed=False, error=repr(error)))
        else:
            peer._record_answer(Answer(index, sent[0], completed=completed))

    def _write(self, reply: Reply, stopping: threading.Event, sent: list[int]) -> bool:
        """Write ``reply``, counting body bytes in ``sent[0]``; ``False`` if the peer stopped first."""
        if reply.raw is not None:
            self.close_connection = True
            step = 1 if reply.chunk_delay else len(reply.raw)
            for start in range(0, len(reply.raw), step):
                if start and reply.chunk_delay and stopping.wait(reply.chunk_delay):
                    return False
                self.wfile.write(reply.raw[start : start + step])
                self.wfile.flush()
                sent[0] += len(reply.raw[start : start + step])
            return True
        self.send_response_only(reply.status)
        headers = dict(reply.headers)
        if isinstance(reply.body, bytes) and not any(k.lower() == "content-length" for k in headers):
            headers["Content-Length"] = str(len(reply.body))
        if reply.close or not any(k.lower() == "content-length" for k in headers):
            headers["Connection"] = "close"
            self.close_connection = True
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return True
        chunks: Iterable[bytes] = [reply.body] if isinstance(reply.body, bytes) else reply.body()
        for index, chunk in enumerate(chunks):
            if index and reply.chunk_delay and stopping.wait(reply.chunk_delay):
                self.close_connection = True
                return False
            self.wfile.write(chunk)
            self.wfile.flush()
            sent[0] += len(chunk)
        return True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve
