"""Every bad input is a typed error whose message names the problem and its fix, and nothing is written.

One parametrised test runs each bad input end to end: an Airflow connection (``AIRFLOW_CONN_*``) of a
sandbox client with one thing wrong, through ``RaidiamDirectoryOperator.execute`` with an ``output_uri``.
Certificates, keys, token requests and Directory calls go to the sandbox's real authorisation server
(oidc-provider) and Directory emulator. What the sandbox cannot produce is served by a small local TLS
stub (the sandbox's own server certificate): broken discovery documents, token-endpoint answers the
real server never gives (``unauthorized_client``: oidc-provider 8.8.1 answers ``invalid_request``
"requested grant type is not allowed for this client" instead; a token bound to another certificate)
and malformed Directory bodies. ``invalid_scope`` comes from the real server: it refuses a scope it
knows (``openid``) that the client is not registered for (unknown scopes it silently drops).

Each case checks the exact exception class, that the message says what is wrong and what to do (the
fragments below are the same text as ``docs/troubleshooting.md``), that it carries no key material, that
nothing was written at the output URI, and, for argument errors, that not a single request was made.
The unit tests check the same messages against stubbed HTTP; these prove them end to end.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from airflow.sdk.log import mask_secret
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from airflow_provider_raidiam.client import RaidiamClient
from airflow_provider_raidiam.exceptions import (
    ApiError,
    BindingError,
    ConfigurationError,
    CredentialError,
    DataIntegrityError,
    DiscoveryError,
    PaginationError,
    RaidiamError,
    ResponseFormatError,
    TokenError,
)
from airflow_provider_raidiam.hooks.raidiam import RaidiamHook
from airflow_provider_raidiam.operators.directory import RaidiamDirectoryOperator
from airflow_provider_raidiam.retry import RetryPolicy
from raidiam_sandbox import Sandbox
from raidiam_sandbox.constants import KEY_PASSPHRASE

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=3, max_elapsed=10.0, initial_wait=0.005, max_wait=0.02)
Reply = tuple[int, dict[str, str], bytes]


def json_reply(body: Any, status: int = 200, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()


def raw_reply(body: str, status: int = 200, content_type: str = "application/json", **headers: str) -> Reply:
    return status, {"Content-Type": content_type, **headers}, body.encode()


class _StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._reply()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._reply()

    def _reply(self) -> None:
        stub: Stub = self.server.stub  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        stub.hits.append(f"{self.command} {path}")
        status, headers, body = stub.routes.get(path, json_reply({"errors": [f"no such resource: {path}"]}, 404))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Stub:
    """A local HTTPS server (the sandbox's server certificate) answering canned replies by path."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.routes: dict[str, Reply] = {}
        self.hits: list[str] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(sandbox.pki.server_cert, sandbox.pki.server_key)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _StubHandler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.stub = self  # type: ignore[attr-defined]
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def stub(sandbox: Sandbox) -> Iterator[Stub]:
    server = Stub(sandbox)
    yield server
    server.close()


@dataclass
class Env:
    """What a case needs to build its connection and its stub replies."""

    sandbox: Sandbox
    stub: Stub
    tmp: Path

    def file(self, name: str, data: bytes | str) -> str:
        path = self.tmp / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    def pem(self, name: str) -> str:
        """Path of a sandbox PKI certificate (``x``) or key (``x.key``)."""
        pki = self.sandbox.pki
        return str(pki.key(name[:-4]) if name.endswith(".key") else pki.cert(name))

    def discovery(self, **overrides: Any) -> Reply:
        """A discovery document served by the stub for issuer = the stub, tokens from the real server."""
        document: dict[str, Any] = {
            "issuer": self.stub.url,
            "token_endpoint": self.sandbox.issuer + "/token",
            "jwks_uri": self.stub.url + "/jwks",
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "tls_client_auth"],
            "mtls_endpoint_aliases": {"token_endpoint": self.sandbox.mtls_base_url + "/token"},
        }
        document.update(overrides)
        return json_reply({key: value for key, value in document.items() if value is not None})

    def token_stub(self, reply: Reply) -> dict[str, Reply]:
        """Discovery whose token endpoint is the stub's ``/token``, answering ``reply``."""
        return {
            "/.well-known/openid-configuration": self.discovery(
                token_endpoint=self.stub.url + "/token", mtls_endpoint_aliases=None
            ),
            "/token": reply,
        }


@dataclass(frozen=True)
class Case:
    """One bad input.

    :param conn: connection overrides (``client`` picks the sandbox client; see ``Sandbox.connection``).
    :param routes: stub replies, by path.
    :param operator: ``RaidiamDirectoryOperator`` arguments (default: ``tables=["organisations"]``).
    :param says: fragments the message must contain: the problem, then the fix.
    :param before_requests: the error comes before any request to either server.
    """

    id: str
    error: type[RaidiamError]
    says: tuple[str, ...]
    conn: Callable[[Env], dict[str, Any]] = lambda env: {}
    routes: Callable[[Env], dict[str, Reply]] = lambda env: {}
    operator: Callable[[Env], dict[str, Any]] = lambda env: {}
    before_requests: bool = False
    skip: str | None = None


def _on_stub(env: Env) -> dict[str, Any]:
    return {"host": env.stub.url}


def _api_on_stub(env: Env) -> dict[str, Any]:
    return {"api_base_url": env.stub.url}


def _pasted_key(env: Env) -> str:
    return "".join(env.sandbox.pki.key("tls-client").read_text().splitlines()[1:-1])


def _unreadable(env: Env) -> str:
    path = env.file("unreadable.key", env.sandbox.pki.key("tls-client").read_bytes())
    os.chmod(path, 0)
    return path


def _der_certificate(env: Env) -> str:
    return env.file("cert.der", env.sandbox.pki.certificate("tls-client").public_bytes(serialization.Encoding.DER))


def _bound_elsewhere(env: Env) -> Reply:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {"exp": now + 300, "cnf": {"x5t#S256": env.sandbox.pki.thumbprint("other-client")}}
    token = jwt.encode(claims, "stub-signing-secret-of-32-bytes!!", algorithm="HS256")
    return json_reply({"access_token": token, "token_type": "Bearer", "expires_in": 300})


_ORG = {"OrganisationId": "org-1", "Status": "Active", "OrganisationName": "Stub Bank"}


def _one_org_envelope() -> Reply:
    return json_reply({"content": [_ORG], "totalPages": 1, "totalSize": 1})


RUNNING_AS_ROOT = os.geteuid() == 0

CASES: list[Case] = [
    # ---- configuration --------------------------------------------------------------------------
    Case(
        "no-client-id",
        ConfigurationError,
        ("has no client_id", "set 'Client ID' (login)"),
        conn=lambda env: {"login": ""},
        before_requests=True,
    ),
    Case(
        "http-issuer",
        ConfigurationError,
        ("must be an https:// URL", "only served over TLS"),
        conn=lambda env: {"host": env.sandbox.issuer.replace("https://", "http://")},
        before_requests=True,
    ),
    Case(
        "unknown-auth-method",
        ConfigurationError,
        ("Unknown auth_method 'client_secret_basic'", "use one of ['tls_client_auth', 'private_key_jwt']"),
        conn=lambda env: {"auth_method": "client_secret_basic"},
        before_requests=True,
    ),
    Case(
        "private-key-jwt-without-signing-key",
        ConfigurationError,
        ("'private_key_jwt' needs a signing key", "set the extra 'signing_private_key'"),
        conn=lambda env: {"client": "pkj", "signing_private_key": None},
        before_requests=True,
    ),
    Case(
        "certificate-without-key",
        ConfigurationError,
        ("only one of transport_cert/transport_private_key", "set transport_private_key too"),
        conn=lambda env: {"transport_private_key": None},
        before_requests=True,
    ),
    Case(
        "page-size-not-a-number",
        ConfigurationError,
        ("'page_size' must be a number, got 'lots'",),
        conn=lambda env: {"page_size": "lots"},
        before_requests=True,
    ),
    Case(
        "no-api-base-url",
        ConfigurationError,
        ("the connection has no api_base_url", "Set the extra 'api_base_url'"),
        conn=lambda env: {"api_base_url": None},
        before_requests=True,
    ),
    # ---- certificates and keys --------------------------------------------------------------------
    Case(
        "missing-certificate-file",
        CredentialError,
        ("transport_cert: file", "does not exist on this worker", "Give a path that exists where the task runs"),
        conn=lambda env: {"transport_cert": str(env.tmp / "no-such.pem")},
        before_requests=True,
    ),
    Case(
        "missing-key-file",
        CredentialError,
        ("transport_private_key: file", "does not exist on this worker", "or put the PEM text itself"),
        conn=lambda env: {"transport_private_key": str(env.tmp / "no-such.key")},
        before_requests=True,
    ),
    Case(
        "missing-ca-file",
        CredentialError,
        ("ca_bundle: file", "does not exist on this worker"),
        conn=lambda env: {"ca_bundle": str(env.tmp / "no-such-ca.pem")},
        before_requests=True,
    ),
    Case(
        "key-path-is-a-directory",
        CredentialError,
        ("transport_private_key:", "is a directory, not a PEM file"),
        conn=lambda env: {"transport_private_key": str(env.tmp)},
        before_requests=True,
    ),
    Case(
        "unreadable-key-file",
        CredentialError,
        ("is not readable by this process (permission denied)", "Make it readable by the Airflow worker's user"),
        conn=lambda env: {"transport_private_key": _unreadable(env)},
        before_requests=True,
        skip="root reads any file" if RUNNING_AS_ROOT else None,
    ),
    Case(
        "certificate-file-not-pem",
        CredentialError,
        ("transport_cert does not contain a PEM certificate", "not the key or a DER/PKCS#12 file"),
        conn=lambda env: {"transport_cert": env.file("cert.txt", "this is not a certificate\n")},
        before_requests=True,
    ),
    Case(
        "certificate-in-der-form",
        CredentialError,
        ("transport_cert does not contain a PEM certificate", "DER/PKCS#12"),
        conn=lambda env: {"transport_cert": _der_certificate(env)},
        before_requests=True,
    ),
    Case(
        "key-file-not-pem",
        CredentialError,
        ("transport_private_key does not contain a PEM private key", "holds the key, not the certificate"),
        conn=lambda env: {
            "transport_private_key": env.file(
                "key.txt", "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
            )
        },
        before_requests=True,
    ),
    Case(
        "key-pasted-without-pem-lines",
        CredentialError,
        ("neither PEM", "not shown here because it may be key material", "BEGIN and END lines included"),
        conn=lambda env: {"transport_private_key": _pasted_key(env)},
        before_requests=True,
    ),
    Case(
        "ca-bundle-not-pem",
        CredentialError,
        ("ca_bundle does not contain any PEM certificate", "Give the ecosystem's CA chain"),
        conn=lambda env: {"ca_bundle": env.file("ca.txt", "not a CA\n")},
        before_requests=True,
    ),
    Case(
        "certificate-given-as-key",
        CredentialError,
        ("transport_private_key does not contain a PEM private key", "not the certificate"),
        conn=lambda env: {"transport_private_key": env.pem("tls-client")},
        before_requests=True,
    ),
    Case(
        "key-given-as-certificate",
        CredentialError,
        ("transport_cert does not contain a PEM certificate", "not the key"),
        conn=lambda env: {"transport_cert": env.pem("tls-client.key")},
        before_requests=True,
    ),
    Case(
        "key-does-not-match-certificate",
        CredentialError,
        (
            "transport_private_key does not match transport_cert",
            "Use the private key generated with this certificate's CSR",
        ),
        conn=lambda env: {"transport_private_key": env.pem("other-client.key")},
        before_requests=True,
    ),
    Case(
        "expired-certificate",
        CredentialError,
        ("transport_cert (", "expired on", "Issue a new transport certificate in the Directory"),
        conn=lambda env: {
            "transport_cert": env.pem("expired-client"),
            "transport_private_key": env.pem("expired-client.key"),
        },
        before_requests=True,
    ),
    Case(
        "not-yet-valid-certificate",
        CredentialError,
        ("is not valid before", "Check the worker's clock"),
        conn=lambda env: {
            "transport_cert": env.pem("not-yet-valid-client"),
            "transport_private_key": env.pem("not-yet-valid-client.key"),
        },
        before_requests=True,
    ),
    Case(
        "wrong-passphrase",
        CredentialError,
        ("transport_private_key could not be decrypted", "the passphrase (connection Password) is wrong"),
        conn=lambda env: {"encrypted_key": True, "password": "not-the-passphrase"},
        before_requests=True,
    ),
    Case(
        "encrypted-key-without-passphrase",
        CredentialError,
        ("transport_private_key is encrypted", "put its passphrase in the connection's Password field"),
        conn=lambda env: {"encrypted_key": True, "password": None},
        before_requests=True,
    ),
    Case(
        "signing-key-unfit-for-algorithm",
        CredentialError,
        ("signing_alg ES256 needs an EC P-256 signing key", "an RSA 2048-bit key", "or change signing_alg"),
        conn=lambda env: {"client": "pkj", "signing_alg": "ES256"},
    ),
    Case(
        "ca-bundle-does-not-trust-the-server",
        DiscoveryError,
        (
            "Could not reach the discovery document",
            "SSLError",
            "ca_bundle (the CA that signed the server's certificate)",
        ),
        conn=lambda env: {"ca_bundle": str(env.sandbox.pki.foreign_ca_cert)},
    ),
    Case(
        "certificate-from-an-untrusted-ca",
        TokenError,
        ("Could not reach the token endpoint", "does not accept transport_cert (wrong CA)"),
        conn=lambda env: {
            "transport_cert": env.pem("foreign-client"),
            "transport_private_key": env.pem("foreign-client.key"),
        },
    ),
    # ---- discovery ----------------------------------------------------------------------------------
    Case(
        "discovery-404",
        DiscoveryError,
        ("answered HTTP 404, not a discovery document", "Check the Issuer URL", "or set discovery_url"),
        conn=_on_stub,
    ),
    Case(
        "discovery-html-page",
        DiscoveryError,
        ("did not return JSON (text/html)", "points at the authorisation server, not a web page"),
        conn=_on_stub,
        routes=lambda env: {
            "/.well-known/openid-configuration": raw_reply(
                "<html><body>Welcome</body></html>", content_type="text/html"
            )
        },
    ),
    Case(
        "discovery-invalid-json",
        DiscoveryError,
        ("did not return JSON (application/json)", "Check that the Issuer URL points at the authorisation server"),
        conn=_on_stub,
        routes=lambda env: {"/.well-known/openid-configuration": raw_reply('{"issuer": "https://127.0.0.1:1", ')},
    ),
    Case(
        "discovery-not-an-object",
        DiscoveryError,
        ("is not a JSON object, so it is not a discovery document", "Check the Issuer URL"),
        conn=_on_stub,
        routes=lambda env: {"/.well-known/openid-configuration": json_reply(["issuer"])},
    ),
    Case(
        "discovery-without-token-endpoint",
        DiscoveryError,
        ("has no token_endpoint", "Check that the Issuer URL is the Directory's authorisation server"),
        conn=_on_stub,
        routes=lambda env: {"/.well-known/openid-configuration": env.discovery(token_endpoint=None)},
    ),
    Case(
        "discovery-issuer-mismatch",
        DiscoveryError,
        ("Issuer mismatch: the connection expects", "Set the connection's Issuer URL to the server's exact issuer"),
        conn=_on_stub,
        routes=lambda env: {"/.well-known/openid-configuration": env.discovery(issuer=env.sandbox.issuer)},
    ),
    Case(
        "discovery-http-token-endpoint",
        DiscoveryError,
        ("token_endpoint is 'http://", "not an https:// URL", "Refusing to send credentials over it"),
        conn=_on_stub,
        routes=lambda env: {
            "/.well-known/openid-configuration": env.discovery(token_endpoint="http://127.0.0.1:1/token")
        },
    ),
    Case(
        "discovery-http-mtls-alias",
        DiscoveryError,
        ("mtls_endpoint_aliases.token_endpoint is 'http://", "not an https:// URL"),
        conn=_on_stub,
        routes=lambda env: {
            "/.well-known/openid-configuration": env.discovery(
                mtls_endpoint_aliases={"token_endpoint": "http://127.0.0.1:1/token"}
            )
        },
    ),
    Case(
        "discovery-redirect-to-another-host",
        DiscoveryError,
        ("redirects to 'https://elsewhere.example/", "redirects are not followed", "Set the Issuer URL"),
        conn=_on_stub,
        routes=lambda env: {
            "/.well-known/openid-configuration": raw_reply(
                "", 302, Location="https://elsewhere.example/.well-known/openid-configuration"
            )
        },
    ),
    Case(
        "discovery-aliases-without-token-endpoint",
        DiscoveryError,
        ("mtls_endpoint_aliases without a token_endpoint alias", "Check the issuer URL"),
        conn=_on_stub,
        routes=lambda env: {
            "/.well-known/openid-configuration": env.discovery(
                mtls_endpoint_aliases={"introspection_endpoint": env.stub.url + "/introspect"}
            )
        },
    ),
    Case(
        "auth-method-not-supported",
        DiscoveryError,
        ("does not support auth_method 'tls_client_auth'", "Change the connection's auth_method"),
        conn=_on_stub,
        routes=lambda env: {
            "/.well-known/openid-configuration": env.discovery(
                token_endpoint_auth_methods_supported=["private_key_jwt"]
            )
        },
    ),
    # ---- token endpoint ----------------------------------------------------------------------------
    Case(
        "invalid-client-wrong-subject-dn",
        TokenError,
        ("invalid_client: client authentication failed", "the server matches its subject DN"),
        conn=lambda env: {
            "transport_cert": env.pem("other-client"),
            "transport_private_key": env.pem("other-client.key"),
        },
    ),
    Case(
        "invalid-client-wrong-audience",
        TokenError,
        ("invalid_client", "aud https://wrong.example/token", "try assertion_audience='token_endpoint'"),
        conn=lambda env: {"client": "pkj", "assertion_audience": "https://wrong.example/token"},
    ),
    Case(
        "invalid-client-wrong-algorithm",
        TokenError,
        ("invalid_client", "alg PS256", "that signing_alg is allowed for the client"),
        conn=lambda env: {
            "client": "pkj-ec",
            "signing_private_key": str(env.sandbox.pki.signing_key("rsa")),
            "signing_alg": "PS256",
        },
    ),
    Case(
        "invalid-client-wrong-key-id",
        TokenError,
        ("invalid_client", "kid no-such-kid", "registered in the client's JWKS under signing_key_id"),
        conn=lambda env: {"client": "pkj", "signing_key_id": "no-such-kid"},
    ),
    Case(
        "invalid-scope",
        TokenError,
        ("invalid_scope: requested scope is not allowed", "Request only scopes the client is registered for"),
        conn=lambda env: {"scope": "directory:software openid"},
    ),
    Case(
        "unauthorized-client",
        TokenError,
        (
            "unauthorized_client: the client_credentials grant is not enabled for this client",
            "check the application's grant types and token endpoint auth method in the Directory",
        ),
        conn=_on_stub,
        routes=lambda env: env.token_stub(
            json_reply(
                {
                    "error": "unauthorized_client",
                    "error_description": "the client_credentials grant is not enabled for this client",
                },
                400,
            )
        ),
    ),
    Case(
        "token-endpoint-not-json",
        TokenError,
        ("HTTP 502 without an OAuth error body", "See the server's description above"),
        conn=_on_stub,
        routes=lambda env: env.token_stub(raw_reply("<html>Bad gateway</html>", 502, content_type="text/html")),
    ),
    Case(
        "token-response-without-access-token",
        TokenError,
        ("HTTP 200 but the body holds no access_token", "is the URL really a token endpoint?"),
        conn=_on_stub,
        routes=lambda env: env.token_stub(json_reply({"token_type": "Bearer"})),
    ),
    Case(
        "token-not-bearer",
        TokenError,
        ("returned an unusable token (token_type 'DPoP')", "expected a Bearer access token"),
        conn=_on_stub,
        routes=lambda env: env.token_stub(json_reply({"access_token": "x" * 40, "token_type": "DPoP"})),
    ),
    # ---- certificate binding ------------------------------------------------------------------------
    Case(
        "token-bound-to-another-certificate",
        BindingError,
        ("The access token is bound to certificate x5t#S256=", "use the same transport certificate"),
        conn=_on_stub,
        routes=lambda env: env.token_stub(_bound_elsewhere(env)),
    ),
    # ---- Directory API ------------------------------------------------------------------------------
    Case(
        "api-body-not-json",
        ResponseFormatError,
        ("returned a body that is not valid JSON (text/html", "truncated or is not from the Directory API"),
        conn=_api_on_stub,
        routes=lambda env: {"/organisations": raw_reply("<html>Maintenance</html>", content_type="text/html")},
    ),
    Case(
        "api-body-truncated",
        ResponseFormatError,
        ("not valid JSON (application/json", "the response was truncated"),
        conn=_api_on_stub,
        routes=lambda env: {"/organisations": raw_reply('{"content": [{"OrganisationId": "org-1", "Sta')},
    ),
    Case(
        "api-malformed-page-envelope",
        ResponseFormatError,
        ("/organisations page 0: malformed page envelope", "expected 'content' (array)"),
        conn=_api_on_stub,
        routes=lambda env: {"/organisations": json_reply({"content": "none", "totalPages": 1, "totalSize": 1})},
    ),
    Case(
        "api-page-count-not-total-size",
        PaginationError,
        ("/organisations page 0: 0 records", "for totalSize 5, so 5 here", "nothing was kept"),
        conn=_api_on_stub,
        routes=lambda env: {"/organisations": json_reply({"content": [], "totalPages": 1, "totalSize": 5})},
    ),
    Case(
        "api-total-pages-not-total-size",
        PaginationError,
        ("page 0 says totalPages 20000 for totalSize 1 in pages of", "no further page was requested"),
        conn=_api_on_stub,
        routes=lambda env: {"/organisations": json_reply({"content": [_ORG], "totalPages": 20000, "totalSize": 1})},
    ),
    Case(
        "api-record-repeated",
        DataIntegrityError,
        ("table organisations: 2 rows share their key (organisation_id)", "Run the task again"),
        conn=_api_on_stub,
        routes=lambda env: {"/organisations": json_reply({"content": [_ORG, _ORG], "totalPages": 1, "totalSize": 2})},
    ),
    Case(
        "api-object-where-array-expected",
        ResponseFormatError,
        ("/authorisationservers", "expected a JSON array of objects, got an object"),
        conn=_api_on_stub,
        routes=lambda env: {
            "/organisations": _one_org_envelope(),
            "/organisations/org-1/authorisationservers": json_reply({"AuthorisationServers": []}),
        },
        operator=lambda env: {"tables": ["authorisation_servers"]},
    ),
    Case(
        "api-403",
        ApiError,
        ("HTTP 403: Access denied to this resource", "The client's scope or roles do not allow this call"),
        conn=_api_on_stub,
        routes=lambda env: {"/organisations": json_reply({"errors": ["Access denied to this resource"]}, 403)},
    ),
    Case(
        "api-401-after-renewal",
        ApiError,
        ("HTTP 401", "The token was refused even after renewal", 'WWW-Authenticate: Bearer error="invalid_token"'),
        conn=_api_on_stub,
        routes=lambda env: {
            "/organisations": json_reply(
                {"errors": ["token rejected"]}, 401, **{"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        },
    ),
    Case(
        "api-404-unknown-organisation",
        ApiError,
        ("HTTP 404: Organisation no-such-org not found", "Check the endpoint path and the ids in it"),
        operator=lambda env: {"tables": ["authorisation_servers"], "organisation_ids": ["no-such-org"]},
    ),
    # ---- operator arguments --------------------------------------------------------------------------
    Case(
        "unknown-table",
        ConfigurationError,
        ("unknown table 'organisation'", "Did you mean 'organisations'?", "Valid tables:"),
        operator=lambda env: {"tables": ["organisation"]},
        before_requests=True,
    ),
    Case(
        "no-tables",
        ConfigurationError,
        ("needs at least one table name in 'tables'",),
        operator=lambda env: {"tables": []},
        before_requests=True,
    ),
    Case(
        "unknown-output-format",
        ConfigurationError,
        ("output_format must be one of ['parquet', 'csv'], got 'xlsx'",),
        operator=lambda env: {"output_format": "xlsx"},
        before_requests=True,
    ),
    Case(
        "unknown-filter",
        ConfigurationError,
        ("Unknown filter(s) ['startdate']", "did you mean 'start_date'?"),
        operator=lambda env: {"tables": ["clients"], "filters": {"startdate": "2025-01-01T00:00:00Z"}},
        before_requests=True,
    ),
    Case(
        "organisation-ids-as-text",
        ConfigurationError,
        ("organisation_ids must be a list of IDs, not a single string",),
        operator=lambda env: {"organisation_ids": "org-1"},
        before_requests=True,
    ),
    Case(
        "status-not-text",
        ConfigurationError,
        ("status must be text such as 'Active', got int",),
        operator=lambda env: {"status": 1},
        before_requests=True,
    ),
    Case(
        "start-date-of-the-wrong-type",
        ConfigurationError,
        ("start_date must be a datetime, a date or RFC 3339 text, got int",),
        operator=lambda env: {"tables": ["clients"], "filters": {"start_date": 20250101}},
        before_requests=True,
    ),
    Case(
        "participants-table-without-participants-url",
        ConfigurationError,
        ("participants_* tables need participants_url", "https://data.<directory host>/participants"),
        conn=lambda env: {"participants_url": None},
        operator=lambda env: {"tables": ["participants_organisations"]},
        before_requests=True,
    ),
    Case(
        "too-many-rows-for-xcom",
        ConfigurationError,
        ("rows are too many for XCom (max_xcom_rows=10)", "set output_uri"),
        operator=lambda env: {"output_uri": None, "max_xcom_rows": 10},
    ),
    Case(
        "max-workers-above-its-bound",
        ConfigurationError,
        ("Connection extra 'max_workers' must be between 1 and 64", "got 10000"),
        conn=lambda env: {"max_workers": 10000},
        before_requests=True,
    ),
    Case(
        "timeout-above-its-bound",
        ConfigurationError,
        ("Connection extra 'timeout' must be between 0 and 300", "got 86400"),
        conn=lambda env: {"timeout": 86400},
        before_requests=True,
    ),
    Case(
        "page-size-filter-out-of-range",
        ConfigurationError,
        ("page_size must be a whole number from 1 to 50000",),
        operator=lambda env: {"filters": {"page_size": 0}},
        before_requests=True,
    ),
    Case(
        "output-uri-escaping-its-folder",
        ConfigurationError,
        ("contains a '..' segment", "could write outside its folder"),
        operator=lambda env: {"output_uri": (env.tmp / "out").as_uri() + "/%2e%2e/escaped"},
        before_requests=True,
    ),
    Case(
        "output-uri-not-a-folder",
        ConfigurationError,
        ("cannot be used as an output folder", "Give a folder URI this worker can create and write to"),
        operator=lambda env: {"output_uri": (Path(env.file("a-file", "x")) / "out").as_uri()},
    ),
]


def key_material(sandbox: Sandbox) -> list[str]:
    pki = sandbox.pki
    keys = [pki.key("tls-client"), pki.key("other-client"), pki.key("pkj-transport"), pki.encrypted_key]
    keys += [pki.signing_key("rsa"), pki.signing_key("ec")]
    lines = [line for path in keys for line in path.read_text().splitlines() if not line.startswith("-----")]
    return [line for line in lines if len(line) >= 16] + [KEY_PASSPHRASE]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_a_typed_error_with_its_fix_and_nothing_is_written(
    fresh_sandbox_counters: Sandbox, stub: Stub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    if case.skip:
        pytest.skip(case.skip)
    sandbox = fresh_sandbox_counters
    env = Env(sandbox, stub, tmp_path)
    stub.routes = case.routes(env)
    stub.hits.clear()
    overrides = case.conn(env)
    connection = sandbox.connection(overrides.pop("client", "tls"), **overrides)
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_BAD_INPUT", json.dumps(connection))
    fast = functools.cached_property(
        lambda hook: RaidiamClient(hook.settings, on_secret=mask_secret, retry=FAST, logger=hook.log)
    )
    fast.__set_name__(RaidiamHook, "client")
    monkeypatch.setattr(RaidiamHook, "client", fast)  # retries wait milliseconds, not seconds
    output = tmp_path / "out"
    arguments: dict[str, Any] = {"tables": ["organisations"], "output_uri": output.as_uri(), **case.operator(env)}
    operator = RaidiamDirectoryOperator(task_id="bad_input", raidiam_conn_id="raidiam_bad_input", **arguments)

    with pytest.raises(RaidiamError) as caught:
        operator.execute(context={})  # type: ignore[arg-type]

    error = caught.value
    message = str(error)
    assert type(error) is case.error, f"{type(error).__name__}: {message}"
    for fragment in case.says:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not [secret for secret in key_material(sandbox) if secret in message], "key material in the message"
    assert not output.exists(), "something was written at the output URI"
    assert not [path.name for path in tmp_path.rglob("*") if path.name.startswith(".") or "parquet" in path.name]
    if case.before_requests:
        assert sandbox.as_stats()["token_requests"] == sandbox.as_stats()["discovery_requests"] == 0
        assert sandbox.api_stats()["requests"] == 0
        assert stub.hits == []


def test_every_case_is_in_the_troubleshooting_page() -> None:
    """docs/troubleshooting.md shows each case's message (at least one of its fragments, verbatim)."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md").read_text()
    missing = [case.id for case in CASES if not any(fragment in page for fragment in case.says)]
    assert not missing, missing


def test_a_certificate_close_to_expiry_warns_and_still_works(
    fresh_sandbox_counters: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Warn before expiry: a valid transport certificate (same subject, same CA) that expires in 5 days."""
    sandbox = fresh_sandbox_counters
    pki = sandbox.pki
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(pki.certificate("tls-client").subject)
        .issuer_name(pki.certificate("ca").subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=5))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path, key_path = tmp_path / "expiring.pem", tmp_path / "expiring.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_RAIDIAM_EXPIRING",
        sandbox.connection_uri_env("tls", transport_cert=str(cert_path), transport_private_key=str(key_path)),
    )
    with RaidiamHook(raidiam_conn_id="raidiam_expiring") as hook:
        assert hook.request("GET", "/organisations", params={"page": 0, "size": 1}).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "expires on" in r.getMessage()]
    assert len(warnings) == 1
    assert "renew it in the Directory soon" in warnings[0]
    assert (now + dt.timedelta(days=5)).strftime("%Y-%m-%d") in warnings[0]
    assert sandbox.as_stats()["token_requests"] == 1
