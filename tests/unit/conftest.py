"""Shared fixtures of the unit tests: a throw-away PKI, settings and stubbed discovery/token endpoints.

HTTP is stubbed with ``responses``; nothing leaves the process. Every test starts with empty discovery
and token caches.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from airflow_provider_raidiam import discovery
from airflow_provider_raidiam.auth import token_client
from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.credentials import TlsMaterial, build_tls_material
from airflow_provider_raidiam.retry import RetryPolicy
from airflow_provider_raidiam.throttle import Clock
from raidiam_sandbox.constants import KEY_PASSPHRASE
from raidiam_sandbox.pki import SandboxPki

ISSUER = "https://auth.example.test"
DISCOVERY_URL = ISSUER + "/.well-known/openid-configuration"
TOKEN_ENDPOINT = ISSUER + "/token"
MTLS_TOKEN_ENDPOINT = "https://matls-auth.example.test/token"
API_BASE = "https://matls-api.example.test"
CLIENT_ID = "client-123"

FAST_RETRY = RetryPolicy(attempts=3, max_elapsed=5.0, initial_wait=0.001, max_wait=0.01, throttle_timeout=1.0)
"""A retry policy that retries like the real one but waits milliseconds."""


class FakeClock:
    """A clock that moves only when slept on (or set by the test); records every sleep it was asked for."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(round(seconds, 6))
        self.now += seconds

    def clock(self) -> Clock:
        """The :class:`Clock` to give a retry policy or throttle."""
        return Clock(now=lambda: self.now, sleep=self.sleep)

    def policy(self, **overrides: Any) -> RetryPolicy:
        """A retry policy on this clock with its jitter at the maximum, so waits are exact."""
        return RetryPolicy(clock=self.clock(), jitter=lambda: 1.0, **overrides)


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fresh :class:`FakeClock` at 1000.0 s."""
    return FakeClock()


def discovery_document(**overrides: Any) -> dict[str, Any]:
    """A Raidiam-shaped discovery document for :data:`ISSUER` (keys set to ``None`` are removed)."""
    document: dict[str, Any] = {
        "issuer": ISSUER,
        "token_endpoint": TOKEN_ENDPOINT,
        "jwks_uri": ISSUER + "/jwks",
        "introspection_endpoint": ISSUER + "/token/introspection",
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "tls_client_auth"],
        "token_endpoint_auth_signing_alg_values_supported": ["PS256"],
        "tls_client_certificate_bound_access_tokens": True,
        "mtls_endpoint_aliases": {
            "token_endpoint": MTLS_TOKEN_ENDPOINT,
            "introspection_endpoint": "https://matls-auth.example.test/token/introspection",
        },
    }
    document.update(overrides)
    return {key: value for key, value in document.items() if value is not None}


def form_of(request: Any) -> dict[str, str]:
    """The form fields of a recorded ``application/x-www-form-urlencoded`` request (single values)."""
    body = request.body
    if isinstance(body, bytes):
        body = body.decode()
    parsed = parse_qs(body or "", keep_blank_values=True, strict_parsing=False)
    assert all(len(values) == 1 for values in parsed.values()), f"repeated form fields: {parsed}"
    return {key: values[0] for key, values in parsed.items()}


def token_body(access_token: str = "opaque-token-1", expires_in: Any = 600, **extra: Any) -> dict[str, Any]:  # noqa: S107
    """A successful token response body."""
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": "directory:software",
        **extra,
    }


@dataclass(frozen=True)
class ExtraPki:
    """Certificates the sandbox PKI does not have, made with ``cryptography`` for edge cases."""

    expiring_cert: Path
    expiring_key: Path
    chain_cert: Path
    rsa_1024_key: Path
    ec_p384_key: Path
    ec_transport_cert: Path
    ec_transport_key: Path
    traditional_encrypted_key: Path


def _pem_key(key: Any, passphrase: str | None = None, fmt: Any = serialization.PrivateFormat.PKCS8) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    data: bytes = key.private_bytes(serialization.Encoding.PEM, fmt, encryption)
    return data


def _leaf(ca_cert: x509.Certificate, ca_key: Any, key: Any, cn: str, not_after: dt.datetime) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(not_after)
        .sign(ca_key, hashes.SHA256())
    )


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SandboxPki:
    """The sandbox PKI: ``tls-client``, ``other-client``, ``expired-client``, signing keys, ..."""
    return SandboxPki.generate(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def shared_tls(pki: SandboxPki) -> TlsMaterial:
    """TLS material of the ``tls-client`` identity, built once per module (building it is tested elsewhere)."""
    return build_tls_material(
        ca_bundle=str(pki.ca_cert),
        transport_cert=str(pki.cert("tls-client")),
        transport_private_key=str(pki.key("tls-client")),
        passphrase=None,
    )


@pytest.fixture(scope="session")
def extra_pki(pki: SandboxPki, tmp_path_factory: pytest.TempPathFactory) -> ExtraPki:
    """Edge-case certificates signed by the sandbox CA."""
    directory = tmp_path_factory.mktemp("extra-pki")
    ca_cert = pki.certificate("ca")
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    now = dt.datetime.now(dt.UTC)

    expiring_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    expiring = _leaf(ca_cert, ca_key, expiring_key, "expiring-soon", now + dt.timedelta(days=5))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_cert = _leaf(ca_cert, ca_key, ec_key, "ec-transport", now + dt.timedelta(days=365))
    tls_key = serialization.load_pem_private_key(pki.key("tls-client").read_bytes(), password=None)

    paths = ExtraPki(
        expiring_cert=directory / "expiring.pem",
        expiring_key=directory / "expiring.key",
        chain_cert=directory / "chain.pem",
        rsa_1024_key=directory / "rsa-1024.key",
        ec_p384_key=directory / "ec-p384.key",
        ec_transport_cert=directory / "ec-transport.pem",
        ec_transport_key=directory / "ec-transport.key",
        traditional_encrypted_key=directory / "traditional-encrypted.key",
    )
    paths.expiring_cert.write_bytes(expiring.public_bytes(serialization.Encoding.PEM))
    paths.expiring_key.write_bytes(_pem_key(expiring_key))
    paths.chain_cert.write_bytes(pki.cert("tls-client").read_bytes() + pki.ca_cert.read_bytes())
    paths.rsa_1024_key.write_bytes(_pem_key(rsa.generate_private_key(public_exponent=65537, key_size=1024)))  # noqa: S505 - refused on purpose
    paths.ec_p384_key.write_bytes(_pem_key(ec.generate_private_key(ec.SECP384R1())))
    paths.ec_transport_cert.write_bytes(ec_cert.public_bytes(serialization.Encoding.PEM))
    paths.ec_transport_key.write_bytes(_pem_key(ec_key))
    paths.traditional_encrypted_key.write_bytes(
        _pem_key(tls_key, KEY_PASSPHRASE, serialization.PrivateFormat.TraditionalOpenSSL)
    )
    return paths


@pytest.fixture(autouse=True)
def _empty_caches() -> Iterator[None]:
    """Every test starts (and ends) with no cached discovery document and no cached token."""
    discovery.clear_cache()
    token_client.TOKEN_CACHE.clear()
    yield
    discovery.clear_cache()
    token_client.TOKEN_CACHE.clear()


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """A ``responses`` mock; registered responses need not all be used, unstubbed URLs raise ConnectionError."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def tls_settings(pki: SandboxPki) -> Callable[..., RaidiamSettings]:
    """Build ``tls_client_auth`` settings from the ``tls-client`` certificate; keyword args are extras."""

    def build(**extra: Any) -> RaidiamSettings:
        fields: dict[str, Any] = {
            "transport_cert": str(pki.cert("tls-client")),
            "transport_private_key": str(pki.key("tls-client")),
            "ca_bundle": str(pki.ca_cert),
            "api_base_url": API_BASE,
        }
        fields.update(extra)
        login = fields.pop("login", CLIENT_ID)
        host = fields.pop("host", ISSUER)
        password = fields.pop("password", None)
        return RaidiamSettings.from_fields(host=host, login=login, password=password, extra=fields)

    return build


class Kit:
    """Constants and helpers shared by the unit tests (a fixture, so test modules need not import conftest)."""

    ISSUER = ISSUER
    DISCOVERY_URL = DISCOVERY_URL
    TOKEN_ENDPOINT = TOKEN_ENDPOINT
    MTLS_TOKEN_ENDPOINT = MTLS_TOKEN_ENDPOINT
    API_BASE = API_BASE
    CLIENT_ID = CLIENT_ID
    FAST_RETRY = FAST_RETRY
    KEY_PASSPHRASE = KEY_PASSPHRASE

    discovery_document = staticmethod(discovery_document)
    form_of = staticmethod(form_of)
    token_body = staticmethod(token_body)

    @staticmethod
    def register_discovery(mock: responses.RequestsMock, **overrides: Any) -> None:
        """Serve :func:`discovery_document` at :data:`DISCOVERY_URL`."""
        mock.add(responses.GET, DISCOVERY_URL, json=discovery_document(**overrides))

    @staticmethod
    def json(value: Any) -> str:
        return json.dumps(value)


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    """Constants and helpers: ``kit.ISSUER``, ``kit.form_of(request)``, ``kit.token_body(...)``, ..."""
    return Kit
