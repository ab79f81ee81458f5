"""OpenID discovery: validation, RFC 8705 alias routing, fetching and per-process caching."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
import requests
import responses

from airflow_provider_raidiam import discovery
from airflow_provider_raidiam.boundary import AllowedOrigins
from airflow_provider_raidiam.discovery import get_provider_metadata, validate
from airflow_provider_raidiam.exceptions import DiscoveryError
from airflow_provider_raidiam.http import new_session

SOURCE = "https://auth.example.test/.well-known/openid-configuration"
DISCOVERY_HOSTS = AllowedOrigins([SOURCE, "https://other.example.test"])


@pytest.fixture
def session() -> requests.Session:
    return new_session(ssl.create_default_context(), pool_maxsize=2, allowed=DISCOVERY_HOSTS)


def fetch(session: requests.Session, kit: Any, url: str | None = None, issuer: str | None = None) -> Any:
    return get_provider_metadata(
        session, url or kit.DISCOVERY_URL, expected_issuer=issuer or kit.ISSUER, timeout=5, retry=kit.FAST_RETRY
    )


# -- validate ---------------------------------------------------------------------------------------


def test_valid_document(kit: Any) -> None:
    document = kit.discovery_document()

    metadata = validate(document, expected_issuer=kit.ISSUER, source=SOURCE)

    assert metadata.issuer == kit.ISSUER
    assert metadata.token_endpoint == kit.TOKEN_ENDPOINT
    assert metadata.mtls_endpoint_aliases == document["mtls_endpoint_aliases"]
    assert metadata.auth_methods_supported == ("private_key_jwt", "tls_client_auth")
    assert metadata.document == document


def test_trailing_slash_difference_in_issuer_is_tolerated(kit: Any) -> None:
    metadata = validate(kit.discovery_document(issuer=kit.ISSUER + "/"), expected_issuer=kit.ISSUER, source=SOURCE)

    assert metadata.issuer == kit.ISSUER + "/"  # the server's exact value (used as assertion aud)


@pytest.mark.parametrize("issuer", ["https://other.example.test", "https://auth.example.test/tenant", None, 42])
def test_issuer_mismatch(kit: Any, issuer: Any) -> None:
    with pytest.raises(DiscoveryError) as caught:
        validate(kit.discovery_document(issuer=issuer), expected_issuer=kit.ISSUER, source=SOURCE)

    message = str(caught.value)
    assert "Issuer mismatch" in message
    assert repr(kit.ISSUER) in message
    assert repr(issuer) in message
    assert SOURCE in message
    assert "Issuer URL" in message


@pytest.mark.parametrize("document", [[], "text", None, 1])
def test_document_not_an_object(document: Any, kit: Any) -> None:
    with pytest.raises(DiscoveryError, match="is not a JSON object"):
        validate(document, expected_issuer=kit.ISSUER, source=SOURCE)


@pytest.mark.parametrize("token_endpoint", [None, 123, ["https://auth.example.test/token"]])
def test_missing_token_endpoint(kit: Any, token_endpoint: Any) -> None:
    with pytest.raises(DiscoveryError, match="has no token_endpoint"):
        validate(kit.discovery_document(token_endpoint=token_endpoint), expected_issuer=kit.ISSUER, source=SOURCE)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("token_endpoint", "http://auth.example.test/token"),
        ("token_endpoint", ""),
        ("introspection_endpoint", "http://auth.example.test/token/introspection"),
        ("registration_endpoint", "http://auth.example.test/reg"),
        ("jwks_uri", "http://auth.example.test/jwks"),
    ],
)
def test_http_endpoints_are_refused(kit: Any, name: str, value: str) -> None:
    with pytest.raises(DiscoveryError) as caught:
        validate(kit.discovery_document(**{name: value}), expected_issuer=kit.ISSUER, source=SOURCE)

    assert f"{name} is {value!r}, not an https:// URL" in str(caught.value)


def test_http_alias_is_refused(kit: Any) -> None:
    aliases = {"token_endpoint": "http://matls-auth.example.test/token"}

    with pytest.raises(DiscoveryError) as caught:
        validate(kit.discovery_document(mtls_endpoint_aliases=aliases), expected_issuer=kit.ISSUER, source=SOURCE)

    assert "mtls_endpoint_aliases.token_endpoint" in str(caught.value)
    assert "not an https:// URL" in str(caught.value)


@pytest.mark.parametrize(
    ("aliases", "expected"),
    [(["https://x.example.test/token"], "is not a JSON object"), ({"token_endpoint": 5}, "is not a URL string")],
)
def test_malformed_aliases(kit: Any, aliases: Any, expected: str) -> None:
    with pytest.raises(DiscoveryError, match=expected):
        validate(kit.discovery_document(mtls_endpoint_aliases=aliases), expected_issuer=kit.ISSUER, source=SOURCE)


# -- alias routing ---------------------------------------------------------------------------------


def test_mtls_uses_the_token_endpoint_alias(kit: Any) -> None:
    metadata = validate(kit.discovery_document(), expected_issuer=kit.ISSUER, source=SOURCE)

    assert metadata.token_endpoint_for(mtls=True) == kit.MTLS_TOKEN_ENDPOINT
    assert metadata.token_endpoint_for(mtls=False) == kit.TOKEN_ENDPOINT


def test_without_aliases_mtls_uses_the_plain_endpoint(kit: Any) -> None:
    metadata = validate(kit.discovery_document(mtls_endpoint_aliases=None), expected_issuer=kit.ISSUER, source=SOURCE)

    assert metadata.mtls_endpoint_aliases is None
    assert metadata.token_endpoint_for(mtls=True) == kit.TOKEN_ENDPOINT


def test_aliases_without_token_endpoint_fail_closed(kit: Any) -> None:
    aliases = {"introspection_endpoint": "https://matls-auth.example.test/token/introspection"}
    metadata = validate(
        kit.discovery_document(mtls_endpoint_aliases=aliases), expected_issuer=kit.ISSUER, source=SOURCE
    )

    with pytest.raises(DiscoveryError) as caught:
        metadata.token_endpoint_for(mtls=True)

    assert "without a token_endpoint alias" in str(caught.value)
    assert kit.ISSUER in str(caught.value)
    # Without a certificate the plain endpoint is still the right one.
    assert metadata.token_endpoint_for(mtls=False) == kit.TOKEN_ENDPOINT


# -- fetching --------------------------------------------------------------------------------------


def test_fetch_sends_a_plain_get_for_json(session: requests.Session, kit: Any, mocked: responses.RequestsMock) -> None:
    kit.register_discovery(mocked)

    metadata = fetch(session, kit)

    assert metadata.token_endpoint == kit.TOKEN_ENDPOINT
    assert len(mocked.calls) == 1
    request = mocked.calls[0].request
    assert request.method == "GET"
    assert request.headers["Accept"] == "application/json"
    assert "Authorization" not in request.headers


@pytest.mark.parametrize("status", [404, 401, 400])
def test_fetch_error_status(session: requests.Session, kit: Any, mocked: responses.RequestsMock, status: int) -> None:
    mocked.add(responses.GET, kit.DISCOVERY_URL, status=status, body="Not Found")

    with pytest.raises(DiscoveryError) as caught:
        fetch(session, kit)

    assert f"answered HTTP {status}" in str(caught.value)
    assert "/.well-known/openid-configuration" in str(caught.value)
    assert len(mocked.calls) == 1  # a client error is not retried


def test_fetch_retries_server_errors(session: requests.Session, kit: Any, mocked: responses.RequestsMock) -> None:
    mocked.add(responses.GET, kit.DISCOVERY_URL, status=503)
    kit.register_discovery(mocked)

    assert fetch(session, kit).issuer == kit.ISSUER
    assert len(mocked.calls) == 2


def test_fetch_gives_up_after_the_retry_policy(
    session: requests.Session, kit: Any, mocked: responses.RequestsMock
) -> None:
    mocked.add(responses.GET, kit.DISCOVERY_URL, status=502)

    with pytest.raises(DiscoveryError, match="answered HTTP 502"):
        fetch(session, kit)

    assert len(mocked.calls) == kit.FAST_RETRY.attempts


def test_fetch_html_page(session: requests.Session, kit: Any, mocked: responses.RequestsMock) -> None:
    mocked.add(responses.GET, kit.DISCOVERY_URL, body="<html>login</html>", content_type="text/html")

    with pytest.raises(DiscoveryError) as caught:
        fetch(session, kit)

    assert "did not return JSON (text/html)" in str(caught.value)
    assert "not a web page" in str(caught.value)


def test_fetch_invalid_json(session: requests.Session, kit: Any, mocked: responses.RequestsMock) -> None:
    mocked.add(responses.GET, kit.DISCOVERY_URL, body='{"issuer": "https://auth', content_type="application/json")

    with pytest.raises(DiscoveryError, match="did not return JSON"):
        fetch(session, kit)


def test_fetch_json_array(session: requests.Session, kit: Any, mocked: responses.RequestsMock) -> None:
    mocked.add(responses.GET, kit.DISCOVERY_URL, json=[kit.discovery_document()])

    with pytest.raises(DiscoveryError, match="is not a JSON object"):
        fetch(session, kit)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_fetch_does_not_follow_redirects(
    session: requests.Session, kit: Any, mocked: responses.RequestsMock, status: int
) -> None:
    target = "https://elsewhere.example.test/.well-known/openid-configuration"
    mocked.add(responses.GET, kit.DISCOVERY_URL, status=status, headers={"Location": target})
    mocked.add(responses.GET, target, json=kit.discovery_document())

    with pytest.raises(DiscoveryError) as caught:
        fetch(session, kit)

    assert "redirects to" in str(caught.value)
    assert target in str(caught.value)
    assert [call.request.url for call in mocked.calls] == [kit.DISCOVERY_URL]


def test_fetch_connection_error(session: requests.Session, kit: Any, mocked: responses.RequestsMock) -> None:
    mocked.add(responses.GET, kit.DISCOVERY_URL, body=requests.ConnectionError("refused"))

    with pytest.raises(DiscoveryError) as caught:
        fetch(session, kit)

    assert "Could not reach the discovery document" in str(caught.value)
    assert "ConnectionError" in str(caught.value)
    assert "ca_bundle" in str(caught.value)
    assert len(mocked.calls) == kit.FAST_RETRY.attempts


def test_fetch_validates_the_document(session: requests.Session, kit: Any, mocked: responses.RequestsMock) -> None:
    kit.register_discovery(mocked, issuer="https://impostor.example.test")

    with pytest.raises(DiscoveryError, match="Issuer mismatch"):
        fetch(session, kit)


# -- caching ---------------------------------------------------------------------------------------


def test_document_is_fetched_once_per_process(
    session: requests.Session, kit: Any, mocked: responses.RequestsMock
) -> None:
    kit.register_discovery(mocked)

    first = fetch(session, kit)
    second = fetch(new_session(ssl.create_default_context(), 1, DISCOVERY_HOSTS), kit)

    assert second is first
    assert len(mocked.calls) == 1


def test_cache_is_keyed_by_url_and_issuer(session: requests.Session, kit: Any, mocked: responses.RequestsMock) -> None:
    other_url = "https://other.example.test/.well-known/openid-configuration"
    kit.register_discovery(mocked)
    mocked.add(
        responses.GET,
        other_url,
        json=kit.discovery_document(issuer="https://other.example.test", token_endpoint="https://other.example.test/t"),
    )

    first = fetch(session, kit)
    other = fetch(session, kit, url=other_url, issuer="https://other.example.test")

    assert first.token_endpoint == kit.TOKEN_ENDPOINT
    assert other.token_endpoint == "https://other.example.test/t"
    assert len(mocked.calls) == 2


def test_failures_are_not_cached(session: requests.Session, kit: Any, mocked: responses.RequestsMock) -> None:
    mocked.add(responses.GET, kit.DISCOVERY_URL, status=404)
    kit.register_discovery(mocked)

    with pytest.raises(DiscoveryError):
        fetch(session, kit)
    assert fetch(session, kit).issuer == kit.ISSUER
    assert len(mocked.calls) == 2


def test_clear_cache_forces_a_new_fetch(session: requests.Session, kit: Any, mocked: responses.RequestsMock) -> None:
    kit.register_discovery(mocked)

    fetch(session, kit)
    discovery.clear_cache()
    fetch(session, kit)

    assert len(mocked.calls) == 2
