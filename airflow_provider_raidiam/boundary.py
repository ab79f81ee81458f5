"""Where credentials may go: https URLs checked once, and per-session allow-lists of origins.

Every authenticated request passes through one adapter (see :mod:`airflow_provider_raidiam.http`), which
checks the URL that is actually sent, as urllib3 parses it, against the session's allow-list of
``(scheme, host, port)`` origins. A URL that other parsers would read differently (``\\@``, ``#@``,
userinfo) therefore cannot smuggle the token or the client certificate to another host: what counts is
where the connection goes. Redirects are never followed.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from airflow_provider_raidiam.exceptions import ConfigurationError, ForeignHostError
from airflow_provider_raidiam.server_text import server_text

DEFAULT_PORTS = {"https": 443, "http": 80}
MAX_QUOTED = 200


def quote_untrusted(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` from a server or a template, quoted and safe to put in a message (see :func:`server_text`)."""
    return f"'{server_text(text, limit)}'"


@dataclass(frozen=True, order=True)
class Origin:
    """The ``(scheme, host, port)`` a connection goes to, normalised (lower case, default port, bare IPv6)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin urllib3 connects to for ``url`` (scheme and host lower-cased, IDN as punycode).

        :raises ForeignHostError: the URL has no host, an unknown scheme, or userinfo (``user@``).
        """
        try:
            parsed = parse_url(url)
        except LocationParseError:
            raise ForeignHostError(f"Refusing {_describe(url)}: it is not a valid URL.") from None
        scheme = (parsed.scheme or "").lower()
        if scheme not in DEFAULT_PORTS or not parsed.host:
            raise ForeignHostError(f"Refusing {_describe(url)}: only absolute https:// URLs are called.")
        if parsed.auth is not None:
            raise ForeignHostError(
                f"Refusing a URL with userinfo (user@host) for host {quote_untrusted(parsed.host)}: "
                "credentials are never sent in URLs."
            )
        return cls(scheme, _normal_host(parsed.host), parsed.port or DEFAULT_PORTS[scheme])

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@functools.lru_cache(maxsize=256)  # a handful of hosts; ipaddress's failure path is slow
def _normal_host(host: str) -> str:
    bare = host.lower().removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare


class AllowedOrigins:
    """The origins one session may connect to. Thread-safe; origins are only ever added.

    :param urls: URLs whose origins are allowed from the start.
    :param purpose: what the session is for, used in error messages (e.g. ``"the mTLS session"``).
    """

    def __init__(self, urls: Iterable[str] = (), *, purpose: str = "this session") -> None:
        self.purpose = purpose
        self._origins: frozenset[Origin] = frozenset(Origin.of(url) for url in urls)
        self._lock = threading.Lock()

    def allow(self, url: str) -> Origin:
        """Allow the origin of ``url`` from now on; returns it."""
        origin = Origin.of(url)
        with self._lock:
            self._origins = self._origins | {origin}
        return origin

    @property
    def origins(self) -> frozenset[Origin]:
        """The origins allowed so far."""
        return self._origins

    def check(self, url: str) -> Origin:
        """The origin of ``url`` if it is allowed.

        Both urllib3's and the standard library's parsers must agree on it: a URL they read differently
        is refused as ambiguous even when one reading is allowed.

        :raises ForeignHostError: the URL goes anywhere else.
        """
        origin = Origin.of(url)
        if origin.scheme != "https":
            raise ForeignHostError(f"Refusing {_describe(url)}: Raidiam endpoints are https:// only.")
        if origin in self._origins and _stdlib_origin(url) == origin:
            return origin
        allowed = ", ".join(str(o) for o in sorted(self._origins)) or "no host yet"
        raise ForeignHostError(
            f"Refusing to connect to {origin} for {_describe(url)}: {self.purpose} may only connect to "
            f"{allowed}. Requests only go to the hosts the connection names (issuer and its discovered token "
            "endpoint, api_base_url, participants_url): call paths relative to api_base_url, or correct the connection."
        )


def _stdlib_origin(url: str) -> Origin | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None or parts.username is not None or parts.password is not None:
        return None
    scheme = parts.scheme.lower()
    return Origin(scheme, _normal_host(parts.hostname), port or DEFAULT_PORTS.get(scheme, -1))


def require_https_url(
    url: str,
    field: str,
    *,
    error: type[Exception] = ConfigurationError,
    source: str | None = None,
    allow_query: bool = False,
) -> str:
    """Return ``url`` if it is an ``https://host[:port][/path]`` URL without userinfo, query or fragment.

    The one check for every URL the provider is configured with (issuer, discovery_url, api_base_url,
    participants_url, assertion_audience) or discovers (``*_endpoint``, ``jwks_uri``, mTLS aliases).
    Messages show scheme, host, port and path only: never userinfo (it may hold a password) or a query.

    :param field: the field's name, for the message.
    :param error: the exception type to raise (``DiscoveryError`` for discovered endpoints).
    :param source: where a discovered URL comes from (the discovery document's URL).
    :param allow_query: accept a query string (RFC 6749 allows one on endpoint URLs).
    """
    problem = _https_url_problem(url, allow_query=allow_query)
    if problem is None:
        return url
    if source is None:
        raise error(
            f"{field} must be an https:// URL{problem}, got {_describe(url)}. Raidiam endpoints are only served "
            "over TLS, at plain https:// addresses."
        )
    raise error(
        f"{source}: {field} is {_describe(url)}, not an https:// URL{problem}. Refusing to send credentials over "
        "it: check the Issuer URL (Raidiam publishes only https:// endpoints), or report it to the server's operator."
    )


def _https_url_problem(url: str, *, allow_query: bool) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return " with a valid host and port"
    if parts.scheme != "https" or not parts.hostname:
        return ""
    if "\\" in url or any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        return " without backslashes, spaces or control characters"
    if parts.username is not None or parts.password is not None:
        return " without userinfo (user:password@; credentials never go in URLs)"
    if parts.fragment or url.endswith("#") or (not allow_query and (parts.query or url.endswith("?"))):
        return " without a query or fragment (?... or #...)"
    return None


def _describe(url: str) -> str:
    """``url`` reduced to scheme, host, port and path: no userinfo (may hold a password), query or fragment."""
    match = _URL_SHAPE.match(url)
    assert match is not None  # the pattern matches any string
    scheme, authority, path = match.group(1) or "", match.group(2), match.group(3)
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return quote_untrusted(scheme + authority + path)


_URL_SHAPE = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?(?://)?)([^/?#]*)([^?#]*)", re.DOTALL)
