"""The sandbox authorisation server behaves like Raidiam's, checked with raw ``requests`` (not the provider)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests

from raidiam_sandbox import Sandbox
from raidiam_sandbox.constants import (
    DIRECTORY_AUDIENCE,
    OTHER_CLIENT_ID,
    PKJ_CLIENT_ID,
    PKJ_EC_CLIENT_ID,
    SIGNING_EC_KEY_ID,
    SIGNING_KEY_ID,
    TLS_CLIENT_ID,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SCOPE = "directory:software directory:website"
ALIASES = {
    "token_endpoint": "/token",
    "revocation_endpoint": "/token/revocation",
    "introspection_endpoint": "/token/introspection",
    "device_authorization_endpoint": "/device/auth",
    "registration_endpoint": "/reg",
    "userinfo_endpoint": "/me",
    "pushed_authorization_request_endpoint": "/request",
    "backchannel_authentication_endpoint": "/backchannel",
}


def session(sb: Sandbox, cert: str | None = None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(sb.pki.ca_cert)
    if cert is not None:
        s.cert = (str(sb.pki.cert(cert)), str(sb.pki.key(cert)))
    return s


@pytest.fixture
def sb(fresh_sandbox_counters: Sandbox) -> Sandbox:
    return fresh_sandbox_counters


@pytest.fixture
def tls_session(sb: Sandbox) -> Iterator[requests.Session]:
    with session(sb, "tls-client") as s:
        yield s


def mtls_token_url(sb: Sandbox) -> str:
    return sb.mtls_base_url + "/token"


def tls_token_request(s: requests.Session, sb: Sandbox, client_id: str = TLS_CLIENT_ID) -> requests.Response:
    data = {"grant_type": "client_credentials", "client_id": client_id, "scope": SCOPE}
    return s.post(mtls_token_url(sb), data=data, timeout=10)


def assertion(sb: Sandbox, client_id: str, *, kind: str = "rsa", alg: str = "PS256", aud: str | None = None) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud or sb.issuer,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 60,
    }
    kid = SIGNING_KEY_ID if kind == "rsa" else SIGNING_EC_KEY_ID
    key = sb.pki.signing_key("rsa" if kind == "rsa" else "ec").read_text()
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def pkj_request(s: requests.Session, url: str, client_assertion: str, scope: str = SCOPE) -> requests.Response:
    data = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion,
    }
    return s.post(url, data=data, timeout=10)


def verified_claims(sb: Sandbox, token: str) -> dict[str, Any]:
    with session(sb) as s:
        jwks = s.get(sb.issuer + "/jwks", timeout=10).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["PS256"], audience=DIRECTORY_AUDIENCE, issuer=sb.issuer)
    return claims


def test_discovery_has_raidiam_shape(sb: Sandbox) -> None:
    with session(sb) as s:
        doc = s.get(sb.issuer + "/.well-known/openid-configuration", timeout=10).json()
    assert doc["issuer"] == sb.issuer
    assert doc["token_endpoint"] == sb.issuer + "/token"
    assert doc["mtls_endpoint_aliases"] == {k: sb.mtls_base_url + p for k, p in ALIASES.items()}
    assert doc["tls_client_certificate_bound_access_tokens"] is True
    assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt", "tls_client_auth"]
    assert doc["token_endpoint_auth_signing_alg_values_supported"][0] == "PS256"
    assert {"directory:software", "directory:website"} <= set(doc["scopes_supported"])
    assert "client_credentials" in doc["grant_types_supported"]
    assert sb.as_stats()["discovery_requests"] == 1


def test_tls_client_auth_gives_certificate_bound_ps256_jwt(sb: Sandbox, tls_session: requests.Session) -> None:
    response = tls_token_request(tls_session, sb)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == SCOPE
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "PS256"
    assert header["typ"] == "at+jwt"
    claims = verified_claims(sb, body["access_token"])
    assert claims["client_id"] == TLS_CLIENT_ID
    assert claims["scope"] == SCOPE
    assert claims["aud"] == DIRECTORY_AUDIENCE
    assert claims["cnf"] == {"x5t#S256": sb.pki.thumbprint("tls-client")}
    assert claims["exp"] - claims["iat"] == 300


def test_other_client_gets_its_own_binding(sb: Sandbox) -> None:
    with session(sb, "other-client") as s:
        response = tls_token_request(s, sb, OTHER_CLIENT_ID)
    assert response.status_code == 200, response.text
    claims = verified_claims(sb, response.json()["access_token"])
    assert claims["cnf"]["x5t#S256"] == sb.pki.thumbprint("other-client")
    assert claims["cnf"]["x5t#S256"] != sb.pki.thumbprint("tls-client")


@pytest.mark.parametrize(
    ("client_id", "kind", "alg"),
    [(PKJ_CLIENT_ID, "rsa", "PS256"), (PKJ_CLIENT_ID, "rsa", "RS256"), (PKJ_EC_CLIENT_ID, "ec", "ES256")],
)
def test_private_key_jwt_over_mtls_is_certificate_bound(sb: Sandbox, client_id: str, kind: str, alg: str) -> None:
    with session(sb, "pkj-transport") as s:
        response = pkj_request(s, mtls_token_url(sb), assertion(sb, client_id, kind=kind, alg=alg))
    assert response.status_code == 200, response.text
    claims = verified_claims(sb, response.json()["access_token"])
    assert claims["client_id"] == client_id
    assert claims["cnf"] == {"x5t#S256": sb.pki.thumbprint("pkj-transport")}


def test_private_key_jwt_on_issuer_listener_is_not_bound(sb: Sandbox) -> None:
    with session(sb) as s:
        response = pkj_request(s, sb.issuer + "/token", assertion(sb, PKJ_CLIENT_ID))
    assert response.status_code == 200, response.text
    claims = verified_claims(sb, response.json()["access_token"])
    assert claims["client_id"] == PKJ_CLIENT_ID
    assert "cnf" not in claims


@pytest.mark.parametrize(
    ("audience", "accepted"),
    [
        ("issuer", True),
        ("mtls_token_endpoint", True),  # the URL the assertion is posted to
        ("issuer_token_endpoint", False),  # discovery's token_endpoint, but not where it was posted
        ("elsewhere", False),
    ],
)
def test_assertion_audiences_accepted_at_the_mtls_alias(sb: Sandbox, audience: str, accepted: bool) -> None:
    aud = {
        "issuer": sb.issuer,
        "mtls_token_endpoint": mtls_token_url(sb),
        "issuer_token_endpoint": sb.issuer + "/token",
        "elsewhere": "https://elsewhere.invalid",
    }[audience]
    with session(sb, "pkj-transport") as s:
        response = pkj_request(s, mtls_token_url(sb), assertion(sb, PKJ_CLIENT_ID, aud=aud))
    assert response.status_code == (200 if accepted else 401), response.text


def test_ec_client_is_pinned_to_es256(sb: Sandbox) -> None:
    with session(sb, "pkj-transport") as s:
        response = pkj_request(s, mtls_token_url(sb), assertion(sb, PKJ_EC_CLIENT_ID, kind="rsa"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_replayed_assertion_is_rejected(sb: Sandbox) -> None:
    signed = assertion(sb, PKJ_CLIENT_ID)
    with session(sb, "pkj-transport") as s:
        assert pkj_request(s, mtls_token_url(sb), signed).status_code == 200
        second = pkj_request(s, mtls_token_url(sb), signed)
    assert second.status_code == 401
    assert second.json()["error"] == "invalid_client"


def test_wrong_client_certificate_is_invalid_client(sb: Sandbox) -> None:
    with session(sb, "other-client") as s:
        response = tls_token_request(s, sb, TLS_CLIENT_ID)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "error_description": "client authentication failed"}
    stats = sb.as_stats()
    assert stats["token_responses_by_status"] == {"401": 1}
    assert stats["token_requests_by_client"] == {TLS_CLIENT_ID: 1}


def test_tls_client_auth_without_certificate_is_invalid_client(sb: Sandbox) -> None:
    with session(sb) as s:
        response = s.post(
            sb.issuer + "/token",
            data={"grant_type": "client_credentials", "client_id": TLS_CLIENT_ID},
            timeout=10,
        )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("cert", ["foreign-client", "expired-client", "not-yet-valid-client", None])
def test_mtls_listener_refuses_untrusted_certificates_in_the_handshake(sb: Sandbox, cert: str | None) -> None:
    with session(sb, cert) as s, pytest.raises(requests.exceptions.ConnectionError):
        tls_token_request(s, sb)
    assert sb.as_stats()["tls_handshake_failures"]["mtls"] >= 1


def test_token_failures_fault_then_recovery(sb: Sandbox, tls_session: requests.Session) -> None:
    assert sb.set_as_faults(token_failures=2)["token_failures"] == 2
    for _ in range(2):
        failed = tls_token_request(tls_session, sb)
        assert failed.status_code == 503
        assert failed.json()["error"] == "temporarily_unavailable"
    assert tls_token_request(tls_session, sb).status_code == 200
    stats = sb.as_stats()
    assert stats["token_requests"] == 3
    assert stats["token_responses_by_status"] == {"503": 2, "200": 1}
    assert stats["token_requests_by_client"] == {TLS_CLIENT_ID: 3}
    assert sb.as_faults()["token_failures"] == 0


def test_token_ttl_fault(sb: Sandbox, tls_session: requests.Session) -> None:
    sb.set_as_faults(token_ttl=5)
    body = tls_token_request(tls_session, sb).json()
    assert body["expires_in"] == 5
    claims = verified_claims(sb, body["access_token"])
    assert claims["exp"] - claims["iat"] == 5
    sb.set_as_faults(token_ttl=None)
    assert tls_token_request(tls_session, sb).json()["expires_in"] == 300


def test_latency_fault_delays_requests(sb: Sandbox, tls_session: requests.Session) -> None:
    sb.set_as_faults(latency_ms=300)
    started = time.perf_counter()
    assert tls_token_request(tls_session, sb).status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_faults_reject_bad_input(sb: Sandbox) -> None:
    with session(sb) as s:
        for body in ('{"token_failures": -1}', '{"nope": 1}', "[]", "not json"):
            response = s.put(sb.issuer + "/__sandbox/faults", data=body, timeout=10)
            assert response.status_code == 400, body
    assert sb.as_faults() == {"token_ttl": None, "token_failures": 0, "token_failure_every": 0, "latency_ms": 0}


def test_keep_alive_session_uses_one_handshake(sb: Sandbox, tls_session: requests.Session) -> None:
    for _ in range(10):
        assert tls_token_request(tls_session, sb).status_code == 200
    stats = sb.as_stats()
    assert stats["token_requests"] == 10
    assert stats["token_requests_by_client"] == {TLS_CLIENT_ID: 10}
    assert stats["token_responses_by_status"] == {"200": 10}
    assert stats["tls_handshakes"]["mtls"] == 1


def test_reset_zeroes_counters(sb: Sandbox, tls_session: requests.Session) -> None:
    tls_token_request(tls_session, sb)
    with session(sb) as s:
        s.get(sb.issuer + "/jwks", timeout=10)
    assert sb.as_stats()["jwks_requests"] == 1
    sb.set_as_faults(latency_ms=1)
    sb.reset_stats()
    stats = sb.as_stats()
    assert stats["token_requests"] == 0
    assert stats["jwks_requests"] == 0
    assert stats["token_requests_by_client"] == {}
    assert sb.as_faults()["latency_ms"] == 0


def test_admin_endpoints_are_not_on_the_mtls_listener(sb: Sandbox) -> None:
    with session(sb, "tls-client") as s:
        assert s.get(sb.mtls_base_url + "/__sandbox/stats", timeout=10).status_code == 404


@pytest.mark.parametrize("client", ["tls", "other", "pkj", "pkj-ec"])
def test_connection_dicts(sb: Sandbox, client: str) -> None:
    conn = sb.connection(client)
    assert conn["conn_type"] == "raidiam"
    assert conn["host"] == sb.issuer
    extra = conn["extra"]
    assert extra["ca_bundle"] == str(sb.pki.ca_cert)
    assert extra["auth_method"] == ("private_key_jwt" if client.startswith("pkj") else "tls_client_auth")
    if client.startswith("pkj"):
        assert extra["signing_key_id"] in (SIGNING_KEY_ID, SIGNING_EC_KEY_ID)
    pem = sb.connection(client, pem_text=True, timeout=5, scope=None)
    assert pem["extra"]["transport_cert"].startswith("-----BEGIN CERTIFICATE-----")
    assert pem["extra"]["timeout"] == 5
    assert "scope" not in pem["extra"]
    assert json.loads(sb.connection_uri_env(client)) == conn


def test_encrypted_key_connection(sb: Sandbox) -> None:
    conn = sb.connection("tls", encrypted_key=True)
    assert conn["password"]
    assert conn["extra"]["transport_private_key"] == str(sb.pki.encrypted_key)
