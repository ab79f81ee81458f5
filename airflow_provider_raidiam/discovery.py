"""OpenID Provider discovery: fetched once per process per URL, validated, routed to RFC 8705 aliases."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from airflow_provider_raidiam.boundary import quote_untrusted, require_https_url
from airflow_provider_raidiam.exceptions import DiscoveryError, RedirectError, ResponseDeadlineError
from airflow_provider_raidiam.retry import RetryPolicy
from airflow_provider_raidiam.server_text import server_text
from airflow_provider_raidiam.throttle import Throttle

_cache: dict[tuple[str, str], ProviderMetadata] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class ProviderMetadata:
    """The validated parts of a discovery document, plus the whole document in ``document``."""

    issuer: str
    token_endpoint: str
    mtls_endpoint_aliases: Mapping[str, str] | None
    auth_methods_supported: tuple[str, ...] | None
    document: Mapping[str, Any] = field(repr=False)

    def token_endpoint_for(self, *, mtls: bool) -> str:
        """The token endpoint to call: the mTLS alias when a certificate is used (RFC 8705 section 5).

        A server that publishes no ``mtls_endpoint_aliases`` at all serves mTLS on its plain endpoints;
        one that publishes aliases but none for the token endpoint is refused rather than guessed at.
        """
        if not mtls or self.mtls_endpoint_aliases is None:
            return self.token_endpoint
        alias = self.mtls_endpoint_aliases.get("token_endpoint")
        if alias is None:
            raise DiscoveryError(
                f"The discovery document of {self.issuer} publishes mtls_endpoint_aliases without a "
                "token_endpoint alias, so there is no endpoint for certificate-bound tokens. Check the "
                "issuer URL (it should be the Directory's auth host), or report it to the server's operator."
            )
        return alias


def get_provider_metadata(
    session: requests.Session,
    discovery_url: str,
    *,
    expected_issuer: str,
    timeout: float,
    retry: RetryPolicy,
    throttle: Throttle | None = None,
) -> ProviderMetadata:
    """Return the validated discovery document, fetching it only the first time in this process.

    :param throttle: the throttle shared with other calls to the same server, if any.
    """
    key = (discovery_url, expected_issuer)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    metadata = _fetch(session, discovery_url, expected_issuer, timeout, retry, throttle)
    with _cache_lock:
        return _cache.setdefault(key, metadata)


def clear_cache() -> None:
    """Forget every cached discovery document (tests, or after an issuer's configuration changed)."""
    with _cache_lock:
        _cache.clear()


def _fetch(
    session: requests.Session,
    url: str,
    expected_issuer: str,
    timeout: float,
    retry: RetryPolicy,
    throttle: Throttle | None,
) -> ProviderMetadata:
    def send(remaining: float) -> requests.Response:
        headers = {"Accept": "application/json"}
        return session.get(url, timeout=min(timeout, remaining), allow_redirects=False, headers=headers)

    try:
        response = retry.call(send, describe=f"GET {url}", throttle=throttle)
    except RedirectError as error:
        raise _redirected(url, error.location) from None
    except ResponseDeadlineError:
        raise
    except requests.RequestException as error:
        raise DiscoveryError(
            f"Could not reach the discovery document {url}: {type(error).__name__}. Check the Issuer URL, "
            "the worker's network access to it, and ca_bundle (the CA that signed the server's certificate)."
        ) from error
    if response.is_redirect:  # a session not made by new_session() returns redirects
        raise _redirected(url, response.headers.get("Location", ""))
    if response.status_code != 200:
        raise DiscoveryError(
            f"{url} answered HTTP {response.status_code}, not a discovery document. Check the Issuer URL "
            "(discovery is the issuer + '/.well-known/openid-configuration'), or set discovery_url."
        )
    try:
        document = response.json()
    except ValueError:
        kind = server_text(response.headers.get("Content-Type", "unknown content type"), 100)
        raise DiscoveryError(
            f"{url} did not return JSON ({kind}). Check that the Issuer URL points at the "
            "authorisation server, not a web page."
        ) from None
    return validate(document, expected_issuer=expected_issuer, source=url)


def _redirected(url: str, location: str) -> DiscoveryError:
    return DiscoveryError(
        f"{url} redirects to {quote_untrusted(location)}; redirects are not followed for discovery. Set the "
        "Issuer URL (or discovery_url) to the final address."
    )


def validate(document: Any, *, expected_issuer: str, source: str) -> ProviderMetadata:
    """Check a discovery document: issuer match, https endpoints, a token endpoint."""
    if not isinstance(document, dict):
        raise DiscoveryError(
            f"{source} is not a JSON object, so it is not a discovery document. Check the Issuer URL (or "
            "discovery_url): it must be the authorisation server's, e.g. https://auth.sandbox.raidiam.io."
        )
    issuer = document.get("issuer")
    if not isinstance(issuer, str) or issuer.rstrip("/") != expected_issuer.rstrip("/"):
        raise DiscoveryError(
            f"Issuer mismatch: the connection expects {expected_issuer!r} but {source} says '{server_text(issuer)}'. "
            "Set the connection's Issuer URL to the server's exact issuer (a mismatch can also mean the "
            "discovery URL points at another server)."
        )
    token_endpoint = document.get("token_endpoint")
    if not isinstance(token_endpoint, str):
        raise DiscoveryError(
            f"{source} has no token_endpoint, so no token can be requested from {issuer}. Check that the Issuer "
            "URL is the Directory's authorisation server (e.g. https://auth.sandbox.raidiam.io), not another service."
        )
    for name, value in document.items():
        if (name.endswith("_endpoint") or name == "jwks_uri") and isinstance(value, str):
            _require_endpoint_url(value, server_text(name, 100), source)
    aliases = document.get("mtls_endpoint_aliases")
    if aliases is not None:
        if not isinstance(aliases, dict):
            raise DiscoveryError(
                f"{source}: mtls_endpoint_aliases is not a JSON object. The discovery document is malformed: "
                "check the Issuer URL, or report it to the server's operator."
            )
        for name, value in aliases.items():
            if not isinstance(value, str):
                raise DiscoveryError(
                    f"{source}: mtls_endpoint_aliases.{server_text(name, 100)} is not a URL string. The discovery "
                    "document is malformed: check the Issuer URL, or report it to the server's operator."
                )
            _require_endpoint_url(value, f"mtls_endpoint_aliases.{server_text(name, 100)}", source)
    methods = document.get("token_endpoint_auth_methods_supported")
    return ProviderMetadata(
        issuer=issuer,
        token_endpoint=token_endpoint,
        mtls_endpoint_aliases=aliases,
        auth_methods_supported=tuple(methods) if isinstance(methods, list) else None,
        document=document,
    )


def _require_endpoint_url(url: str, name: str, source: str) -> None:
    require_https_url(url, name, error=DiscoveryError, source=source, allow_query=True)
