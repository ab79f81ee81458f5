"""Parse and validate the fields of a ``raidiam`` connection into :class:`RaidiamSettings`.

Each extra is parsed as :mod:`airflow_provider_raidiam.connection_fields` declares it; this module adds the
checks that span several fields (the issuer, the credentials each ``auth_method`` needs: each client-auth
class declares its own, see :mod:`airflow_provider_raidiam.auth.client_auth`).

Importable without Airflow: :meth:`RaidiamSettings.from_connection` takes any object with the
``host``/``login``/``password``/``extra_dejson`` attributes of an Airflow ``Connection``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_provider_raidiam.auth.client_auth import CLIENT_AUTHS
from airflow_provider_raidiam.boundary import require_https_url
from airflow_provider_raidiam.connection_fields import read_extras
from airflow_provider_raidiam.exceptions import ConfigurationError
from airflow_provider_raidiam.limits import ResponseLimits

__all__ = ["ConnectionLike", "RaidiamSettings"]

WELL_KNOWN_SUFFIX = "/.well-known/openid-configuration"


class ConnectionLike(Protocol):
    """The parts of an Airflow ``Connection`` the settings are read from."""

    host: str | None
    login: str | None
    password: str | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class RaidiamSettings:
    """Validated settings of one ``raidiam`` connection.

    Every extra of :data:`~airflow_provider_raidiam.connection_fields.EXTRA_FIELDS` is the attribute of the
    same name, with the default declared there. Certificate and key fields hold either a file path or PEM
    text (from a secrets backend); see :mod:`airflow_provider_raidiam.credentials`. Secret fields are
    excluded from ``repr``.
    """

    issuer: str
    client_id: str
    key_passphrase: str | None = field(repr=False)
    discovery_url: str
    auth_method: str
    """A key of :data:`~airflow_provider_raidiam.auth.client_auth.CLIENT_AUTHS` (a client-auth class's name)."""
    transport_cert: str | None = field(repr=False)
    transport_private_key: str | None = field(repr=False)
    ca_bundle: str | None = field(repr=False)
    signing_private_key: str | None = field(repr=False)
    signing_key_id: str | None
    signing_alg: str
    assertion_audience: str
    scope: str
    api_base_url: str | None
    participants_url: str | None
    timeout: float
    page_size: int
    max_workers: int
    max_pages: int
    max_requests_per_second: float | None
    throttle_timeout: float
    max_response_bytes: int
    attempt_deadline: float

    @property
    def response_limits(self) -> ResponseLimits:
        """The bounds every response is read within (size after decompression, deadline per attempt)."""
        return ResponseLimits(max_bytes=self.max_response_bytes, attempt_deadline=self.attempt_deadline)

    @property
    def uses_mtls(self) -> bool:
        """Whether a transport certificate is configured (token and API calls then go over mTLS)."""
        return self.transport_cert is not None

    @classmethod
    def from_connection(cls, conn: ConnectionLike) -> RaidiamSettings:
        """Build settings from an Airflow connection (or anything shaped like one)."""
        return cls.from_fields(host=conn.host, login=conn.login, password=conn.password, extra=conn.extra_dejson)

    @classmethod
    def from_fields(
        cls,
        *,
        host: str | None,
        login: str | None,
        password: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> RaidiamSettings:
        """Build settings from the connection's standard fields and its extras.

        :raises ConfigurationError: a field is missing or has a value the provider cannot use.
        """
        extras = read_extras(extra)
        discovery_url: str | None = extras.pop("discovery_url")
        issuer = (host or "").strip() or None
        if issuer is None and discovery_url is None:
            raise ConfigurationError(
                "The connection has no issuer: set 'Issuer URL' (host), e.g. https://auth.sandbox.raidiam.io, "
                "or the extra 'discovery_url'."
            )
        if issuer is None:
            assert discovery_url is not None
            if not discovery_url.endswith(WELL_KNOWN_SUFFIX):
                raise ConfigurationError(
                    f"Cannot derive the issuer from discovery_url {discovery_url!r}: set 'Issuer URL' (host) too."
                )
            issuer = discovery_url[: -len(WELL_KNOWN_SUFFIX)]
        if "://" not in issuer:
            issuer = "https://" + issuer
        issuer = issuer.rstrip("/")
        require_https_url(issuer, "Issuer URL (host)")

        client_id = (login or "").strip()
        if not client_id:
            raise ConfigurationError(
                "The connection has no client_id: set 'Client ID' (login) to the client id of your "
                "software statement in the Directory."
            )

        settings = cls(
            issuer=issuer,
            client_id=client_id,
            key_passphrase=password or None,
            discovery_url=discovery_url or issuer + WELL_KNOWN_SUFFIX,
            **extras,
        )
        settings._check_consistency()
        return settings

    def _check_consistency(self) -> None:
        if (self.transport_cert is None) != (self.transport_private_key is None):
            missing = "transport_private_key" if self.transport_private_key is None else "transport_cert"
            raise ConfigurationError(
                f"The connection sets only one of transport_cert/transport_private_key: set {missing} too "
                "(the transport certificate and its private key, as file paths or PEM text)."
            )
        CLIENT_AUTHS[self.auth_method].check_required_fields(self)
