"""``RaidiamClient``: discovery, certificate-bound tokens and Directory API calls, without Airflow.

The Airflow hook (:mod:`airflow_provider_raidiam.hooks.raidiam`) is a thin shell around this class.
"""

from __future__ import annotations

import logging
import ssl
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

import requests

from airflow_provider_raidiam.auth.bearer import BearerAuth
from airflow_provider_raidiam.auth.client_auth import client_auth_for
from airflow_provider_raidiam.auth.token_client import TokenClient
from airflow_provider_raidiam.boundary import AllowedOrigins
from airflow_provider_raidiam.concurrency import Counter, FanOut, Logger, once
from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.connection_fields import DEFAULT_TIMEOUT
from airflow_provider_raidiam.credentials import TlsMaterial, build_tls_material
from airflow_provider_raidiam.directory.paging import PageLimits, read_all_pages
from airflow_provider_raidiam.discovery import ProviderMetadata, get_provider_metadata
from airflow_provider_raidiam.exceptions import ConfigurationError, DiscoveryError
from airflow_provider_raidiam.http import (
    INTERACTION_HEADER,
    allowed_origins,
    api_error,
    new_session,
    parse_json,
    transport_error,
)
from airflow_provider_raidiam.limits import ResponseLimits
from airflow_provider_raidiam.retry import RetryPolicy
from airflow_provider_raidiam.server_text import interaction_id as valid_interaction_id
from airflow_provider_raidiam.server_text import server_text
from airflow_provider_raidiam.throttle import Throttle

T = TypeVar("T")
R = TypeVar("R")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_EXPIRED_RENEWALS = 5
"""Renewals per call when the API says the token expired (a busy machine can age a token in flight)."""


class RaidiamClient:
    """One Raidiam client identity: discovery, tokens and API calls over one mTLS connection pool.

    Thread-safe: the fan-out helpers share this client's token and pooled connections across threads.

    :param settings: validated connection settings.
    :param on_secret: called with every secret the client creates (access tokens, client assertions),
        e.g. Airflow's ``mask_secret``.
    :param retry: retry policy for idempotent requests and token requests (default: the connection's
        ``throttle_timeout`` with default retries).
    """

    def __init__(
        self,
        settings: RaidiamSettings,
        *,
        on_secret: Callable[[str], None] | None = None,
        retry: RetryPolicy | None = None,
        logger: Logger | None = None,
    ) -> None:
        self.settings = settings
        self._on_secret = on_secret or (lambda _secret: None)
        self.retry = retry or RetryPolicy(throttle_timeout=settings.throttle_timeout)
        self.log: Logger = logger or logging.getLogger(__name__)
        self.throttle: Throttle = self.retry.new_throttle(settings.max_requests_per_second)
        """Pause and rate limit shared by every Directory API call of this client."""
        self._calls = Counter()
        self._attempts = Counter()
        self._fan_out = FanOut(settings.max_workers, self.log, self._describe_calls)

    # -- connections -------------------------------------------------------------------------------

    @once
    def tls(self) -> TlsMaterial:
        """The SSL contexts (built once) and facts about the transport certificate."""
        settings = self.settings
        return build_tls_material(
            ca_bundle=settings.ca_bundle,
            transport_cert=settings.transport_cert,
            transport_private_key=settings.transport_private_key,
            passphrase=settings.key_passphrase,
        )

    @once
    def mtls_session(self) -> requests.Session:
        """Keep-alive session presenting the transport certificate (token and Directory API calls).

        It connects only to the ``api_base_url`` origin and, once discovery has named it, the token
        endpoint's origin.
        """
        context = self.tls.mtls_context or self.tls.server_only_context
        base = self.settings.api_base_url
        allowed = AllowedOrigins([base] if base else [], purpose="the mTLS session (token and API calls)")
        return new_session(
            context,
            pool_maxsize=self.settings.max_workers + 2,
            allowed=allowed,
            limits=self.settings.response_limits,
        )

    @once
    def public(self) -> PublicClient:
        """Client for public endpoints (discovery, participants list): no token, no client certificate."""
        settings = self.settings
        return PublicClient(
            self.tls.server_only_context,
            allowed_urls=[settings.discovery_url, *([settings.participants_url] if settings.participants_url else [])],
            timeout=self.settings.timeout,
            retry=self.retry,
            pool_maxsize=self.settings.max_workers + 2,
            logger=self.log,
            limits=self.settings.response_limits,
        )

    # -- discovery and tokens ----------------------------------------------------------------------

    def discovery(self) -> ProviderMetadata:
        """The validated discovery document (fetched once per process per URL)."""
        return get_provider_metadata(
            self.public.session,
            self.settings.discovery_url,
            expected_issuer=self.settings.issuer,
            timeout=self.settings.timeout,
            retry=self.retry,
            throttle=self.public.throttle,
        )

    @once
    def token_client(self) -> TokenClient:
        """The token client of this identity (routes to the mTLS alias when a certificate is set)."""
        metadata = self.discovery()
        method = self.settings.auth_method
        supported = metadata.auth_methods_supported
        if supported is not None and method not in supported:
            raise DiscoveryError(
                f"{metadata.issuer} does not support auth_method {method!r} (it supports "
                f"{server_text(list(supported))}). Change the connection's auth_method."
            )
        endpoint = metadata.token_endpoint_for(mtls=self.settings.uses_mtls)
        allowed_origins(self.mtls_session).allow(endpoint)
        if self.settings.uses_mtls and endpoint == metadata.token_endpoint:
            self.log.info("%s publishes no mtls_endpoint_aliases; using %s over mTLS", metadata.issuer, endpoint)
        certificate = self.tls.certificate
        return TokenClient(
            session=self.mtls_session,
            token_endpoint=endpoint,
            issuer=metadata.issuer,
            client_auth=client_auth_for(self.settings),
            scope=self.settings.scope,
            certificate_thumbprint=certificate.thumbprint if certificate else None,
            timeout=self.settings.timeout,
            retry=self.retry,
            on_new_token=self._on_secret,
        )

    def access_token(self) -> str:
        """A valid access token (cached, renewed before expiry, bound to our certificate)."""
        return self.token_client.get()

    # -- API calls ---------------------------------------------------------------------------------

    def url_for(self, endpoint: str) -> str:
        """Absolute URL of ``endpoint``: a path relative to ``api_base_url``, or a full URL on its host.

        The access token and the client certificate only ever go to the configured Directory API host:
        a full URL is checked here (before any token is requested) and again, on the URL actually sent,
        by the session's adapter.
        """
        base = self.settings.api_base_url
        if base is None:
            raise ConfigurationError(
                f"Cannot call {endpoint!r}: the connection has no api_base_url. Set the extra 'api_base_url' "
                "to the Directory API, e.g. https://matls-api.sandbox.raidiam.io."
            )
        if "://" not in endpoint:
            return f"{base}/{endpoint.lstrip('/')}"
        self._api_origin.check(endpoint)
        return endpoint

    @once
    def _api_origin(self) -> AllowedOrigins:
        assert self.settings.api_base_url is not None
        return AllowedOrigins([self.settings.api_base_url], purpose="authenticated API calls")

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        raise_for_status: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Call the Directory API with the Bearer token over the transport certificate.

        Every call waits for this client's shared :attr:`throttle` (a 429 pauses all of them). Idempotent
        methods are retried on connection errors and 5xx (see :class:`RetryPolicy`); a 401 drops the
        cached token, fetches a new one and retries: once, or up to ``MAX_EXPIRED_RENEWALS`` times when
        the token had expired.

        :param raise_for_status: raise :class:`ApiError` on an error status (default), else return it.
        :param kwargs: passed to :meth:`requests.Session.request` (``json``, ``data``, ``timeout``, ...).
        :raises ThrottledError: the gateway refused every request for ``throttle_timeout`` seconds.
        """
        method = method.upper()
        url = self.url_for(endpoint)
        sent_headers = {"Accept": "application/json", INTERACTION_HEADER: str(uuid.uuid4())}
        sent_headers.update(headers or {})
        timeout = kwargs.pop("timeout", self.settings.timeout)
        kwargs["allow_redirects"] = False  # the adapter refuses redirects anyway
        policy = self.retry if method in IDEMPOTENT_METHODS else replace(self.retry, attempts=1)
        clock = self.retry.clock
        assert self.settings.api_base_url is not None  # url_for refused the call otherwise
        bearer = BearerAuth(self.access_token, self.settings.api_base_url)
        kwargs["auth"] = bearer

        self._calls.add()

        def send_once(remaining: float) -> requests.Response:
            self._attempts.add()
            attempt_timeout = min(timeout, remaining) if isinstance(timeout, int | float) else timeout
            sent_at = clock.now()
            response = self.mtls_session.request(
                method,
                url,
                params=params,
                headers=sent_headers,
                timeout=attempt_timeout,
                **kwargs,
            )
            self.token_client.observe_request(clock.now() - sent_at)
            return response

        def renew(response: requests.Response, renewals: int) -> bool:
            expired = self.token_client.expired(bearer.sent_token, response)
            if renewals >= (MAX_EXPIRED_RENEWALS if expired else 1):
                return False
            self.token_client.invalidate(bearer.sent_token)
            why = "the token expired" if expired else "the token was refused"
            self.log.info("%s %s -> 401 (%s); renewing the access token and retrying", method, url, why)
            return True

        started = clock.now()
        try:
            response = policy.call(
                send_once, describe=f"{method} {url}", throttle=self.throttle, renew=renew, prepare=self.access_token
            )
        except requests.RequestException as error:
            raise transport_error(method, url, error, sent_headers[INTERACTION_HEADER]) from None
        self.log.debug(
            "%s %s -> %s (%.0f ms, %s=%s)",
            method,
            url,
            response.status_code,
            (clock.now() - started) * 1000,
            INTERACTION_HEADER,
            valid_interaction_id(response.headers.get(INTERACTION_HEADER), sent_headers[INTERACTION_HEADER]),
        )
        if raise_for_status and response.status_code >= 400:
            raise api_error(response, sent_headers[INTERACTION_HEADER])
        return response

    def get_json(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a protected endpoint and return its parsed JSON body."""
        return parse_json(self.request("GET", endpoint, params=params))

    def get_public_json(self, url: str) -> Any:
        """GET a public URL (no token, no client certificate), e.g. the participants list.

        Only the discovery and ``participants_url`` hosts are reachable, plus those :meth:`allow_public` adds.
        """
        return self.public.get_public_json(url)

    def allow_public(self, url: str) -> None:
        """Let the public session (which sends no token and no certificate) also reach ``url``'s host."""
        self.public.allowed.allow(url)

    @property
    def page_limits(self) -> PageLimits:
        """The connection's ``page_size`` and ``max_pages``: how :meth:`paginate` and the tables page."""
        return PageLimits(size=self.settings.page_size, max_pages=self.settings.max_pages)

    def paginate(
        self, endpoint: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> list[dict[str, Any]]:
        """Every record of a Raidiam page-number paged endpoint (``page`` from 0, ``size``).

        All pages are read and checked before anything is returned: the record count must equal
        ``totalSize``, and a ``totalSize`` that moves during the read restarts it (twice at most), so
        callers never see a half-consistent, duplicated or short result. A plain JSON array passes through.

        :param page_size: instead of the connection's ``page_size``.
        """
        return read_all_pages(self, endpoint, params, page_size)

    # -- concurrency -------------------------------------------------------------------------------

    def call_stats(self) -> tuple[int, int]:
        """(API calls made, HTTP attempts including retries) so far; thread-safe."""
        return self._calls.value, self._attempts.value

    def _describe_calls(self) -> str:
        calls, attempts = self.call_stats()
        return f"; {calls} API calls so far, {attempts - calls} retries{self.throttle.describe()}"

    def fan_out(self, func: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Call ``func`` on every item with at most ``max_workers`` threads; results in input order.

        All calls share this client's token and connection pool; see :class:`FanOut` for errors,
        nesting and progress logs.
        """
        return self._fan_out.map(func, items)

    def close(self) -> None:
        """Release pooled connections and worker threads."""
        self._fan_out.close()
        mtls_session = self.__dict__.pop("mtls_session", None)
        if mtls_session is not None:
            mtls_session.close()
        public = self.__dict__.pop("public", None)
        if public is not None:
            public.close()

    def __enter__(self) -> RaidiamClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PublicClient:
    """Reads Raidiam's public endpoints (discovery, the participants list): no token, no client certificate.

    :param ssl_context: a server-verifying context, e.g. ``build_tls_material(ca_bundle=...).server_only_context``.
    :param allowed_urls: the URLs whose hosts (scheme, host, port) this client may connect to.
    :param limits: size and time bounds of every response (default :class:`ResponseLimits`).
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        allowed_urls: Iterable[str],
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        pool_maxsize: int = 4,
        logger: Logger | None = None,
        limits: ResponseLimits | None = None,
    ) -> None:
        self.allowed = AllowedOrigins(allowed_urls, purpose="the public session (no token, no certificate)")
        self.session = new_session(ssl_context, pool_maxsize=pool_maxsize, allowed=self.allowed, limits=limits)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.throttle = self.retry.new_throttle()
        """Pause and rate limit shared by the calls to public endpoints."""
        self.log: Logger = logger or logging.getLogger(__name__)

    @classmethod
    def for_ca_bundle(cls, ca_bundle: str | None = None, **kwargs: Any) -> PublicClient:
        """A client trusting ``ca_bundle`` (path or PEM text), or the system trust store when ``None``.

        ``kwargs`` are those of the constructor (``allowed_urls`` is required).
        """
        material = build_tls_material(
            ca_bundle=ca_bundle, transport_cert=None, transport_private_key=None, passphrase=None
        )
        return cls(material.server_only_context, **kwargs)

    def get_public_json(self, url: str) -> Any:
        """GET ``url`` (retried when transient) and return its parsed JSON body."""
        self.allowed.check(url)
        interaction_id = str(uuid.uuid4())
        headers = {"Accept": "application/json", INTERACTION_HEADER: interaction_id}
        try:
            response = self.retry.call(
                lambda remaining: self.session.get(
                    url, headers=headers, timeout=min(self.timeout, remaining), allow_redirects=False
                ),
                describe=f"GET {url}",
                throttle=self.throttle,
            )
        except requests.RequestException as error:
            raise transport_error("GET", url, error, interaction_id) from None
        self.log.debug("GET %s -> %s (%s=%s)", url, response.status_code, INTERACTION_HEADER, interaction_id)
        if response.status_code >= 400:
            raise api_error(response, interaction_id)
        return parse_json(response)

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()
