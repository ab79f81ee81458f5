"""Parse and validate the fields of a ``raidiam`` connection into :class:`RaidiamSettings`.

Importable without Airflow: :meth:`RaidiamSettings.from_connection` takes any object with the
``host``/``login``/``password``/``extra_dejson`` attributes of an Airflow ``Connection``.
"""

from __future__ import annotations

import difflib
import enum
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from airflow_provider_raidiam.boundary import require_https_url
from airflow_provider_raidiam.directory.paging import DEFAULT_MAX_PAGES, MAX_PAGE_SIZE
from airflow_provider_raidiam.exceptions import ConfigurationError
from airflow_provider_raidiam.limits import DEFAULT_ATTEMPT_DEADLINE, DEFAULT_MAX_RESPONSE_BYTES, ResponseLimits

log = logging.getLogger(__name__)

DEFAULT_SCOPE = "directory:software"
DEFAULT_TIMEOUT = 30.0
DEFAULT_PAGE_SIZE = 1000
DEFAULT_MAX_WORKERS = 16
MAX_RESPONSE_BYTES_RANGE = (1024, 1024**3)
ATTEMPT_DEADLINE_RANGE = (1.0, 3600.0)
TIMEOUT_RANGE = (0.0, 300.0)
PAGE_SIZE_RANGE = (1, MAX_PAGE_SIZE)
MAX_WORKERS_RANGE = (1, 64)
MAX_PAGES_RANGE = (1, 1_000_000)
DEFAULT_THROTTLE_TIMEOUT = 300.0
SIGNING_ALGORITHMS = ("PS256", "RS256", "ES256")
WELL_KNOWN_SUFFIX = "/.well-known/openid-configuration"


class AuthMethod(enum.StrEnum):
    """Client authentication methods Raidiam accepts at its token endpoint."""

    TLS_CLIENT_AUTH = "tls_client_auth"
    PRIVATE_KEY_JWT = "private_key_jwt"


class ConnectionLike(Protocol):
    """The parts of an Airflow ``Connection`` the settings are read from."""

    host: str | None
    login: str | None
    password: str | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RaidiamSettings:
    """Validated settings of one ``raidiam`` connection.

    Certificate and key fields hold either a file path or PEM text (from a secrets backend); see
    :mod:`airflow_provider_raidiam.credentials`. Secret fields are excluded from ``repr``.
    """

    issuer: str
    client_id: str
    discovery_url: str
    auth_method: AuthMethod = AuthMethod.TLS_CLIENT_AUTH
    transport_cert: str | None = field(default=None, repr=False)
    transport_key: str | None = field(default=None, repr=False)
    key_passphrase: str | None = field(default=None, repr=False)
    ca_bundle: str | None = field(default=None, repr=False)
    signing_key: str | None = field(default=None, repr=False)
    signing_key_id: str | None = None
    signing_alg: str = "PS256"
    assertion_audience: str = "issuer"
    scope: str = DEFAULT_SCOPE
    api_base_url: str | None = None
    participants_url: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    page_size: int = DEFAULT_PAGE_SIZE
    max_workers: int = DEFAULT_MAX_WORKERS
    max_pages: int = DEFAULT_MAX_PAGES
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    attempt_deadline: float = DEFAULT_ATTEMPT_DEADLINE
    max_requests_per_second: float | None = None
    throttle_timeout: float = DEFAULT_THROTTLE_TIMEOUT

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
        extra = {key: value for key, value in (extra or {}).items() if value not in (None, "")}
        _warn_unknown_extras(extra)
        discovery_url = _text(extra, "discovery_url")
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
        discovery_url = discovery_url or issuer + WELL_KNOWN_SUFFIX
        require_https_url(discovery_url, "discovery_url")

        client_id = (login or "").strip()
        if not client_id:
            raise ConfigurationError(
                "The connection has no client_id: set 'Client ID' (login) to the client id of your "
                "software statement in the Directory."
            )

        method_text = _text(extra, "auth_method") or AuthMethod.TLS_CLIENT_AUTH.value
        try:
            auth_method = AuthMethod(method_text)
        except ValueError:
            raise ConfigurationError(
                f"Unknown auth_method {method_text!r}: use one of {[m.value for m in AuthMethod]}."
            ) from None

        signing_alg = (_text(extra, "signing_alg") or "PS256").upper()
        if signing_alg not in SIGNING_ALGORITHMS:
            raise ConfigurationError(f"Unsupported signing_alg {signing_alg!r}: use one of {list(SIGNING_ALGORITHMS)}.")
        audience = _text(extra, "assertion_audience") or "issuer"
        if audience not in ("issuer", "token_endpoint"):
            require_https_url(audience, "assertion_audience")

        max_response_bytes = _positive_integer(extra, "max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES)
        attempt_deadline = _positive_number(extra, "attempt_deadline", DEFAULT_ATTEMPT_DEADLINE)
        settings = cls(
            issuer=issuer,
            client_id=client_id,
            discovery_url=discovery_url,
            auth_method=auth_method,
            transport_cert=_text(extra, "transport_cert"),
            transport_key=_text(extra, "transport_key"),
            key_passphrase=password or None,
            ca_bundle=_text(extra, "ca_bundle"),
            signing_key=_text(extra, "signing_key"),
            signing_key_id=_text(extra, "signing_key_id"),
            signing_alg=signing_alg,
            assertion_audience=audience,
            scope=" ".join((_text(extra, "scope") or DEFAULT_SCOPE).split()),
            api_base_url=_optional_https(extra, "api_base_url"),
            participants_url=_optional_https(extra, "participants_url"),
            timeout=_in_range(extra, "timeout", _positive_number(extra, "timeout", DEFAULT_TIMEOUT), TIMEOUT_RANGE),
            page_size=_in_range(
                extra, "page_size", _positive_integer(extra, "page_size", DEFAULT_PAGE_SIZE), PAGE_SIZE_RANGE
            ),
            max_workers=_in_range(
                extra, "max_workers", _positive_integer(extra, "max_workers", DEFAULT_MAX_WORKERS), MAX_WORKERS_RANGE
            ),
            max_pages=_in_range(
                extra, "max_pages", _positive_integer(extra, "max_pages", DEFAULT_MAX_PAGES), MAX_PAGES_RANGE
            ),
            max_response_bytes=_in_range(extra, "max_response_bytes", max_response_bytes, MAX_RESPONSE_BYTES_RANGE),
            attempt_deadline=_in_range(extra, "attempt_deadline", attempt_deadline, ATTEMPT_DEADLINE_RANGE),
            max_requests_per_second=_optional_positive_number(extra, "max_requests_per_second"),
            throttle_timeout=_positive_number(extra, "throttle_timeout", DEFAULT_THROTTLE_TIMEOUT),
        )
        settings._check_consistency()
        return settings

    def _check_consistency(self) -> None:
        if (self.transport_cert is None) != (self.transport_key is None):
            missing = "transport_key" if self.transport_key is None else "transport_cert"
            raise ConfigurationError(
                f"The connection sets only one of transport_cert/transport_key: set {missing} too "
                "(the transport certificate and its private key, as file paths or PEM text)."
            )
        if self.auth_method is AuthMethod.TLS_CLIENT_AUTH and not self.uses_mtls:
            raise ConfigurationError(
                "auth_method 'tls_client_auth' needs a transport certificate: set the extras "
                "'transport_cert' and 'transport_key' (the certificate registered for this client)."
            )
        if self.auth_method is AuthMethod.PRIVATE_KEY_JWT and self.signing_key is None:
            raise ConfigurationError(
                "auth_method 'private_key_jwt' needs a signing key: set the extra 'signing_key' (the private "
                "key of your signing certificate, a file path or PEM text) and 'signing_key_id' (its kid)."
            )


KNOWN_EXTRAS = frozenset(
    {
        "discovery_url",
        "auth_method",
        "transport_cert",
        "transport_key",
        "ca_bundle",
        "signing_key",
        "signing_key_id",
        "signing_alg",
        "assertion_audience",
        "scope",
        "api_base_url",
        "participants_url",
        "timeout",
        "page_size",
        "max_workers",
        "max_pages",
        "max_response_bytes",
        "attempt_deadline",
        "max_requests_per_second",
        "throttle_timeout",
    }
)


def _warn_unknown_extras(extra: Mapping[str, Any]) -> None:
    for name in sorted(set(extra) - KNOWN_EXTRAS):
        close = difflib.get_close_matches(name, KNOWN_EXTRAS, n=1)
        log.warning("Ignoring unknown connection extra %r%s.", name, f" (did you mean {close[0]!r}?)" if close else "")


def _text(extra: Mapping[str, Any], name: str) -> str | None:
    value = extra.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"Connection extra {name!r} must be a string, got {type(value).__name__}.")
    value = value.strip()
    return value or None


def _optional_https(extra: Mapping[str, Any], name: str) -> str | None:
    url = _text(extra, name)
    if url is not None:
        require_https_url(url, name)
        url = url.rstrip("/")
    return url


def _positive_number(extra: Mapping[str, Any], name: str, default: float) -> float:
    value = extra.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"Connection extra {name!r} must be a number, got {value!r}.") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigurationError(f"Connection extra {name!r} must be greater than 0 (and finite), got {value!r}.")
    return number


def _optional_positive_number(extra: Mapping[str, Any], name: str) -> float | None:
    return _positive_number(extra, name, 1.0) if name in extra else None


def _positive_integer(extra: Mapping[str, Any], name: str, default: int) -> int:
    number = _positive_number(extra, name, default)
    if not number.is_integer():
        raise ConfigurationError(f"Connection extra {name!r} must be a whole number, got {extra.get(name)!r}.")
    return int(number)


N = TypeVar("N", int, float)


def _in_range(extra: Mapping[str, Any], name: str, number: N, bounds: tuple[float, float]) -> N:
    low, high = bounds
    if not low <= number <= high:
        raise ConfigurationError(
            f"Connection extra {name!r} must be between {low:,.0f} and {high:,.0f}, got {extra.get(name)!r}."
        )
    return number
