"""Client-credentials tokens: one request per token lifetime per client, shared by every thread.

Tokens are cached per process under (token endpoint, client_id, auth method, certificate thumbprint,
scope) and renewed shortly before they expire: a fifth of their lifetime (at most a minute) before, or
earlier when requests are slow, so a token does not expire while a request carries it. One thread renews
it; the others keep using the old token while it is still good for a request, and otherwise wait for
that one renewal instead of each asking for a token.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from airflow_provider_raidiam.auth.binding import check_token_binding, token_claims
from airflow_provider_raidiam.auth.client_auth import ClientAuth
from airflow_provider_raidiam.boundary import quote_untrusted
from airflow_provider_raidiam.exceptions import RedirectError, ResponseDeadlineError, TokenError
from airflow_provider_raidiam.retry import RETRY_STATUSES, RetryPolicy
from airflow_provider_raidiam.server_text import server_text

log = logging.getLogger(__name__)

DEFAULT_LIFETIME = 300.0
MAX_LIFETIME = 86400.0
"""A token is renewed after one day at the latest, whatever ``expires_in`` or ``exp`` say."""
MAX_RENEWAL_MARGIN = 60.0
SLOW_REQUEST_FACTOR = 3.0
"""Renew at least this many times the duration of a recent slow request before the token expires."""
SLOW_REQUEST_DECAY = 0.99
"""Per request, how much of the slowest recent request's duration is remembered."""
_EXPIRED = re.compile(r'error\s*=\s*"?invalid_token"?.*expired', re.IGNORECASE | re.DOTALL)
_TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})

CacheKey = tuple[str, str, str, str | None, str]


@dataclass(frozen=True)
class AccessToken:
    """An access token, when it was requested and when it expires (clock seconds, ``time.monotonic()``)."""

    value: str = field(repr=False)
    obtained_at: float
    expires_at: float
    scope: str | None

    def is_fresh(self, now: float, margin: float) -> bool:
        """Whether the token can still be used without renewing it, ``margin`` seconds before expiry."""
        return now < self.expires_at - margin


class _TokenCache:
    """Process-wide token store with one lock per key (single-flight renewal)."""

    def __init__(self) -> None:
        self._tokens: dict[CacheKey, AccessToken] = {}
        self._locks: dict[CacheKey, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: CacheKey) -> AccessToken | None:
        return self._tokens.get(key)

    def put(self, key: CacheKey, token: AccessToken) -> None:
        self._tokens[key] = token

    def drop(self, key: CacheKey, value: str) -> None:
        with self._guard:
            current = self._tokens.get(key)
            if current is not None and current.value == value:
                del self._tokens[key]

    def lock(self, key: CacheKey) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()


TOKEN_CACHE = _TokenCache()


class TokenClient:
    """Obtains ``client_credentials`` access tokens for one client at one token endpoint.

    :param session: the mTLS session (or a server-only one when no transport certificate is used).
    :param on_new_token: called with every new token value and every client assertion before it is sent,
        e.g. to register them with a secret masker.
    """

    def __init__(
        self,
        *,
        session: requests.Session,
        token_endpoint: str,
        issuer: str,
        client_auth: ClientAuth,
        scope: str,
        certificate_thumbprint: str | None,
        timeout: float,
        retry: RetryPolicy,
        on_new_token: Callable[[str], None],
    ) -> None:
        self._session = session
        self.token_endpoint = token_endpoint
        self._issuer = issuer
        self._client_auth = client_auth
        self._scope = scope
        self._thumbprint = certificate_thumbprint
        self._timeout = timeout
        self._retry = retry
        self._clock = retry.clock
        self._throttle = retry.new_throttle()
        self._on_new_token = on_new_token
        self._slow_request = 0.0
        self._key: CacheKey = (
            token_endpoint,
            client_auth.client_id,
            client_auth.method,
            certificate_thumbprint,
            scope,
        )

    def get(self) -> str:
        """Return a fresh access token, requesting one only when the cached one is due for renewal."""
        token = TOKEN_CACHE.get(self._key)
        if token is not None and self._is_fresh(token):
            return token.value
        lock = TOKEN_CACHE.lock(self._key)
        if not lock.acquire(blocking=False):
            if token is not None and self._is_usable(token):
                return token.value  # another thread is renewing it: use the old one while it lasts
            lock.acquire()
        try:
            seen, token = token, TOKEN_CACHE.get(self._key)
            renewed_meanwhile = token is not None and token is not seen and self._clock.now() < token.expires_at
            if token is None or not (renewed_meanwhile or self._is_fresh(token)):
                # (A token renewed while this thread waited is used even if a slow server issued it
                # close to expiry: asking again at once would only pile up token requests.)
                token = self._request()
                TOKEN_CACHE.put(self._key, token)
        finally:
            lock.release()
        return token.value

    def invalidate(self, value: str) -> None:
        """Forget ``value`` if it is still the cached token (after the API refused it)."""
        TOKEN_CACHE.drop(self._key, value)

    def observe_request(self, seconds: float) -> None:
        """Note how long an API request carrying the token took (renewal starts earlier when slow)."""
        self._slow_request = max(seconds, self._slow_request * SLOW_REQUEST_DECAY)

    def renewal_margin(self, token: AccessToken) -> float:
        """Seconds before expiry to renew ``token``: a fifth of its lifetime (at most a minute), or three
        recent slow requests, whichever is longer, but never more than half its lifetime."""
        lifetime = token.expires_at - token.obtained_at
        usual = min(MAX_RENEWAL_MARGIN, lifetime / 5)
        return min(lifetime / 2, max(usual, SLOW_REQUEST_FACTOR * self._slow_request))

    def expired(self, value: str, response: requests.Response) -> bool:
        """Whether the API refused ``value`` because it expired (its ``WWW-Authenticate`` says so, or by
        our clock it is past its expiry), not for another reason such as a certificate binding."""
        if _EXPIRED.search(response.headers.get("WWW-Authenticate", "")[:1000]):
            return True
        token = TOKEN_CACHE.get(self._key)
        return token is not None and token.value == value and self._clock.now() >= token.expires_at

    def _is_fresh(self, token: AccessToken) -> bool:
        return token.is_fresh(self._clock.now(), self.renewal_margin(token))

    def _is_usable(self, token: AccessToken) -> bool:
        """Still valid for one more request (a slow one), though due for renewal."""
        return token.is_fresh(self._clock.now(), min(self.renewal_margin(token), self._slow_request))

    def _request(self) -> AccessToken:
        started = self._clock.now()

        def send(remaining: float) -> requests.Response:
            form = {"grant_type": "client_credentials", "scope": self._scope}
            form.update(self._client_auth.form_fields(issuer=self._issuer, token_endpoint=self.token_endpoint))
            if "client_assertion" in form:
                self._on_new_token(form["client_assertion"])
            return self._session.post(
                self.token_endpoint,
                data=form,
                headers={"Accept": "application/json"},
                timeout=min(self._timeout, remaining),
                allow_redirects=False,
            )

        try:
            response = self._retry.call(
                send,
                describe=f"Token request to {self.token_endpoint}",
                throttle=self._throttle,
                retry_status=_is_transient,
            )
        except RedirectError as error:
            raise TokenError(
                f"The token endpoint {self.token_endpoint} redirects (HTTP {error.status}) to "
                f"{quote_untrusted(error.location)}; the token request is not re-sent there, and no token from "
                "another address is accepted. Check the Issuer URL: its discovery document should name the final "
                "token endpoint.",
                status=error.status,
            ) from None
        except ResponseDeadlineError:
            raise
        except requests.RequestException as error:
            raise TokenError(
                f"Could not reach the token endpoint {self.token_endpoint}: {type(error).__name__}. Check "
                "network access to it; for mTLS endpoints a TLS failure here usually means the server does "
                "not accept transport_cert (wrong CA) or ca_bundle does not match the server."
            ) from error
        body = _json_object(response)
        if response.status_code != 200 or "access_token" not in body:
            raise self._error(response, body)
        value = body["access_token"]
        token_type = str(body.get("token_type", "")).lower()
        if not isinstance(value, str) or not value or token_type != "bearer":  # noqa: S105
            raise TokenError(
                f"The token endpoint {self.token_endpoint} returned an unusable token "
                f"(token_type '{server_text(body.get('token_type'), 40)}'); expected a Bearer access token.",
                status=response.status_code,
            )
        self._on_new_token(value)
        check_token_binding(value, self._thumbprint)
        received = self._clock.now()
        lifetime, from_exp = _lifetime(body, value)
        # A JWT's exp is absolute: what is left of it counts from now. A bare expires_in counts from when the
        # server issued the token, somewhere during the request: from its start, to be safe.
        anchor = received if from_exp else started
        log.info(
            "Obtained an access token for client %s (%s, scope '%s', expires in %.0fs) in %.0f ms",
            self._client_auth.client_id,
            self._client_auth.method,
            server_text(body.get("scope", self._scope)),
            lifetime,
            (received - started) * 1000,
        )
        return AccessToken(
            value=value,
            obtained_at=anchor,
            expires_at=anchor + lifetime,
            scope=str(body["scope"]) if "scope" in body else None,
        )

    def _error(self, response: requests.Response, body: dict[str, object]) -> TokenError:
        error = server_text(body["error"], 100) if isinstance(body.get("error"), str) else None
        description = server_text(body["error_description"]) if isinstance(body.get("error_description"), str) else None
        hint = self._client_auth.failure_hint(error, issuer=self._issuer, token_endpoint=self.token_endpoint)
        if error:
            detail = f"{error}: {description}" if description else error
        elif response.status_code == 200:
            detail = "HTTP 200 but the body holds no access_token (is the URL really a token endpoint?)"
        else:
            detail = f"HTTP {response.status_code} without an OAuth error body"
        return TokenError(
            f"The token endpoint {self.token_endpoint} refused client {self._client_auth.client_id!r} "
            f"({self._client_auth.method}): {detail}. {hint}",
            error=error,
            error_description=description,
            status=response.status_code,
        )


def _is_transient(response: requests.Response) -> bool:
    if response.status_code in RETRY_STATUSES:
        return True
    return response.status_code == 400 and _json_object(response).get("error") in _TRANSIENT_OAUTH_ERRORS


def _json_object(response: requests.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _lifetime(body: dict[str, object], access_token: str) -> tuple[float, bool]:
    """Seconds the token lives: ``expires_in``, never beyond a JWT token's own ``exp`` (then also ``True``)
    nor :data:`MAX_LIFETIME`."""
    try:
        lifetime = float(body.get("expires_in"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    if not math.isfinite(lifetime) or lifetime <= 0:
        lifetime = DEFAULT_LIFETIME
    expiry = (token_claims(access_token) or {}).get("exp")
    if isinstance(expiry, (int, float)) and float(expiry) > time.time():  # past exp: clock skew, ignore
        return min(lifetime, float(expiry) - time.time(), MAX_LIFETIME), True
    return min(lifetime, MAX_LIFETIME), False
