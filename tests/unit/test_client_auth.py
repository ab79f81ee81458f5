"""Client authentication at the token endpoint: ``tls_client_auth`` and ``private_key_jwt``.

Assertions are verified with the PUBLIC JWK registered for the client, the way the server does it.
"""

from __future__ import annotations

import runpy
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import rsa
from wtforms.validators import AnyOf

from airflow_provider_raidiam.auth.client_auth import (
    ASSERTION_TYPE,
    CLIENT_AUTHS,
    ClientAuth,
    PrivateKeyJwt,
    TlsClientAuth,
    client_auth_for,
)
from airflow_provider_raidiam.auth.token_client import TokenClient
from airflow_provider_raidiam.boundary import AllowedOrigins
from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.exceptions import ConfigurationError, CredentialError
from airflow_provider_raidiam.get_provider_info import get_provider_info
from airflow_provider_raidiam.hooks.raidiam import RaidiamHook
from airflow_provider_raidiam.http import new_session
from raidiam_sandbox.pki import SandboxPki

ISSUER = "https://auth.example.test"
TOKEN_ENDPOINT = "https://matls-auth.example.test/token"
KeyKind = Literal["rsa", "ec"]


def pkj_settings(pki: SandboxPki, **extra: Any) -> RaidiamSettings:
    kind: KeyKind = "ec" if extra.get("signing_alg") == "ES256" else "rsa"
    fields = {
        "auth_method": "private_key_jwt",
        "signing_private_key": str(pki.signing_key(kind)),
        "signing_key_id": pki.signing_key_id(kind),
        **extra,
    }
    return RaidiamSettings.from_fields(host=ISSUER, login="pkj-client", extra=fields)


def verify(assertion: str, pki: SandboxPki, kind: KeyKind, alg: str, audience: str) -> dict[str, Any]:
    """Verify a client assertion with the client's registered public JWK; return header + claims."""
    public = jwt.PyJWK(pki.signing_jwk(kind))  # type: ignore[arg-type]
    claims = jwt.decode(
        assertion,
        public.key,
        algorithms=[alg],
        audience=audience,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )
    return {"header": jwt.get_unverified_header(assertion), "claims": claims}


def post_token(kit: Any, mocked: responses.RequestsMock, auth: Any) -> Any:
    """Send one real token request through TokenClient and return what went over the wire."""
    mocked.add(responses.POST, TOKEN_ENDPOINT, json=kit.token_body())
    client = TokenClient(
        session=new_session(ssl.create_default_context(), 2, AllowedOrigins([TOKEN_ENDPOINT])),
        token_endpoint=TOKEN_ENDPOINT,
        issuer=ISSUER,
        client_auth=auth,
        scope="directory:software",
        certificate_thumbprint=None,
        timeout=5,
        retry=kit.FAST_RETRY,
        on_new_token=lambda _token: None,
    )
    client.get()
    return mocked.calls[-1].request


# -- tls_client_auth --------------------------------------------------------------------------------


def test_tls_client_auth_sends_only_client_id(kit: Any, mocked: responses.RequestsMock) -> None:
    request = post_token(kit, mocked, TlsClientAuth("tls-client"))

    assert kit.form_of(request) == {
        "grant_type": "client_credentials",
        "scope": "directory:software",
        "client_id": "tls-client",
    }
    assert "Authorization" not in request.headers
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_client_auth_for_tls_client_auth(tls_settings: Any) -> None:
    auth = client_auth_for(tls_settings())

    assert isinstance(auth, TlsClientAuth)
    assert auth.method == "tls_client_auth"
    assert auth.form_fields(issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT) == {"client_id": "client-123"}


def test_tls_client_auth_invalid_client_hint_mentions_the_certificate() -> None:
    hint = TlsClientAuth("tls-client").failure_hint("invalid_client", issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT)

    assert "'tls-client'" in hint
    assert "transport_cert" in hint
    assert TOKEN_ENDPOINT in hint


# -- private_key_jwt --------------------------------------------------------------------------------


def test_private_key_jwt_request_body(pki: SandboxPki, kit: Any, mocked: responses.RequestsMock) -> None:
    auth = client_auth_for(pkj_settings(pki))

    request = post_token(kit, mocked, auth)

    form = kit.form_of(request)
    assert set(form) == {"grant_type", "scope", "client_id", "client_assertion_type", "client_assertion"}
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == "pkj-client"
    assert form["client_assertion_type"] == ASSERTION_TYPE == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert "Authorization" not in request.headers
    verified = verify(form["client_assertion"], pki, "rsa", "PS256", ISSUER)
    assert verified["claims"]["iss"] == verified["claims"]["sub"] == "pkj-client"


@pytest.mark.parametrize(("alg", "kind"), [("PS256", "rsa"), ("RS256", "rsa"), ("ES256", "ec")])
def test_assertion_claims_and_header(pki: SandboxPki, alg: str, kind: KeyKind) -> None:
    auth = client_auth_for(pkj_settings(pki, signing_alg=alg))
    before = int(time.time())

    fields = auth.form_fields(issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT)

    verified = verify(fields["client_assertion"], pki, kind, alg, ISSUER)
    header, claims = verified["header"], verified["claims"]
    assert header["alg"] == alg
    assert header["kid"] == pki.signing_key_id(kind)
    assert claims["iss"] == "pkj-client"
    assert claims["sub"] == "pkj-client"
    assert claims["aud"] == ISSUER
    assert claims["exp"] - claims["iat"] == 60
    assert before <= claims["iat"] <= int(time.time())
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 16


def test_assertion_is_not_verifiable_with_another_key(pki: SandboxPki) -> None:
    fields = client_auth_for(pkj_settings(pki)).form_fields(issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT)
    other_public = pki.certificate("other-client").public_key()
    assert isinstance(other_public, rsa.RSAPublicKey)

    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(fields["client_assertion"], other_public, algorithms=["PS256"], audience=ISSUER)


@pytest.mark.parametrize(
    ("audience", "expected"),
    [
        ("issuer", ISSUER),
        ("token_endpoint", TOKEN_ENDPOINT),
        ("https://auth.example.test/custom-audience", "https://auth.example.test/custom-audience"),
    ],
)
def test_assertion_audience(pki: SandboxPki, audience: str, expected: str) -> None:
    auth = client_auth_for(pkj_settings(pki, assertion_audience=audience))

    fields = auth.form_fields(issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT)

    assert verify(fields["client_assertion"], pki, "rsa", "PS256", expected)["claims"]["aud"] == expected


def test_fresh_jti_for_every_assertion(pki: SandboxPki) -> None:
    auth = client_auth_for(pkj_settings(pki))

    assertions = [auth.form_fields(issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT)["client_assertion"] for _ in range(5)]

    jtis = {verify(a, pki, "rsa", "PS256", ISSUER)["claims"]["jti"] for a in assertions}
    assert len(jtis) == 5


def test_no_kid_header_when_no_key_id(pki: SandboxPki) -> None:
    settings = RaidiamSettings.from_fields(
        host=ISSUER,
        login="pkj",
        extra={"auth_method": "private_key_jwt", "signing_private_key": str(pki.signing_key("rsa"))},
    )

    fields = client_auth_for(settings).form_fields(issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT)

    assert "kid" not in jwt.get_unverified_header(fields["client_assertion"])


def test_signing_key_as_pem_text(pki: SandboxPki) -> None:
    settings = pkj_settings(pki, signing_private_key=pki.signing_key("rsa").read_text())

    fields = client_auth_for(settings).form_fields(issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT)

    verify(fields["client_assertion"], pki, "rsa", "PS256", ISSUER)


def test_rsa_key_with_es256_is_refused_clearly(pki: SandboxPki) -> None:
    settings = pkj_settings(pki, signing_alg="ES256", signing_private_key=str(pki.signing_key("rsa")))

    with pytest.raises(CredentialError) as caught:
        client_auth_for(settings)

    message = str(caught.value)
    assert "signing_alg ES256 needs an EC P-256 signing key" in message
    assert "an RSA 2048-bit key" in message
    assert "change signing_alg" in message


def test_ec_key_with_ps256_is_refused_clearly(pki: SandboxPki) -> None:
    settings = pkj_settings(pki, signing_alg="PS256", signing_private_key=str(pki.signing_key("ec")))

    with pytest.raises(CredentialError, match="signing_alg PS256 needs an RSA signing key of at least 2048 bits"):
        client_auth_for(settings)


def test_signing_key_missing_file(pki: SandboxPki, tmp_path: Any) -> None:
    settings = pkj_settings(pki, signing_private_key=str(tmp_path / "missing.key"))

    with pytest.raises(CredentialError, match=r"signing_private_key: file .* does not exist"):
        client_auth_for(settings)


def test_private_key_jwt_invalid_client_hint_names_alg_kid_and_aud(pki: SandboxPki) -> None:
    auth = client_auth_for(pkj_settings(pki, assertion_audience="token_endpoint"))
    assert isinstance(auth, PrivateKeyJwt)

    hint = auth.failure_hint("invalid_client", issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT)

    assert "PS256" in hint
    assert pki.signing_key_id("rsa") in hint
    assert f"aud {TOKEN_ENDPOINT}" in hint
    assert "assertion_audience" in hint


@pytest.mark.parametrize("error", ["invalid_scope", "unauthorized_client"])
def test_common_hints(pki: SandboxPki, error: str) -> None:
    hint_tls = TlsClientAuth("c").failure_hint(error, issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT)
    hint_pkj = client_auth_for(pkj_settings(pki)).failure_hint(error, issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT)

    if error == "invalid_scope":
        assert "directory:software" in hint_tls
    else:
        assert "tls_client_auth" in hint_tls
        assert "private_key_jwt" in hint_pkj


# -- the registry -----------------------------------------------------------------------------------


def test_the_registered_methods_are_raidiams_two_and_require_real_settings_fields() -> None:
    assert list(CLIENT_AUTHS) == ["tls_client_auth", "private_key_jwt"]
    for method, auth_class in CLIENT_AUTHS.items():
        assert auth_class.method == method
        assert auth_class.requires
        assert set(auth_class.requires) <= set(RaidiamSettings.__dataclass_fields__)


DefineAuth = Callable[[str, tuple[str, ...], str], type[ClientAuth]]


@pytest.fixture
def define_auth() -> Iterator[DefineAuth]:
    """Define a client-auth class in the test (defining it registers it); the registry is restored after."""
    registered = dict(CLIENT_AUTHS)

    def define(name: str, required: tuple[str, ...], what: str) -> type[ClientAuth]:
        class DefinedInATest(ClientAuth):
            method = name
            requires = required
            needs = what
            needs_help = f"(for {what})"

            @classmethod
            def from_settings(cls, settings: RaidiamSettings) -> DefinedInATest:
                return cls(settings.client_id)

            def form_fields(self, *, issuer: str, token_endpoint: str) -> dict[str, str]:
                return {"client_id": self.client_id, "defined_in": "a test"}

            def failure_hint(self, error: str | None, *, issuer: str, token_endpoint: str) -> str:
                return f"no hint for {error}"

        return DefinedInATest

    yield define
    CLIENT_AUTHS.clear()
    CLIENT_AUTHS.update(registered)


def test_a_class_for_an_existing_name_replaces_it_and_its_required_fields_are_checked(
    tls_settings: Any, define_auth: DefineAuth
) -> None:
    pinned = define_auth("tls_client_auth", ("transport_cert", "transport_private_key", "ca_bundle"), "a pinned CA")

    assert CLIENT_AUTHS["tls_client_auth"] is pinned
    assert isinstance(client_auth_for(tls_settings()), pinned)
    with pytest.raises(ConfigurationError) as caught:
        tls_settings(ca_bundle=None)
    assert str(caught.value) == (
        "auth_method 'tls_client_auth' needs a pinned CA: set the extras 'transport_cert' and "
        "'transport_private_key' and 'ca_bundle' (for a pinned CA)."
    )


def test_abstract_base_registers_nothing() -> None:
    assert ClientAuth not in CLIENT_AUTHS.values()


def test_an_auth_method_is_one_class(define_auth: DefineAuth, kit: Any, mocked: responses.RequestsMock) -> None:
    throwaway = define_auth("throwaway_auth", ("signing_key_id",), "a key id")
    name = throwaway.method
    methods = ["tls_client_auth", "private_key_jwt", name]

    # The form offers it: conn-fields (Airflow 3.2+), the hook's widgets (3.0/3.1), the generated docs.
    conn_fields = get_provider_info()["connection-types"][0]["conn-fields"]
    assert conn_fields["auth_method"]["schema"]["enum"] == methods
    validators = RaidiamHook.get_connection_form_widgets()["auth_method"].kwargs["validators"]
    assert [validator.values for validator in validators if isinstance(validator, AnyOf)] == [methods]
    doc = runpy.run_path(str(Path(__file__).parents[2] / "scripts" / "gen_connection_doc.py"))
    assert "One of `tls_client_auth`, `private_key_jwt`, `throwaway_auth`." in doc["render_fields"]()

    # Settings accept it, check the field it requires, and suggest it for a typo.
    mtls = {"transport_cert": "/t.pem", "transport_private_key": "/t.key"}
    settings = RaidiamSettings.from_fields(
        host=ISSUER, login="c-1", extra={**mtls, "auth_method": "Throwaway_Auth", "signing_key_id": "kid-1"}
    )
    assert settings.auth_method == name
    with pytest.raises(ConfigurationError) as missing:
        RaidiamSettings.from_fields(host=ISSUER, login="c-1", extra={**mtls, "auth_method": name})
    assert (
        str(missing.value)
        == "auth_method 'throwaway_auth' needs a key id: set the extra 'signing_key_id' (for a key id)."
    )
    with pytest.raises(ConfigurationError) as typo:
        RaidiamSettings.from_fields(host=ISSUER, login="c-1", extra={**mtls, "auth_method": "throwaway_oauth"})
    assert str(typo.value) == (
        "Unknown auth_method 'throwaway_oauth': use one of ['tls_client_auth', 'private_key_jwt', "
        "'throwaway_auth'] (did you mean 'throwaway_auth'?)."
    )

    # client_auth_for builds it, and its fields go over the wire in the token request.
    auth = client_auth_for(settings)
    assert isinstance(auth, throwaway)
    assert kit.form_of(post_token(kit, mocked, auth)) == {
        "grant_type": "client_credentials",
        "scope": "directory:software",
        "client_id": "c-1",
        "defined_in": "a test",
    }
