"""``client_credentials`` tokens: caching, renewal, single flight, errors, retries and binding."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization

from airflow_provider_raidiam.auth import token_client as token_module
from airflow_provider_raidiam.auth.client_auth import ClientAuth, PrivateKeyJwt, TlsClientAuth
from airflow_provider_raidiam.auth.token_client import TOKEN_CACHE, TokenClient
from airflow_provider_raidiam.boundary import AllowedOrigins
from airflow_provider_raidiam.exceptions import BindingError, TokenError
from airflow_provider_raidiam.http import new_session
from airflow_provider_raidiam.throttle import Clock
from raidiam_sandbox.pki import SandboxPki

ISSUER = "https://auth.example.test"
ENDPOINT = "https://matls-auth.example.test/token"


@pytest.fixture
def clock() -> list[float]:
    """The token clients' clock (their retry policy's): set ``clock[0]``."""
    return [1000.0]


@pytest.fixture
def new_tokens() -> list[str]:
    """Every token value handed to ``on_new_token``."""
    return []


@pytest.fixture
def make_client(kit: Any, new_tokens: list[str], clock: list[float]) -> Callable[..., TokenClient]:
    session = new_session(ssl.create_default_context(), pool_maxsize=25, allowed=AllowedOrigins([ENDPOINT]))
    fast_retry = replace(kit.FAST_RETRY, clock=Clock(now=lambda: clock[0], sleep=lambda _seconds: None))

    def make(
        *,
        client_auth: ClientAuth | None = None,
        scope: str = "directory:software",
        thumbprint: str | None = "our-thumbprint",
        endpoint: str = ENDPOINT,
        retry: Any = None,
    ) -> TokenClient:
        return TokenClient(
            session=session,
            token_endpoint=endpoint,
            issuer=ISSUER,
            client_auth=client_auth or TlsClientAuth("client-1"),
            scope=scope,
            certificate_thumbprint=thumbprint,
            timeout=5,
            retry=retry or fast_retry,
            on_new_token=new_tokens.append,
        )

    return make


def posts(mocked: responses.RequestsMock) -> list[Any]:
    return [call.request for call in mocked.calls if call.request.method == "POST"]


# -- caching and renewal ---------------------------------------------------------------------------


def test_one_post_for_many_gets(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock, new_tokens: list[str]
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A"))
    client = make_client()

    values = [client.get() for _ in range(10)]

    assert values == ["tok-A"] * 10
    assert len(posts(mocked)) == 1
    assert new_tokens == ["tok-A"]


def test_token_is_shared_between_client_instances(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A"))

    assert make_client().get() == make_client().get() == "tok-A"
    assert len(posts(mocked)) == 1


@pytest.mark.parametrize(("expires_in", "renew_after"), [(600, 540), (100, 80), ("3600", 3540), (None, 240)])
def test_renewed_shortly_before_expiry(
    make_client: Callable[..., TokenClient],
    kit: Any,
    mocked: responses.RequestsMock,
    clock: list[float],
    expires_in: Any,
    renew_after: float,
) -> None:
    body = kit.token_body("tok-A", expires_in=expires_in)
    if expires_in is None:
        del body["expires_in"]  # no lifetime given: a conservative default
    mocked.add(responses.POST, ENDPOINT, json=body)
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-B"))
    client = make_client()

    assert client.get() == "tok-A"
    clock[0] = 1000.0 + renew_after - 1
    assert client.get() == "tok-A"
    assert len(posts(mocked)) == 1
    clock[0] = 1000.0 + renew_after + 1
    assert client.get() == "tok-B"
    assert len(posts(mocked)) == 2


@pytest.mark.parametrize(("slow_request", "renew_after"), [(0.5, 80), (10, 70), (40, 50)])
def test_renewed_earlier_when_requests_are_slow(
    make_client: Callable[..., TokenClient],
    kit: Any,
    mocked: responses.RequestsMock,
    clock: list[float],
    slow_request: float,
    renew_after: float,
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A", expires_in=100))
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-B", expires_in=100))
    client = make_client()
    client.observe_request(slow_request)  # 3 slow requests before expiry, at most half the lifetime

    assert client.get() == "tok-A"
    clock[0] = 1000.0 + renew_after - 1
    assert client.get() == "tok-A"
    clock[0] = 1000.0 + renew_after + 1
    assert client.get() == "tok-B"


def test_expired_tells_an_expired_token_from_other_refusals(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock, clock: list[float]
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A", expires_in=100))
    client = make_client()
    client.get()

    def refusal(authenticate: str) -> requests.Response:
        answer = requests.Response()
        answer.status_code = 401
        answer.headers["WWW-Authenticate"] = authenticate
        return answer

    expired = 'Bearer error="invalid_token", error_description="Signature has expired"'
    binding = 'Bearer error="invalid_token", error_description="certificate thumbprint does not match cnf"'
    assert client.expired("tok-A", refusal(expired))
    assert not client.expired("tok-A", refusal(binding))
    assert not client.expired("tok-A", refusal('Bearer realm="directory"'))
    clock[0] = 1000.0 + 100  # by our own clock the token has expired
    assert client.expired("tok-A", refusal(binding))


@pytest.mark.parametrize("expires_in", [0, -5, "soon", [600]])
def test_unusable_expires_in_falls_back_to_default(
    make_client: Callable[..., TokenClient],
    kit: Any,
    mocked: responses.RequestsMock,
    clock: list[float],
    expires_in: Any,
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A", expires_in=expires_in))
    client = make_client()

    client.get()
    clock[0] = 1000.0 + 200
    client.get()

    assert len(posts(mocked)) == 1


@pytest.mark.parametrize("expires_in", [1e308, "1e308", 10**12, 2 * 86400])
def test_a_huge_expires_in_is_capped_at_one_day(
    make_client: Callable[..., TokenClient],
    kit: Any,
    mocked: responses.RequestsMock,
    clock: list[float],
    expires_in: Any,
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A", expires_in=expires_in))
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-B"))
    client = make_client()
    renew_after = token_module.MAX_LIFETIME - token_module.MAX_RENEWAL_MARGIN
    assert renew_after == 86400 - 60

    assert client.get() == "tok-A"
    clock[0] = 1000.0 + renew_after - 1
    assert client.get() == "tok-A"
    clock[0] = 1000.0 + renew_after + 1
    assert client.get() == "tok-B", "renewed after a day, not kept for the life of the process"
    assert len(posts(mocked)) == 2


def test_an_earlier_jwt_exp_wins_over_expires_in(
    make_client: Callable[..., TokenClient],
    kit: Any,
    mocked: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
    clock: list[float],
) -> None:
    now, wall = clock, 2_000_000_000.0
    monkeypatch.setattr(token_module, "time", SimpleNamespace(time=lambda: wall))
    token = jwt.encode({"exp": int(wall) + 300}, "k" * 32, algorithm="HS256")
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body(token, expires_in=1e308))
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-B"))
    client = make_client()

    assert client.get() == token
    now[0] = 1000.0 + 300 - 60 - 1  # the token's own exp, less the renewal margin
    assert client.get() == token
    now[0] = 1000.0 + 300 - 60 + 1
    assert client.get() == "tok-B"
    assert len(posts(mocked)) == 2


def test_invalidate_drops_only_the_current_token(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A"))
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-B"))
    client = make_client()

    assert client.get() == "tok-A"
    client.invalidate("some-older-token")
    assert client.get() == "tok-A"
    client.invalidate("tok-A")
    assert client.get() == "tok-B"
    assert len(posts(mocked)) == 2


def test_twenty_threads_share_one_request(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock
) -> None:
    def slow_token(_request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(0.2)
        return 200, {"Content-Type": "application/json"}, kit.json(kit.token_body("tok-A"))

    mocked.add_callback(responses.POST, ENDPOINT, callback=slow_token)
    client = make_client()
    barrier = threading.Barrier(20)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(client.get())
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert results == ["tok-A"] * 20
    assert len(posts(mocked)) == 1


def test_others_keep_the_old_token_while_one_thread_renews_it(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock, clock: list[float]
) -> None:
    renewing, release = threading.Event(), threading.Event()

    def held_renewal(_request: Any) -> tuple[int, dict[str, str], str]:
        renewing.set()
        release.wait(10)
        return 200, {"Content-Type": "application/json"}, kit.json(kit.token_body("tok-B", expires_in=100))

    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A", expires_in=100))
    mocked.add_callback(responses.POST, ENDPOINT, callback=held_renewal)
    client = make_client()
    assert client.get() == "tok-A"
    clock[0] = 1000.0 + 90  # due for renewal (margin 20 s), still valid for 10 s
    renewer = threading.Thread(target=client.get)
    renewer.start()
    try:
        assert renewing.wait(10)
        assert client.get() == "tok-A", "not blocked behind the renewal"
    finally:
        release.set()
        renewer.join(10)
    assert client.get() == "tok-B"
    clock[0] = 1000.0 + 100 + 90  # tok-B due; and now an expired one is never handed out
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-C", expires_in=100))
    assert client.get() == "tok-C"
    assert len(posts(mocked)) == 3


@pytest.mark.parametrize(
    "change",
    [{"client_auth": TlsClientAuth("client-2")}, {"scope": "directory:website"}, {"thumbprint": "other-thumbprint"}],
    ids=["client_id", "scope", "certificate"],
)
def test_cache_key_separates_clients_scopes_and_certificates(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock, change: dict[str, Any]
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A"))
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-B"))

    first = make_client().get()
    second = make_client(**change).get()

    assert (first, second) == ("tok-A", "tok-B")
    assert len(posts(mocked)) == 2
    if "scope" in change:
        assert kit.form_of(posts(mocked)[1])["scope"] == "directory:website"
    if "client_auth" in change:
        assert kit.form_of(posts(mocked)[1])["client_id"] == "client-2"


def test_cache_key_separates_auth_methods(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock, pki: SandboxPki
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A"))
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-B"))
    key = serialization.load_pem_private_key(pki.signing_key("rsa").read_bytes(), password=None)
    pkj = PrivateKeyJwt("client-1", key=key, key_id="k", algorithm="PS256", audience="issuer")

    assert make_client().get() == "tok-A"
    assert make_client(client_auth=pkj).get() == "tok-B"


def test_clearing_the_cache_forces_a_new_token(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A"))
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-B"))
    client = make_client()

    client.get()
    TOKEN_CACHE.clear()

    assert client.get() == "tok-B"


# -- request content -------------------------------------------------------------------------------


def test_request_form_and_headers(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body())

    make_client(scope="directory:software directory:website").get()

    request = posts(mocked)[0]
    assert request.url == ENDPOINT
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert kit.form_of(request) == {
        "grant_type": "client_credentials",
        "scope": "directory:software directory:website",
        "client_id": "client-1",
    }


def test_token_value_is_not_logged(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("SECRET-TOKEN-VALUE"))

    with caplog.at_level(logging.DEBUG):
        make_client().get()

    assert "SECRET-TOKEN-VALUE" not in caplog.text
    assert "client-1" in caplog.text  # the log says which client got a token


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "hint"),
    [
        (401, "invalid_client", "transport_cert"),
        (400, "invalid_scope", "directory:software"),
        (400, "unauthorized_client", "client_credentials grant"),
    ],
)
def test_oauth_errors_become_token_errors(
    make_client: Callable[..., TokenClient],
    kit: Any,
    mocked: responses.RequestsMock,
    status: int,
    error: str,
    hint: str,
) -> None:
    mocked.add(
        responses.POST, ENDPOINT, status=status, json={"error": error, "error_description": "described by server"}
    )
    client = make_client()

    with pytest.raises(TokenError) as caught:
        client.get()

    raised = caught.value
    assert raised.error == error
    assert raised.error_description == "described by server"
    assert raised.status == status
    message = str(raised)
    assert f"{error}: described by server" in message
    assert ENDPOINT in message
    assert "'client-1'" in message
    assert "tls_client_auth" in message
    assert hint in message
    assert len(posts(mocked)) == 1  # a refusal is not retried
    assert TOKEN_CACHE.get(client._key) is None


def test_error_without_description(make_client: Callable[..., TokenClient], mocked: responses.RequestsMock) -> None:
    mocked.add(responses.POST, ENDPOINT, status=400, json={"error": "invalid_request"})

    with pytest.raises(TokenError) as caught:
        make_client().get()

    assert caught.value.error == "invalid_request"
    assert caught.value.error_description is None
    assert "invalid_request." in str(caught.value)


@pytest.mark.parametrize(
    ("status", "error"), [(503, "temporarily_unavailable"), (400, "temporarily_unavailable"), (500, "server_error")]
)
def test_transient_errors_are_retried(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock, status: int, error: str
) -> None:
    mocked.add(responses.POST, ENDPOINT, status=status, json={"error": error})
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A"))

    assert make_client().get() == "tok-A"
    assert len(posts(mocked)) == 2


def test_retry_makes_a_fresh_assertion(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock, pki: SandboxPki
) -> None:
    mocked.add(responses.POST, ENDPOINT, status=503, json={"error": "temporarily_unavailable"})
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A"))
    key = serialization.load_pem_private_key(pki.signing_key("rsa").read_bytes(), password=None)
    pkj = PrivateKeyJwt("client-1", key=key, key_id="k", algorithm="PS256", audience="issuer")

    make_client(client_auth=pkj).get()

    jwk = jwt.PyJWK(pki.signing_jwk("rsa"))  # type: ignore[arg-type]
    jtis = [
        jwt.decode(kit.form_of(r)["client_assertion"], jwk.key, algorithms=["PS256"], audience=ISSUER)["jti"]
        for r in posts(mocked)
    ]
    assert len(jtis) == 2
    assert jtis[0] != jtis[1]  # a replayed jti would be refused by the server


def test_non_json_server_error_after_retries(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock
) -> None:
    mocked.add(
        responses.POST, ENDPOINT, status=500, body="<html>Internal Server Error</html>", content_type="text/html"
    )

    with pytest.raises(TokenError) as caught:
        make_client().get()

    assert caught.value.status == 500
    assert caught.value.error is None
    assert "HTTP 500 without an OAuth error body" in str(caught.value)
    assert len(posts(mocked)) == kit.FAST_RETRY.attempts


def test_transport_error(make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock) -> None:
    mocked.add(responses.POST, ENDPOINT, body=requests.exceptions.SSLError("handshake failure"))

    with pytest.raises(TokenError) as caught:
        make_client().get()

    assert "Could not reach the token endpoint" in str(caught.value)
    assert "SSLError" in str(caught.value)
    assert "transport_cert" in str(caught.value)
    assert isinstance(caught.value.__cause__, requests.exceptions.SSLError)


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "tok", "token_type": "DPoP", "expires_in": 600},
        {"access_token": "tok", "token_type": "mac", "expires_in": 600},
        {"access_token": "tok", "expires_in": 600},
        {"access_token": "", "token_type": "Bearer"},
        {"access_token": 12345, "token_type": "Bearer"},
    ],
)
def test_unusable_tokens_are_refused(
    make_client: Callable[..., TokenClient], mocked: responses.RequestsMock, body: dict[str, Any], new_tokens: list[str]
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=body)

    with pytest.raises(TokenError) as caught:
        make_client().get()

    assert "unusable token" in str(caught.value)
    assert "expected a Bearer access token" in str(caught.value)
    assert new_tokens == []


def test_lowercase_bearer_is_accepted(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A", token_type="bearer"))

    assert make_client().get() == "tok-A"


def test_success_status_without_token(make_client: Callable[..., TokenClient], mocked: responses.RequestsMock) -> None:
    mocked.add(responses.POST, ENDPOINT, body="OK", content_type="text/plain")

    with pytest.raises(TokenError, match="HTTP 200 but the body holds no access_token"):
        make_client().get()


# -- binding ---------------------------------------------------------------------------------------


def bound_token(pki: SandboxPki, thumbprint: str) -> str:
    key = serialization.load_pem_private_key(pki.key("server").read_bytes(), password=None)
    return jwt.encode({"cnf": {"x5t#S256": thumbprint}, "client_id": "client-1"}, key, algorithm="PS256")  # type: ignore[arg-type]


def test_token_bound_to_our_certificate_is_cached(
    make_client: Callable[..., TokenClient], kit: Any, mocked: responses.RequestsMock, pki: SandboxPki
) -> None:
    ours = pki.thumbprint("tls-client")
    token = bound_token(pki, ours)
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body(token))
    client = make_client(thumbprint=ours)

    assert client.get() == token
    assert client.get() == token
    assert len(posts(mocked)) == 1


def test_token_bound_to_another_certificate_is_refused_and_not_cached(
    make_client: Callable[..., TokenClient],
    kit: Any,
    mocked: responses.RequestsMock,
    pki: SandboxPki,
    new_tokens: list[str],
) -> None:
    ours, theirs = pki.thumbprint("tls-client"), pki.thumbprint("other-client")
    token = bound_token(pki, theirs)
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body(token))
    client = make_client(thumbprint=ours)

    for _ in range(2):
        with pytest.raises(BindingError) as caught:
            client.get()
        assert theirs in str(caught.value)
        assert ours in str(caught.value)
        assert token not in str(caught.value)

    assert len(posts(mocked)) == 2  # nothing was cached
    assert TOKEN_CACHE.get(client._key) is None
    assert new_tokens == [token, token]  # still handed to the masker


def test_on_new_token_gets_every_new_token(
    make_client: Callable[..., TokenClient],
    kit: Any,
    mocked: responses.RequestsMock,
    clock: list[float],
    new_tokens: list[str],
) -> None:
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-A", expires_in=100))
    mocked.add(responses.POST, ENDPOINT, json=kit.token_body("tok-B", expires_in=100))
    client = make_client()

    client.get()
    client.get()
    clock[0] += 100
    client.get()

    assert new_tokens == ["tok-A", "tok-B"]


def test_certificate_verification_failure_is_not_retried(
    make_client: Callable[..., TokenClient], mocked: responses.RequestsMock
) -> None:
    failure = requests.exceptions.SSLError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate"
    )
    mocked.add(responses.POST, ENDPOINT, body=failure)

    with pytest.raises(TokenError):
        make_client().get()

    assert len(posts(mocked)) == 1
