"""RFC 8705 certificate binding of access tokens (``cnf.x5t#S256``)."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from airflow_provider_raidiam.auth.binding import bound_certificate, check_token_binding
from airflow_provider_raidiam.exceptions import BindingError, RaidiamError
from raidiam_sandbox.pki import SandboxPki

OURS = "5fl_iJquMNfQIOyDPXMzpoN-NGljL9H9h_dbQTlZrV0"
THEIRS = "Qx7zS0m2kVb4cYgk1H7wq3oXJmZP2dLJpM1y0eW8lNc"


@pytest.fixture(scope="module")
def as_key(pki: SandboxPki) -> Any:
    """A key to sign access tokens the way the authorisation server does (RSA, PS256)."""
    return serialization.load_pem_private_key(pki.key("server").read_bytes(), password=None)


def access_token(key: Any, **claims: Any) -> str:
    base = {"iss": "https://auth.example.test", "client_id": "client-1", "scope": "directory:software"}
    return jwt.encode({**base, **claims}, key, algorithm="PS256", headers={"kid": "as-key"})


def test_opaque_token_passes() -> None:
    check_token_binding("Yn2aD3sQk8N5z0uW7fJ1cXbR4pL6mT9eH2vG5yK0aQ", OURS)
    check_token_binding("Yn2aD3sQk8N5z0uW7fJ1cXbR4pL6mT9eH2vG5yK0aQ", None)
    assert bound_certificate("Yn2aD3sQk8N5z0uW7fJ1cXbR4pL6mT9eH2vG5yK0aQ") is None


def test_unbound_jwt_passes(as_key: Any) -> None:
    token = access_token(as_key)

    assert bound_certificate(token) is None
    check_token_binding(token, OURS)
    check_token_binding(token, None)


def test_matching_binding_passes(as_key: Any) -> None:
    token = access_token(as_key, cnf={"x5t#S256": OURS})

    assert bound_certificate(token) == OURS
    check_token_binding(token, OURS)


def test_binding_of_the_real_certificate_passes(as_key: Any, pki: SandboxPki) -> None:
    token = access_token(as_key, cnf={"x5t#S256": pki.thumbprint("tls-client")})

    check_token_binding(token, pki.thumbprint("tls-client"))


def test_expired_token_still_reads_its_binding(as_key: Any) -> None:
    # The claim is read only; expiry is the resource server's business.
    token = access_token(as_key, cnf={"x5t#S256": THEIRS}, exp=1, aud="https://api.example.test")

    with pytest.raises(BindingError):
        check_token_binding(token, OURS)


def test_mismatch_names_both_thumbprints(as_key: Any) -> None:
    token = access_token(as_key, cnf={"x5t#S256": THEIRS})

    with pytest.raises(BindingError) as caught:
        check_token_binding(token, OURS)

    message = str(caught.value)
    assert f"x5t#S256={THEIRS}" in message
    assert f"x5t#S256={OURS}" in message
    assert "same transport certificate" in message
    assert token not in message
    assert isinstance(caught.value, RaidiamError)


def test_bound_token_without_our_certificate(as_key: Any) -> None:
    token = access_token(as_key, cnf={"x5t#S256": THEIRS})

    with pytest.raises(BindingError) as caught:
        check_token_binding(token, None)

    message = str(caught.value)
    assert THEIRS in message
    assert "no transport certificate" in message
    assert "set transport_cert and transport_private_key" in message


@pytest.mark.parametrize("cnf", [None, "x", {"jkt": "abc"}, {"x5t#S256": 5}])
def test_malformed_or_other_confirmation_is_not_a_certificate_binding(as_key: Any, cnf: Any) -> None:
    token = access_token(as_key, cnf=cnf)

    assert bound_certificate(token) is None


def _unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}.c2lnbmF0dXJl"


def test_signature_is_not_needed_to_read_the_binding() -> None:
    token = _unsigned({"alg": "PS256", "typ": "at+jwt"}, {"cnf": {"x5t#S256": THEIRS}})

    with pytest.raises(BindingError):
        check_token_binding(token, OURS)


@pytest.mark.parametrize(
    "header", [{"alg": "PS256", "crit": ["exp"]}, {"alg": "PS256", "kid": 7}], ids=["crit", "int-kid"]
)
def test_bound_jwt_with_unusual_header_is_still_checked(header: dict[str, Any]) -> None:
    token = _unsigned(header, {"cnf": {"x5t#S256": THEIRS}})

    with pytest.raises(BindingError):
        check_token_binding(token, OURS)
