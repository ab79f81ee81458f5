"""``RaidiamClient``: discovery, certificate-bound tokens and Directory API calls, without Airflow.

The Airflow hook (:mod:`airflow_provider_raidiam.hooks.raidiam`) is a thin shell around this class.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, Generic, Protocol, TypeVar, overload
from urllib.parse import urlsplit

import requests

from airflow_provider_raidiam.auth.client_auth import client_auth_for
from airflow_provider_raidiam.auth.token_client import TokenClient
from airflow_provider_raidiam.connection import DEFAULT_TIMEOUT, RaidiamSettings
from airflow_provider_raidiam.credentials import TlsMaterial, build_tls_material
from airflow_provider_raidiam.discovery import ProviderMetadata, get_provider_metadata
from airflow_provider_raidiam.exceptions import (
    ApiError,
    ConfigurationError,
    DiscoveryError,
    PaginationError,
    ResponseFormatError,
)
from airflow_provider_raidiam.http import RetryPolicy, new_session

T = TypeVar("T")
R = TypeVar("R")
V = TypeVar("V")

INTERACTION_HEADER = "x-fapi-interaction-id"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_PAGING_RESTARTS = 2
PROGRESS_INTERVAL = 10.0


class once(Generic[V]):
    """``functools.cached_property`` that builds the value once even when threads race for it.

    (Python 3.12 removed cached_property's lock; fan-out workers may touch a client's lazy parts first.)
    """

    def __init__(self, func: Callable[[Any], V]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__
        self.lock = threading.RLock()

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> once[V]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> V: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> V | once[V]:
        if instance is None:
            return self
        values = instance.__dict__
        if self.name not in values:
            with self.lock:
                if self.name not in values:
                    values[self.name] = self.func(instance)
        value: V = values[self.name]
        return value


class _Counter:
    """A thread-safe counter."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.value += 1


class Logger(Protocol):
    """What the client needs of a logger (``logging.Logger`` and Airflow's task logger both fit)."""

    def debug(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...
    def info(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...
    def warning(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...


class RaidiamClient:
    """One Raidiam client identity: discovery, tokens and API calls over one mTLS connection pool.

    Thread-safe: the fan-out helpers share this client's token and pooled connections across threads.

    :param settings: validated connection settings.
    :param on_secret: called with every secret the client creates (access tokens, client assertions),
        e.g. Airflow's ``mask_secret``.
    :param retry: retry policy for idempotent requests and token requests.
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
        self.retry = retry or RetryPolicy()
        self.log: Logger = logger or logging.getLogger(__name__)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._worker = threading.local()
        self._calls = _Counter()
        self._attempts = _Counter()

    # -- connections -------------------------------------------------------------------------------

    @once
    def tls(self) -> TlsMaterial:
        """The SSL contexts (built once) and facts about the transport certificate."""
        settings = self.settings
        return build_tls_material(
            ca_bundle=settings.ca_bundle,
            transport_cert=settings.transport_cert,
            transport_key=settings.transport_key,
            passphrase=settings.key_passphrase,
        )

    @once
    def mtls_session(self) -> requests.Session:
        """Keep-alive session presenting the transport certificate (token and Directory API calls)."""
        context = self.tls.mtls_context or self.tls.server_only_context
        return new_session(context, pool_maxsize=self.settings.max_workers + 2)

    @once
    def public(self) -> PublicClient:
        """Client for public endpoints (discovery, participants list): no token, no client certificate."""
        return PublicClient(
            self.tls.server_only_context,
            timeout=self.settings.timeout,
            retry=self.retry,
            pool_maxsize=self.settings.max_workers + 2,
            logger=self.log,
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
        )

    @once
    def token_client(self) -> TokenClient:
        """The token client of this identity (routes to the mTLS alias when a certificate is set)."""
        metadata = self.discovery()
        method = self.settings.auth_method
        supported = metadata.auth_methods_supported
        if supported is not None and method.value not in supported:
            raise DiscoveryError(
                f"{metadata.issuer} does not support auth_method {method.value!r} (it supports "
                f"{list(supported)}). Change the connection's auth_method."
            )
        endpoint = metadata.token_endpoint_for(mtls=self.settings.uses_mtls)
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

        The access token and the client certificate only ever go to the configured Directory API host.
        """
        base = self.settings.api_base_url
        if base is None:
            raise ConfigurationError(
                f"Cannot call {endpoint!r}: the connection has no api_base_url. Set the extra 'api_base_url' "
                "to the Directory API, e.g. https://matls-api.sandbox.raidiam.io."
            )
        if "://" not in endpoint:
            return f"{base}/{endpoint.lstrip('/')}"
        target, allowed = urlsplit(endpoint), urlsplit(base)
        if target.scheme != "https":
            raise ConfigurationError(f"Refusing {endpoint!r}: Raidiam endpoints are https:// only.")
        if (target.scheme, target.hostname, target.port) != (allowed.scheme, allowed.hostname, allowed.port):
            raise ConfigurationError(
                f"Refusing to send the access token to {endpoint!r}: authenticated calls only go to the "
                f"connection's api_base_url ({base}). Use a path relative to it."
            )
        return endpoint

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

        Idempotent methods are retried on connection errors, 429 and 5xx (see :class:`RetryPolicy`);
        a 401 drops the cached token, fetches a new one and retries once.

        :param raise_for_status: raise :class:`ApiError` on an error status (default), else return it.
        :param kwargs: passed to :meth:`requests.Session.request` (``json``, ``data``, ``timeout``, ...).
        """
        method = method.upper()
        url = self.url_for(endpoint)
        sent_headers = {"Accept": "application/json", INTERACTION_HEADER: str(uuid.uuid4())}
        sent_headers.update(headers or {})
        kwargs.setdefault("timeout", self.settings.timeout)

        self._calls.add()

        def send_once() -> requests.Response:
            self._attempts.add()
            sent_headers["Authorization"] = f"Bearer {self.access_token()}"
            return self.mtls_session.request(method, url, params=params, headers=sent_headers, **kwargs)

        def send() -> requests.Response:
            if method in IDEMPOTENT_METHODS:
                return self.retry.call(send_once, describe=f"{method} {url}")
            return send_once()

        started = time.monotonic()
        try:
            response = send()
            if response.status_code == 401:
                self.token_client.invalidate(sent_headers["Authorization"].removeprefix("Bearer "))
                self.log.info("%s %s -> 401; renewing the access token and retrying once", method, url)
                response = send()
        except requests.RequestException as error:
            raise transport_error(method, url, error, sent_headers[INTERACTION_HEADER]) from None
        self.log.debug(
            "%s %s -> %s (%.0f ms, %s=%s)",
            method,
            url,
            response.status_code,
            (time.monotonic() - started) * 1000,
            INTERACTION_HEADER,
            response.headers.get(INTERACTION_HEADER, sent_headers[INTERACTION_HEADER]),
        )
        if raise_for_status and response.status_code >= 400:
            raise api_error(response, sent_headers[INTERACTION_HEADER])
        return response

    def get_json(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a protected endpoint and return its parsed JSON body."""
        return parse_json(self.request("GET", endpoint, params=params))

    def get_public_json(self, url: str) -> Any:
        """GET a public URL (no token, no client certificate), e.g. the participants list."""
        return self.public.get_public_json(url)

    def paginate(
        self, endpoint: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield every record of a Raidiam page-number paged endpoint (``page`` from 0, ``size``).

        All pages are read and checked before the first record is yielded: the record count must equal
        ``totalSize``, and a ``totalSize`` that moves during the read restarts it (twice at most), so
        callers never see a half-consistent, duplicated or short result. Plain JSON arrays pass through.
        """
        yield from self.read_all_pages(endpoint, params, page_size)

    def read_all_pages(
        self, endpoint: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> list[dict[str, Any]]:
        """Every record of a paged endpoint as a list; see :meth:`paginate`."""
        size = page_size or self.settings.page_size
        for _attempt in range(MAX_PAGING_RESTARTS + 1):
            records = self._read_pages_once(endpoint, dict(params or {}), size)
            if records is not None:
                return records
            self.log.warning("totalSize of %s changed during the read; reading it again from page 0", endpoint)
        raise PaginationError(
            f"{endpoint}: totalSize kept changing while the pages were read ({MAX_PAGING_RESTARTS + 1} "
            "attempts). The Directory data is being modified; run the task again later.",
            url=self.url_for(endpoint),
        )

    def _read_pages_once(self, endpoint: str, params: dict[str, Any], size: int) -> list[dict[str, Any]] | None:
        first = self.get_json(endpoint, {**params, "page": 0, "size": size})
        if isinstance(first, list):
            return _records(first, endpoint, page=0)
        content, total_pages, total_size = _envelope(first, endpoint, page=0)
        pages = self.fan_out(
            lambda page: (page, self.get_json(endpoint, {**params, "page": page, "size": size})),
            range(1, total_pages),
        )
        records = list(content)
        for page, body in pages:
            page_content, _pages, page_total = _envelope(body, endpoint, page=page)
            if page_total != total_size:
                return None
            records.extend(page_content)
        if len(records) != total_size:
            raise PaginationError(
                f"{endpoint}: read {len(records)} records in {total_pages} pages of {size}, but the server "
                f"reported totalSize {total_size}. The server's paging is inconsistent; nothing was kept.",
                url=self.url_for(endpoint),
            )
        return records

    # -- concurrency -------------------------------------------------------------------------------

    def call_stats(self) -> tuple[int, int]:
        """(API calls made, HTTP attempts including retries) so far; thread-safe."""
        return self._calls.value, self._attempts.value

    def fan_out(self, func: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Call ``func`` on every item with at most ``max_workers`` threads; results in input order.

        All calls share this client's token and connection pool. Called from inside a fan-out worker it
        runs sequentially (no nested pools, no deadlock). An error cancels what has not started and, once
        the running calls end, the first error in input order is raised.
        """
        items = list(items)
        if not items:
            return []
        if len(items) == 1 or getattr(self._worker, "active", False):
            return [func(item) for item in items]
        executor = self._get_executor()

        def run(item: T) -> R:
            self._worker.active = True
            try:
                return func(item)
            finally:
                self._worker.active = False

        futures: list[Future[R]] = [executor.submit(run, item) for item in items]
        pending = set(futures)
        started = time.monotonic()
        try:
            while pending:
                done, pending = wait(pending, timeout=PROGRESS_INTERVAL, return_when=FIRST_EXCEPTION)
                if any(future.exception() is not None for future in done):
                    break
                if pending:
                    finished = len(futures) - len(pending)
                    calls, attempts = self.call_stats()
                    self.log.info(
                        "Progress: %d/%d done (%.0f/s); %d API calls so far, %d retries",
                        finished,
                        len(futures),
                        finished / (time.monotonic() - started),
                        calls,
                        attempts - calls,
                    )
        finally:
            for future in pending:
                future.cancel()
        # After a failure, the calls already running finish; the first failure in input order is raised.
        wait(futures)
        return [future.result() for future in futures]

    def _get_executor(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.settings.max_workers, thread_name_prefix="raidiam")
            return self._executor

    def close(self) -> None:
        """Release pooled connections and worker threads."""
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None
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
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        pool_maxsize: int = 4,
        logger: Logger | None = None,
    ) -> None:
        self.session = new_session(ssl_context, pool_maxsize=pool_maxsize)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.log: Logger = logger or logging.getLogger(__name__)

    @classmethod
    def for_ca_bundle(cls, ca_bundle: str | None = None, **kwargs: Any) -> PublicClient:
        """A client trusting ``ca_bundle`` (path or PEM text), or the system trust store when ``None``."""
        material = build_tls_material(ca_bundle=ca_bundle, transport_cert=None, transport_key=None, passphrase=None)
        return cls(material.server_only_context, **kwargs)

    def get_public_json(self, url: str) -> Any:
        """GET ``url`` (retried when transient) and return its parsed JSON body."""
        if urlsplit(url).scheme != "https":
            raise ConfigurationError(f"Refusing {url!r}: Raidiam endpoints are https:// only.")
        interaction_id = str(uuid.uuid4())
        headers = {"Accept": "application/json", INTERACTION_HEADER: interaction_id}
        try:
            response = self.retry.call(
                lambda: self.session.get(url, headers=headers, timeout=self.timeout), describe=f"GET {url}"
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


def transport_error(method: str, url: str, error: requests.RequestException, interaction_id: str) -> ApiError:
    """An :class:`ApiError` for a call that got no usable response, even after retries."""
    return ApiError(
        f"{method} {url} failed: {type(error).__name__}: {str(error)[:300]}. Check network access to the "
        f"server. ({INTERACTION_HEADER}={interaction_id})",
        interaction_id=interaction_id,
        url=url,
    )


def parse_json(response: requests.Response) -> Any:
    """The JSON body of a Directory response, or :class:`ResponseFormatError` saying what came instead."""
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        raise ResponseFormatError(
            f"{response.request.method} {response.url} returned a body that is not valid JSON ({kind}, "
            f"{len(response.content)} bytes): the response was truncated or is not from the Directory API.",
            status=response.status_code,
            interaction_id=response.headers.get(INTERACTION_HEADER),
            url=response.url,
        ) from None


def api_error(response: requests.Response, interaction_id: str) -> ApiError:
    """An :class:`ApiError` for an error response, with Raidiam's ``errors`` list when present."""
    errors: list[str] = []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        errors = [str(item) for item in body["errors"]]
    detail = "; ".join(errors) or response.reason or "no error body"
    authenticate = response.headers.get("WWW-Authenticate", "")
    hint = ""
    if response.status_code == 401:
        hint = (
            " The token was refused even after renewal: check that the API is called with the same "
            "transport certificate as the token request, and the server's WWW-Authenticate: "
            f"{authenticate or '(none)'}."
        )
    elif response.status_code == 403:
        hint = " The client's scope or roles do not allow this call (request scope directory:software)."
    elif response.status_code == 404:
        hint = " Check the endpoint path and the ids in it."
    elif response.status_code in (429, 500, 502, 503, 504):
        hint = " The server kept failing after the retries; run the task again later."
    server_id = response.headers.get(INTERACTION_HEADER, interaction_id)
    return ApiError(
        f"{response.request.method} {response.url} -> HTTP {response.status_code}: {detail}.{hint} "
        f"({INTERACTION_HEADER}={server_id})",
        status=response.status_code,
        errors=errors,
        interaction_id=server_id,
        url=response.url,
    )


def _records(body: list[Any], endpoint: str, *, page: int) -> list[dict[str, Any]]:
    if not all(isinstance(item, dict) for item in body):
        raise ResponseFormatError(f"{endpoint} page {page}: expected a JSON array of objects.")
    return body


def _envelope(body: Any, endpoint: str, *, page: int) -> tuple[list[dict[str, Any]], int, int]:
    """Validate a Raidiam page envelope and return (content, totalPages, totalSize)."""
    if not isinstance(body, dict):
        raise ResponseFormatError(
            f"{endpoint} page {page}: expected a page envelope object or an array, got {type(body).__name__}."
        )
    content, total_pages, total_size = body.get("content"), body.get("totalPages"), body.get("totalSize")
    if (
        not isinstance(content, list)
        or not isinstance(total_pages, int)
        or not isinstance(total_size, int)
        or total_pages < 0
        or total_size < 0
    ):
        raise ResponseFormatError(
            f"{endpoint} page {page}: malformed page envelope; expected 'content' (array), 'totalPages' and "
            f"'totalSize' (non-negative integers), got keys {sorted(body)[:10]}."
        )
    return _records(content, endpoint, page=page), total_pages, total_size
