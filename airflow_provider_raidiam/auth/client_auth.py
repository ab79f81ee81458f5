"""Client authentication methods for the token endpoint, one class per method behind one interface."""

from __future__ import annotations

import abc
import secrets
import time
from typing import ClassVar

import jwt
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from airflow_provider_raidiam.connection import AuthMethod, RaidiamSettings
from airflow_provider_raidiam.credentials import load_signing_key

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60


class ClientAuth(abc.ABC):
    """Adds a client's credentials to a token request's form body."""

    method: ClassVar[AuthMethod]

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id

    @abc.abstractmethod
    def form_fields(self, *, issuer: str, token_endpoint: str) -> dict[str, str]:
        """Return the credential fields to add to the ``client_credentials`` form body."""

    @abc.abstractmethod
    def failure_hint(self, error: str | None, *, issuer: str, token_endpoint: str) -> str:
        """Return the most likely fix for a token endpoint ``error`` code, in this method's terms."""


class TlsClientAuth(ClientAuth):
    """RFC 8705 ``tls_client_auth``: ``client_id`` in the body, the certificate on the TLS connection."""

    method = AuthMethod.TLS_CLIENT_AUTH

    def form_fields(self, *, issuer: str, token_endpoint: str) -> dict[str, str]:
        return {"client_id": self.client_id}

    def failure_hint(self, error: str | None, *, issuer: str, token_endpoint: str) -> str:
        if error == "invalid_client":
            return (
                f"Check that client_id {self.client_id!r} is right and that transport_cert is the certificate "
                "registered for it in the Directory (the server matches its subject DN), issued by the CA "
                f"the server trusts; the request went to {token_endpoint}."
            )
        return _common_hint(error, self.method)


class PrivateKeyJwt(ClientAuth):
    """RFC 7523 ``private_key_jwt``: a short-lived signed ``client_assertion`` in the body."""

    method = AuthMethod.PRIVATE_KEY_JWT

    def __init__(
        self, client_id: str, *, key: PrivateKeyTypes, key_id: str | None, algorithm: str, audience: str
    ) -> None:
        super().__init__(client_id)
        self._key = key
        self.key_id = key_id
        self.algorithm = algorithm
        self.audience = audience

    def assertion_audience(self, *, issuer: str, token_endpoint: str) -> str:
        """The ``aud`` claim: the issuer (default), the token endpoint, or a configured literal URL."""
        if self.audience == "issuer":
            return issuer
        if self.audience == "token_endpoint":
            return token_endpoint
        return self.audience

    def form_fields(self, *, issuer: str, token_endpoint: str) -> dict[str, str]:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.assertion_audience(issuer=issuer, token_endpoint=token_endpoint),
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        headers = {"kid": self.key_id} if self.key_id else None
        assertion = jwt.encode(claims, self._key, algorithm=self.algorithm, headers=headers)  # type: ignore[arg-type]
        return {
            "client_id": self.client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }

    def failure_hint(self, error: str | None, *, issuer: str, token_endpoint: str) -> str:
        if error == "invalid_client":
            audience = self.assertion_audience(issuer=issuer, token_endpoint=token_endpoint)
            return (
                f"The server did not accept the client assertion (alg {self.algorithm}, kid "
                f"{self.key_id or '(none)'}, aud {audience}). Check that signing_private_key matches the key "
                "registered in the client's JWKS under signing_key_id, that signing_alg is allowed for the "
                "client, and try assertion_audience='token_endpoint' if the server expects that audience."
            )
        return _common_hint(error, self.method)


def _common_hint(error: str | None, method: AuthMethod) -> str:
    hints = {
        "invalid_scope": "Request only scopes the client is registered for (usually 'directory:software').",
        "unauthorized_client": (
            f"The client is not allowed the client_credentials grant or the {method.value} method: check the "
            "application's grant types and token endpoint auth method in the Directory."
        ),
        "invalid_request": "The server rejected the request's form: check auth_method and scope.",
        "temporarily_unavailable": "The authorisation server is overloaded: the request was retried; try later.",
        "server_error": "The authorisation server failed: the request was retried; try later.",
    }
    return hints.get(error or "", "See the server's description above.")


def client_auth_for(settings: RaidiamSettings) -> ClientAuth:
    """Build the :class:`ClientAuth` of a connection's ``auth_method``."""
    if settings.auth_method is AuthMethod.TLS_CLIENT_AUTH:
        return TlsClientAuth(settings.client_id)
    assert settings.signing_private_key is not None  # checked by RaidiamSettings
    return PrivateKeyJwt(
        settings.client_id,
        key=load_signing_key(settings.signing_private_key, settings.key_passphrase, settings.signing_alg),
        key_id=settings.signing_key_id,
        algorithm=settings.signing_alg,
        audience=settings.assertion_audience,
    )
