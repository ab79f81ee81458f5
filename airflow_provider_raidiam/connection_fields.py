"""The fields of a ``raidiam`` connection, declared once.

:data:`EXTRA_FIELDS` (the connection's extras) and :data:`STANDARD_FIELDS` (Airflow's own columns, relabelled)
drive everything that knows about a field: how :class:`~airflow_provider_raidiam.connection.RaidiamSettings`
parses it (:func:`read_extras`), the unknown-extra warning, ``get_provider_info()``'s ``conn-fields`` and
``ui-field-behaviour``, and the connection reference in ``docs/connection.md``. To add an extra, add one
:class:`ExtraField` here and the attribute of the same name to ``RaidiamSettings``.

The ``auth_method`` choices are not listed here: they are the names in the client-auth registry
(:data:`~airflow_provider_raidiam.auth.client_auth.CLIENT_AUTHS`), read live, so an auth method is declared
once, by its class. That is why this module imports ``auth.client_auth`` (which imports nothing of the
settings), and not the other way round.

Importable without Airflow.
"""

from __future__ import annotations

import difflib
import enum
import logging
import math
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from airflow_provider_raidiam.auth.client_auth import CLIENT_AUTHS, TlsClientAuth
from airflow_provider_raidiam.boundary import require_https_url
from airflow_provider_raidiam.directory.paging import DEFAULT_MAX_PAGES, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from airflow_provider_raidiam.exceptions import ConfigurationError, RaidiamDeprecationWarning
from airflow_provider_raidiam.limits import DEFAULT_ATTEMPT_DEADLINE, DEFAULT_MAX_RESPONSE_BYTES

log = logging.getLogger(__name__)

DEFAULT_SCOPE = "directory:software"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_WORKERS = 16
DEFAULT_THROTTLE_TIMEOUT = 300.0
SIGNING_ALGORITHMS = ("PS256", "RS256", "ES256")
AUDIENCE_KEYWORDS = ("issuer", "token_endpoint")


class Kind(enum.Enum):
    """What a field holds: decides its parsing, its JSON schema and the form's input."""

    TEXT = "text"
    MULTILINE = "multiline"  # certificates: a path or PEM text, shown as a text area
    SECRET = "secret"  # noqa: S105 - private keys: a path or PEM text, shown as a password input
    URL = "url"  # an https:// URL
    CHOICE = "choice"  # one of ``choices``, shown as a drop-down
    NUMBER = "number"  # a finite number > 0 (or within the field's minimum/maximum)
    INTEGER = "integer"  # a whole number > 0 (or within the field's minimum/maximum)


@dataclass(frozen=True)
class ExtraField:
    """One extra of the connection: its form entry, its parsing and its documentation.

    :param name: the key in the connection's ``extra`` JSON and the ``RaidiamSettings`` attribute.
    :param label: the form label.
    :param description: the form's help text.
    :param kind: how the value is parsed and shown.
    :param default: the value when the extra is unset, as JSON (it is parsed like a given value).
    :param choices: the accepted values of a :attr:`Kind.CHOICE` field, in the form's order; a live view
        (such as a registry's keys) is read each time, so the field follows the registry.
    :param minimum: the smallest accepted value of a number field (without it: any number above 0).
    :param maximum: the largest accepted value of a number field.
    :param examples: suggestions the form offers.
    :param convert: a last step after the kind's parsing: ``convert(name, value)`` returns the setting.
    :param aliases: deprecated names still read (with a warning that says how to rename).
    :param details: more text for the documentation, after the description.
    """

    name: str
    label: str
    description: str
    kind: Kind = Kind.TEXT
    default: str | float | None = None
    choices: Collection[str] = field(default=(), compare=False)  # a live view is not hashable
    minimum: float | None = None
    maximum: float | None = None
    examples: tuple[str, ...] = ()
    convert: Callable[[str, Any], Any] | None = None
    aliases: tuple[str, ...] = ()
    details: str = ""

    @property
    def secret(self) -> bool:
        """Whether the value is key material: a password input, masked in logs, hidden by Airflow by name."""
        return self.kind is Kind.SECRET

    @property
    def bounds(self) -> str:
        """The accepted range of a number field, in words ("between 1 and 3,600", "at most 64", ...)."""
        low, high = (None if bound is None else _number_text(bound) for bound in (self.minimum, self.maximum))
        if low is not None and high is not None:
            return f"between {low} and {high}"
        if low is not None:
            return f"at least {low}"
        if high is not None:
            return f"at most {high}"
        return "greater than 0"

    @property
    def schema(self) -> dict[str, Any]:
        """The field's JSON schema, as Airflow's connection form reads it (``conn-fields``)."""
        schema: dict[str, Any]
        if self.kind is Kind.CHOICE:
            schema = {"type": "string", "enum": list(self.choices)}
        elif self.kind in (Kind.NUMBER, Kind.INTEGER):
            schema = {"type": [self.kind.value, "null"]}
            if self.minimum is not None:
                schema["minimum"] = self.minimum
            else:
                schema.update({"minimum": 1} if self.kind is Kind.INTEGER else {"exclusiveMinimum": 0})
            if self.maximum is not None:
                schema["maximum"] = self.maximum
        else:
            schema = {"type": ["string", "null"]}
            if self.kind is Kind.MULTILINE:
                schema["format"] = "multiline"
            elif self.secret:
                schema["format"] = "password"
        if self.default is not None:
            # The form shows a whole number without ".0"; JSON keeps the type it is given.
            is_whole = isinstance(self.default, float) and self.default.is_integer()
            schema["default"] = int(self.default) if is_whole else self.default
        if self.examples:
            schema["examples"] = list(self.examples)
        return schema

    def parse(self, value: object) -> Any:
        """The setting for ``value`` (``None`` or blank: the default).

        :raises ConfigurationError: the value has the wrong type or is out of range; the message names the extra.
        """
        if value is None or (isinstance(value, str) and not value.strip()):
            if self.default is None:
                return None
            value = self.default
        parsed = _PARSERS[self.kind](self, value)
        return self.convert(self.name, parsed) if self.convert else parsed


def _number_text(number: float) -> str:
    return f"{number:,.0f}" if float(number).is_integer() else f"{number:,}"


def _text(field: ExtraField, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"Connection extra {field.name!r} must be a string, got {type(value).__name__}.")
    return value.strip()


def _url(field: ExtraField, value: object) -> str:
    url = _text(field, value)
    require_https_url(url, field.name)
    return url.rstrip("/")


def _choice(field: ExtraField, value: object) -> str:
    text = _text(field, value)
    for choice in field.choices:
        if text.casefold() == choice.casefold():
            return choice
    hint = _did_you_mean(text, field.choices)
    raise ConfigurationError(f"Unknown {field.name} {text!r}: use one of {list(field.choices)}{hint}.")


def _number(field: ExtraField, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]  # anything else is refused below
    except (TypeError, ValueError):
        raise ConfigurationError(f"Connection extra {field.name!r} must be a number, got {value!r}.") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigurationError(f"Connection extra {field.name!r} must be greater than 0 (and finite), got {value!r}.")
    too_low = field.minimum is not None and number < field.minimum
    if too_low or (field.maximum is not None and number > field.maximum):
        raise ConfigurationError(f"Connection extra {field.name!r} must be {field.bounds}, got {value!r}.")
    return number


def _integer(field: ExtraField, value: object) -> int:
    number = _number(field, value)
    if not number.is_integer():
        raise ConfigurationError(f"Connection extra {field.name!r} must be a whole number, got {value!r}.")
    return int(number)


_PARSERS: dict[Kind, Callable[[ExtraField, object], Any]] = {
    Kind.TEXT: _text,
    Kind.MULTILINE: _text,
    Kind.SECRET: _text,
    Kind.URL: _url,
    Kind.CHOICE: _choice,
    Kind.NUMBER: _number,
    Kind.INTEGER: _integer,
}


def _scope(name: str, value: str) -> str:
    return " ".join(value.split())


def _audience(name: str, value: str) -> str:
    if value not in AUDIENCE_KEYWORDS:
        require_https_url(value, name)
    return value


_ENCRYPTED_KEY_HINT = "If it is encrypted, put its passphrase in 'Private key passphrase' (Standard Fields)."

EXTRA_FIELDS: tuple[ExtraField, ...] = (
    ExtraField(
        "auth_method",
        "Client authentication",
        "How the client authenticates at the token endpoint, e.g. with the transport certificate alone "
        "(tls_client_auth) or a signed client assertion (private_key_jwt).",
        Kind.CHOICE,
        default=TlsClientAuth.method,
        choices=CLIENT_AUTHS.keys(),
        details="RFC 8705 and RFC 7523. With `private_key_jwt` the assertion is sent over mTLS when a transport "
        "certificate is set.",
    ),
    ExtraField(
        "api_base_url",
        "Directory API base URL",
        "The mTLS Directory API, e.g. https://matls-api.sandbox.raidiam.io.",
        Kind.URL,
        examples=(
            "https://matls-api.sandbox.raidiam.io",
            "https://matls-api.directory.openbankingbrasil.org.br",
            "https://matls-api.sandbox.directory.openbankingbrasil.org.br",
        ),
        details="Needed by `RaidiamDirectoryOperator`, `RaidiamApiOperator` and `hook.request()`. The access token "
        "and the client certificate are only ever sent to this host.",
    ),
    ExtraField(
        "scope",
        "Scope",
        "Space-separated scopes to request.",
        default=DEFAULT_SCOPE,
        convert=_scope,
    ),
    ExtraField(
        "transport_cert",
        "Transport certificate",
        "The software statement's transport (rtstransport) certificate: a file path on the worker, or the "
        "PEM text itself.",
        Kind.MULTILINE,
        details="Required for `tls_client_auth`. Token and Directory API calls present it.",
    ),
    ExtraField(
        "transport_private_key",
        "Transport private key",
        f"The transport certificate's private key: a file path or the PEM text. {_ENCRYPTED_KEY_HINT}",
        Kind.SECRET,
        aliases=("transport_key",),
        details="Required together with `transport_cert`.",
    ),
    ExtraField(
        "ca_bundle",
        "CA bundle",
        "The ecosystem's CA chain that signs the server certificates: a file path or PEM text. Leave empty "
        "to use the system trust store.",
        Kind.MULTILINE,
        details="When set, it is the only trust anchor (it also wins over `REQUESTS_CA_BUNDLE`). TLS "
        "verification cannot be turned off.",
    ),
    ExtraField(
        "signing_private_key",
        "Signing private key (private_key_jwt)",
        "The signing (rtssigning) certificate's private key that signs client assertions: a path or PEM text. "
        + _ENCRYPTED_KEY_HINT,
        Kind.SECRET,
        aliases=("signing_key",),
        details="Required for `private_key_jwt`.",
    ),
    ExtraField(
        "signing_key_id",
        "Signing key ID (kid)",
        "The kid of the signing key as registered in the Directory (sent in the assertion header).",
    ),
    ExtraField(
        "signing_alg",
        "Signing algorithm",
        "Algorithm of the client assertion.",
        Kind.CHOICE,
        default="PS256",
        choices=SIGNING_ALGORITHMS,
        details="It must fit the key: RSA of 2048 bits or more for PS256/RS256, EC P-256 for ES256.",
    ),
    ExtraField(
        "assertion_audience",
        "Client assertion audience",
        "'issuer' (default), 'token_endpoint', or a literal URL to put in the assertion's aud claim.",
        default="issuer",
        examples=AUDIENCE_KEYWORDS,
        convert=_audience,
        details="A literal URL must be `https://`.",
    ),
    ExtraField(
        "discovery_url",
        "Discovery URL",
        "Only when discovery is not at the issuer + /.well-known/openid-configuration.",
        Kind.URL,
        details="With an empty *Issuer URL*, the issuer is taken from this URL.",
    ),
    ExtraField(
        "participants_url",
        "Participants URL",
        "The public participants list, e.g. https://data.directory.openbankingbrasil.org.br/participants.",
        Kind.URL,
        examples=(
            "https://data.directory.openbankingbrasil.org.br/participants",
            "https://data.sandbox.directory.openbankingbrasil.org.br/participants",
        ),
        details="For the `participants_*` tables.",
    ),
    ExtraField(
        "timeout",
        "Timeout (seconds)",
        "Connect timeout, and the longest wait for the next bytes of a response, up to 300 (see attempt_deadline).",
        Kind.NUMBER,
        default=DEFAULT_TIMEOUT,
        minimum=0,
        maximum=300,
        details="A whole attempt is bounded by `attempt_deadline`.",
    ),
    ExtraField(
        "page_size",
        "Page size",
        "Records per page on paged Directory endpoints (1 to 50,000).",
        Kind.INTEGER,
        default=DEFAULT_PAGE_SIZE,
        minimum=1,
        maximum=MAX_PAGE_SIZE,
    ),
    ExtraField(
        "max_workers",
        "Concurrent requests",
        "Parallel Directory calls in fan-out reads (1 to 64; one token and one connection pool are shared).",
        Kind.INTEGER,
        default=DEFAULT_MAX_WORKERS,
        minimum=1,
        maximum=64,
    ),
    ExtraField(
        "max_pages",
        "Page limit",
        "Most pages one paged read may take (1 to 1,000,000); a server claiming more fails the read.",
        Kind.INTEGER,
        default=DEFAULT_MAX_PAGES,
        minimum=1,
        maximum=1_000_000,
    ),
    ExtraField(
        "max_requests_per_second",
        "Max requests per second",
        "Optional cap on Directory API requests per second; without it the client adapts to the gateway's limit.",
        Kind.NUMBER,
    ),
    ExtraField(
        "throttle_timeout",
        "Throttle timeout (seconds)",
        "Fail only after the gateway has refused every request (HTTP 429) for this long.",
        Kind.NUMBER,
        default=DEFAULT_THROTTLE_TIMEOUT,
    ),
    ExtraField(
        "max_response_bytes",
        "Response size limit (bytes)",
        "Largest response body accepted, counted after decompression; a larger one fails the call.",
        Kind.INTEGER,
        default=DEFAULT_MAX_RESPONSE_BYTES,
        minimum=1024,
        maximum=1024**3,
        details="64 MiB by default. A larger body fails the call with `ResponseTooLargeError`; see "
        "[Security](security.md#bounded-responses).",
    ),
    ExtraField(
        "attempt_deadline",
        "Attempt deadline (seconds)",
        "Wall-clock limit of one HTTP attempt: connect, headers and the whole body.",
        Kind.NUMBER,
        default=DEFAULT_ATTEMPT_DEADLINE,
        minimum=1,
        maximum=3600,
        details="A slower attempt fails with `ResponseDeadlineError`, which is retried like a timeout.",
    ),
)
"""The connection's extras, in the order of the form."""

EXTRAS: Mapping[str, ExtraField] = MappingProxyType({field.name: field for field in EXTRA_FIELDS})
""":data:`EXTRA_FIELDS` by name."""

_BY_ALIAS: Mapping[str, ExtraField] = MappingProxyType(
    {alias: field for field in EXTRA_FIELDS for alias in field.aliases}
)


@dataclass(frozen=True)
class StandardField:
    """One of Airflow's standard connection columns, as the ``raidiam`` form shows it.

    :param name: the column (``host``, ``login``, ``password``).
    :param label: the form label that replaces Airflow's.
    :param placeholder: the form's placeholder.
    :param required: when it must be set, for the documentation.
    :param details: its meaning, for the documentation.
    """

    name: str
    label: str
    placeholder: str
    required: str
    details: str


STANDARD_FIELDS: tuple[StandardField, ...] = (
    StandardField(
        "host",
        "Issuer URL",
        "https://auth.sandbox.raidiam.io",
        "yes (or `discovery_url`)",
        "The authorisation server's issuer, e.g. `https://auth.sandbox.raidiam.io`. The discovery document must "
        "name exactly this issuer. `https://` is added when missing and a trailing `/` is removed. Only `https` "
        "is accepted.",
    ),
    StandardField(
        "login",
        "Client ID",
        "client id of your software statement",
        "yes",
        "The client ID of your software statement in the Directory (a UUID, a short random string or a URL, "
        "depending on the ecosystem).",
    ),
    StandardField(
        "password",
        "Private key passphrase",
        "only if a private key is encrypted",
        "no",
        "The passphrase of an encrypted transport or signing key. Leave it empty for unencrypted keys.",
    ),
)
"""The standard columns the provider reads; the others are hidden from the form."""

HIDDEN_STANDARD_FIELDS = ("port", "schema")
"""Standard columns the provider does not use."""


def read_extras(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parse a connection's extras into one setting per :data:`EXTRA_FIELDS` entry, by name.

    Empty values (``None``, ``""``) count as unset. A deprecated name is read (with a warning that says
    how to rename it); an unknown extra is ignored with a warning that names the closest known one.

    :raises ConfigurationError: a value cannot be used, or an extra is set under its old and new names.
    """
    given = {key: value for key, value in (extra or {}).items() if value not in (None, "")}
    for name in sorted(given):
        if name in _BY_ALIAS:
            _warn_deprecated(name, _BY_ALIAS[name], both_set=_BY_ALIAS[name].name in given)
        elif name not in EXTRAS:
            log.warning("Ignoring unknown connection extra %r%s.", name, _did_you_mean(name, [*EXTRAS, *_BY_ALIAS]))
    return {
        field.name: field.parse(
            given.get(field.name, next((given[alias] for alias in field.aliases if alias in given), None))
        )
        for field in EXTRA_FIELDS
    }


def _did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the known word closest to ``word``, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _warn_deprecated(alias: str, field: ExtraField, *, both_set: bool) -> None:
    if both_set:
        raise ConfigurationError(
            f"The connection sets both {field.name!r} and its deprecated name {alias!r}: remove {alias!r} "
            f"and keep the value in {field.name!r}."
        )
    warnings.warn(
        f"Connection extra {alias!r} is deprecated: rename it to {field.name!r}, with the same value (edit the "
        f"connection's extra JSON, or the '{field.label}' field of its form). Airflow hides extras by name: it shows "
        f"{alias!r} in clear in its UI and REST API, {field.name!r} as '***'.",
        RaidiamDeprecationWarning,
        stacklevel=4,
    )
