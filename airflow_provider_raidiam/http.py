"""HTTP sessions that always verify TLS with the connection's own SSL context, and HTTP error mapping.

One ``SSLContext`` per connection is built once (see :mod:`airflow_provider_raidiam.credentials`) and
every pooled connection uses it, so a handshake happens once per pooled connection and the configured CA
wins over ``REQUESTS_CA_BUNDLE`` and friends (``trust_env`` is off).

Every request of a session passes its adapter, which only connects to the session's allowed origins
(:class:`~airflow_provider_raidiam.boundary.AllowedOrigins`, checked on the prepared URL) and never
follows a redirect: a 3xx with a ``Location`` is a :class:`RedirectError`.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from airflow_provider_raidiam.boundary import AllowedOrigins, quote_untrusted
from airflow_provider_raidiam.exceptions import (
    ApiError,
    ConfigurationError,
    RedirectError,
    ResponseDeadlineError,
    ResponseFormatError,
)
from airflow_provider_raidiam.limits import (
    DeadlineHTTPSConnectionPool,
    ResponseLimits,
    attempt_within,
    connect_within,
    deadline_error,
    read_body,
)
from airflow_provider_raidiam.server_text import interaction_id as valid_interaction_id
from airflow_provider_raidiam.server_text import server_text

log = logging.getLogger(__name__)

INTERACTION_HEADER = "x-fapi-interaction-id"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses worth another attempt (the retry policy's default; error hints name them too)."""


class SslContextAdapter(HTTPAdapter):
    """An adapter whose connections all use one pre-built, verifying ``SSLContext``, to allowed origins only,
    with bounded responses.

    requests would otherwise load ``verify``/``cert`` files into the context for every new connection
    (and take the CA from the environment); here the per-request TLS arguments are refused instead.
    Every body is read whole but bounded by ``limits`` (size after decompression, deadline per attempt; see
    :mod:`airflow_provider_raidiam.limits`), whatever ``stream`` the caller asked for.

    :param allowed: the origins this adapter connects to; any other URL is a :class:`ForeignHostError`
        raised before connecting.
    :param limits: the bounds of every response.
    """

    def __init__(
        self, ssl_context: ssl.SSLContext, pool_maxsize: int, allowed: AllowedOrigins, limits: ResponseLimits
    ) -> None:
        self._ssl_context = ssl_context
        self.allowed = allowed
        self._limits = limits
        super().__init__(pool_connections=8, pool_maxsize=pool_maxsize)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, ssl_context=self._ssl_context, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            **self.poolmanager.pool_classes_by_scheme,
            "https": DeadlineHTTPSConnectionPool,
        }

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        """Send ``request`` if its URL goes to an allowed origin; refuse any redirect it gets back; read the
        body within the limits."""
        self.allowed.check(request.url or "")
        if any((proxies or {}).values()):
            raise ConfigurationError(
                "Per-request proxies are not accepted: requests connect directly to the connection's hosts."
            )
        deadline = self._limits.start_attempt()
        with attempt_within(deadline):
            try:
                response = super().send(request, True, connect_within(timeout, deadline), verify, cert, proxies)
                if response.is_redirect:
                    response.close()
                    raise redirect_error(response)
                response._content = read_body(response, self._limits.max_bytes, deadline)
            except requests.RequestException as error:
                if deadline.expired() and not isinstance(error, ResponseDeadlineError):
                    raise deadline_error(request, deadline) from error
                raise
        return response

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:
        _refuse_per_request_tls(verify, cert)
        return super().build_connection_pool_key_attributes(request, True, None)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        _refuse_per_request_tls(verify, cert)
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


def _refuse_per_request_tls(verify: Any, cert: Any) -> None:
    if verify is not True or cert is not None:
        raise ConfigurationError(
            "TLS settings come from the Raidiam connection (ca_bundle, transport_cert, transport_private_key); "
            "per-request 'verify' and 'cert' arguments are not accepted, and verification cannot be disabled."
        )


def new_session(
    ssl_context: ssl.SSLContext, pool_maxsize: int, allowed: AllowedOrigins, limits: ResponseLimits | None = None
) -> requests.Session:
    """A keep-alive session that speaks only HTTPS through ``ssl_context``, only to ``allowed`` origins,
    follows no redirect, reads every response within ``limits`` (default :class:`ResponseLimits`) and
    ignores the environment."""
    session = requests.Session()
    session.trust_env = False
    session.max_redirects = 0
    adapter = SslContextAdapter(ssl_context, pool_maxsize, allowed, limits or ResponseLimits())
    session.mount("https://", adapter)
    session.mount("http://", adapter)  # replaces requests' plain adapter: its allow-list refuses http://
    return session


def allowed_origins(session: requests.Session) -> AllowedOrigins:
    """The allow-list of a session made by :func:`new_session`."""
    adapter = session.get_adapter("https://")
    assert isinstance(adapter, SslContextAdapter)
    return adapter.allowed


def redirect_error(response: requests.Response) -> RedirectError:
    """A :class:`RedirectError` for a 3xx answer, naming its (quoted, bounded) ``Location``."""
    location = response.headers.get("Location", "")
    method = response.request.method if response.request is not None else "request"
    return RedirectError(
        f"{method} {response.url} answered HTTP {response.status_code} redirecting to "
        f"{quote_untrusted(location)}: redirects are never followed, so no token, client assertion or "
        "certificate goes to another address. Set the connection's URLs (or the endpoint) to the final address.",
        location=location,
        status=response.status_code,
        url=response.url,
    )


MAX_ERRORS_SHOWN = 5
"""Entries of a Raidiam ``errors`` list kept in an :class:`ApiError`."""


def transport_error(method: str, url: str, error: requests.RequestException, interaction_id: str) -> ApiError:
    """An :class:`ApiError` for a call that got no usable response, even after retries.

    A :class:`ResponseDeadlineError` is returned as it is: it already says what happened and what to change.
    """
    if isinstance(error, ResponseDeadlineError):
        return error
    return ApiError(
        f"{method} {url} failed: {type(error).__name__}: {server_text(error)}. Check network access to the "
        f"server. ({INTERACTION_HEADER}={interaction_id})",
        interaction_id=interaction_id,
        url=url,
    )


def parse_json(response: requests.Response) -> Any:
    """The JSON body of a Directory response, or :class:`ResponseFormatError` saying what came instead."""
    try:
        return response.json()
    except ValueError:
        kind = server_text(response.headers.get("Content-Type", "no content type"), 100)
        raise ResponseFormatError(
            f"{response.request.method} {response.url} returned a body that is not valid JSON ({kind}, "
            f"{len(response.content)} bytes): the response was truncated or is not from the Directory API.",
            status=response.status_code,
            interaction_id=valid_interaction_id(response.headers.get(INTERACTION_HEADER), None),
            url=response.url,
        ) from None


def api_error(response: requests.Response, interaction_id: str) -> ApiError:
    """An :class:`ApiError` for an error response, with Raidiam's ``errors`` list when present.

    Everything taken from the response (``errors`` entries, reason phrase, ``WWW-Authenticate``) is bounded
    and escaped (:func:`server_text`); a malformed ``x-fapi-interaction-id`` is replaced by the one we sent.
    """
    errors: list[str] = []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        items = body["errors"]
        errors = [server_text(item) for item in items[:MAX_ERRORS_SHOWN]]
        if len(items) > MAX_ERRORS_SHOWN:
            errors.append(f"... {len(items) - MAX_ERRORS_SHOWN} more errors not shown")
    detail = "; ".join(errors) or (server_text(response.reason, 100) if response.reason else "no error body")
    authenticate = response.headers.get("WWW-Authenticate")
    hint = ""
    if response.status_code == 401:
        hint = (
            " The token was refused even after renewal: check that the API is called with the same "
            "transport certificate as the token request, and the server's WWW-Authenticate: "
            f"{server_text(authenticate) if authenticate else '(none)'}."
        )
    elif response.status_code == 403:
        hint = " The client's scope or roles do not allow this call (request scope directory:software)."
    elif response.status_code == 404:
        hint = " Check the endpoint path and the ids in it."
    elif response.status_code in RETRY_STATUSES:
        hint = " The server kept failing after the retries; run the task again later."
    server_id = valid_interaction_id(response.headers.get(INTERACTION_HEADER), interaction_id)
    return ApiError(
        f"{response.request.method} {response.url} -> HTTP {response.status_code}: {detail}.{hint} "
        f"({INTERACTION_HEADER}={server_id})",
        status=response.status_code,
        errors=errors,
        interaction_id=server_id,
        url=response.url,
    )
