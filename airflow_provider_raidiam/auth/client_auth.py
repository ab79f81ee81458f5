"""Client authentication methods for the token endpoint: one class per method, registered by its name.

Each :class:`ClientAuth` subclass declares the plain ``auth_method`` name it implements (:attr:`ClientAuth.method`)
and registers itself under it in :data:`CLIENT_AUTHS` when it is defined (as Authlib does). That registry is
the one home of the methods: the ``auth_method`` drop-down of the connection form and its older-Airflow
fallback, the values settings accept (with a did-you-mean hint for a typo), the generated connection
reference, the per-method required-field check and :func:`client_auth_for` all read it. Adding a method is
one class here.

Import direction: this module imports nothing of the connection's fields or settings (only credentials and
exceptions), so :mod:`~airflow_provider_raidiam.connection_fields` imports it and gives the ``auth_method``
field the registry's live key view as its choices: a class defined later, even in a test, is a choice at
once, with no lazy import and no second list. Settings reach this module only for typing
(:meth:`ClientAuth.from_settings`).
"""

from __future__ import annotations

import abc
import secrets
import time
from typing import TYPE_CHECKING, ClassVar

import jwt
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from airflow_provider_raidiam.credentials import load_signing_key
from airflow_provider_raidiam.exceptions import ConfigurationError

if TYPE_CHECKING:
    from airflow_provider_raidiam.connection import RaidiamSettings

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60


CLIENT_AUTHS: dict[str, type[ClientAuth]] = {}
"""Every client-auth class by the ``auth_method`` name it implements, in the order they were defined."""


class ClientAuth(abc.ABC):
    """Adds a client's credentials to a token request's form body.

    A subclass sets :attr:`method` (it is then registered in :data:`CLIENT_AUTHS`), :attr:`requires`,
    :attr:`needs` and :attr:`needs_help`, and implements :meth:`from_settings`.
    """

    method: ClassVar[str]
    """The ``auth_method`` name (the connection's extra, the token endpoint's auth method name)."""
    requires: ClassVar[tuple[str, ...]]
    """The :class:`RaidiamSettings` fields this method cannot work without."""
    needs: ClassVar[str]
    """What those fields are, for the error message (e.g. ``"a signing key"``)."""
    needs_help: ClassVar[str]
    """How to fill them, for the error message (follows "set the extra 'name'")."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "method" in cls.__dict__:
            CLIENT_AUTHS[cls.method] = cls

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: RaidiamSettings) -> ClientAuth:
        """Build this method's client auth from settings that passed :func:`check_required_fields`."""

    @classmethod
    def check_required_fields(cls, settings: RaidiamSettings) -> None:
        """Raise :class:`ConfigurationError` naming the :attr:`requires` fields when one of them is unset."""
        if all(getattr(settings, name) is not None for name in cls.requires):
            return
        names = " and ".join(f"'{name}'" for name in cls.requires)
        extras = "extras" if len(cls.requires) > 1 else "extra"
        raise ConfigurationError(
            f"auth_method '{cls.method}' needs {cls.needs}: set the {extras} {names} {cls.needs_help}."
        )

    @abc.abstractmethod
    def form_fields(self, *, issuer: str, token_endpoint: str) -> dict[str, str]:
        """Return the credential fields to add to the ``client_credentials`` form body."""

    @abc.abstractmethod
    def failure_hint(self, error: str | None, *, issuer: str, token_endpoint: str) -> str:
        """Return the most likely fix for a token endpoint ``error`` code, in this method's terms."""


class TlsClientAuth(ClientAuth):
    """RFC 8705 ``tls_client_auth``: ``client_id`` in the body, the certificate on the TLS connection."""

    method = "tls_client_auth"
    requires = ("transport_cert", "transport_private_key")
    needs = "a transport certificate"
    needs_help = "(the certificate registered for this client)"

    @classmethod
    def from_settings(cls, settings: RaidiamSettings) -> TlsClientAuth:
        return cls(settings.client_id)

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

    method = "private_key_jwt"
    requires = ("signing_private_key",)
    needs = "a signing key"
    needs_help = "(the private key of your signing certificate, a file path or PEM text) and 'signing_key_id' (its kid)"

    def __init__(
        self, client_id: str, *, key: PrivateKeyTypes, key_id: str | None, algorithm: str, audience: str
    ) -> None:
        super().__init__(client_id)
        self._key = key
        self.key_id = key_id
        self.algorithm = algorithm
        self.audience = audience

    @classmethod
    def from_settings(cls, settings: RaidiamSettings) -> PrivateKeyJwt:
        assert settings.signing_private_key is not None  # required: checked by RaidiamSettings
        return cls(
            settings.client_id,
            key=load_signing_key(settings.signing_private_key, settings.key_passphrase, settings.signing_alg),
            key_id=settings.signing_key_id,
            algorithm=settings.signing_alg,
            audience=settings.assertion_audience,
        )

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


def _common_hint(error: str | None, method: str) -> str:
    hints = {
        "invalid_scope": "Request only scopes the client is registered for (usually 'directory:software').",
        "unauthorized_client": (
            f"The client is not allowed the client_credentials grant or the {method} method: check the "
            "application's grant types and token endpoint auth method in the Directory."
        ),
        "invalid_request": "The server rejected the request's form: check auth_method and scope.",
        "temporarily_unavailable": "The authorisation server is overloaded: the request was retried; try later.",
        "server_error": "The authorisation server failed: the request was retried; try later.",
    }
    return hints.get(error or "", "See the server's description above.")


def client_auth_for(settings: RaidiamSettings) -> ClientAuth:
    """Build the :class:`ClientAuth` registered for a connection's ``auth_method``."""
    return CLIENT_AUTHS[settings.auth_method].from_settings(settings)
