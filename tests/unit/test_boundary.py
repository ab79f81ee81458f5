"""Where requests may go: origins as urllib3 connects to them, per-session allow-lists, https URL checks."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import requests
import responses

from airflow_provider_raidiam.boundary import AllowedOrigins, Origin, quote_untrusted, require_https_url
from airflow_provider_raidiam.exceptions import ConfigurationError, DiscoveryError, ForeignHostError, RedirectError
from airflow_provider_raidiam.http import allowed_origins, new_session

GOOD = "https://api.example.test"


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://api.example.test/x", ("https", "api.example.test", 443)),
        ("HTTPS://API.Example.TEST:443/x", ("https", "api.example.test", 443)),
        ("https://api.example.test:0443/x", ("https", "api.example.test", 443)),
        ("https://api.example.test:8443", ("https", "api.example.test", 8443)),
        ("https://evil.test:443\\@api.example.test/x", ("https", "evil.test", 443)),
        ("https://evil.test\\.api.example.test/x", ("https", "evil.test", 443)),
        ("https://evil.test#@api.example.test/x", ("https", "evil.test", 443)),
        ("https://evil.test?@api.example.test/x", ("https", "evil.test", 443)),
        ("https://[::1]:8443/x", ("https", "::1", 8443)),
        ("https://[0:0:0:0:0:0:0:1]:8443/x", ("https", "::1", 8443)),
        ("https://[::FFFF:127.0.0.1]/x", ("https", "::ffff:7f00:1", 443)),
        ("https://api.example.test./x", ("https", "api.example.test.", 443)),
        ("https://b\u00fccher.example/x", ("https", "xn--bcher-kva.example", 443)),
        ("http://api.example.test/x", ("http", "api.example.test", 80)),
    ],
)
def test_origin_is_where_urllib3_connects(url: str, origin: tuple[str, str, int]) -> None:
    assert Origin.of(url) == Origin(*origin)


@pytest.mark.parametrize("url", ["https://me:s3cr3t@api.example.test/", "https://s3cr3t@api.example.test/"])
def test_origin_refuses_userinfo_without_echoing_it(url: str) -> None:
    with pytest.raises(ForeignHostError) as caught:
        Origin.of(url)
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize("url", ["/relative", "ftp://api.example.test/", "https://", "https://[::1/x"])
def test_origin_refuses_what_is_not_an_absolute_https_url(url: str) -> None:
    with pytest.raises(ForeignHostError):
        Origin.of(url)


# Each of these would reach another host (or is ambiguous between parsers): refused by an allow-list
# holding only the good origin.
TRICKS = [
    "https://evil.test:443\\@api.example.test/organisations",
    "https://evil.test\\.api.example.test/organisations",
    "https://api.example.test@evil.test/organisations",
    "https://api.example.test:443@evil.test/organisations",
    "https://evil.test#@api.example.test/organisations",
    "https://evil.test?@api.example.test/organisations",
    "https://evil.test%2F@api.example.test/organisations",
    "https://evil.test%40api.example.test/organisations",
    "https://api.example.test%2eevil.test/organisations",
    "https://api.example.test./organisations",
    "https://api.example.test:8443/organisations",
    "https://api.example.test:80/organisations",
    "http://api.example.test/organisations",
    "HTTP://api.example.test/organisations",
    "https://\u0430pi.example.test/organisations",  # Cyrillic a
    "https://xn--pi-6kc.example.test/organisations",
    "https://api\u3002example\u3002test/organisations",  # ideographic full stops
    "https://[::1]/organisations",
    "https://user:pw@api.example.test/organisations",
]


@pytest.mark.parametrize("url", TRICKS)
def test_allow_list_refuses_parser_tricks(url: str) -> None:
    allowed = AllowedOrigins([GOOD])
    with pytest.raises(ForeignHostError):
        allowed.check(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.test/organisations",
        "HTTPS://API.EXAMPLE.TEST/organisations",
        "https://api.example.test:443/organisations",
        "https://api.example.test/organisations#@evil.test",
        "https://api.example.test/organisations?next=https://evil.test/",
        "https://api.example.test/organisations%40evil.test",
    ],
)
def test_allow_list_accepts_spellings_of_the_allowed_origin(url: str) -> None:
    assert AllowedOrigins([GOOD]).check(url) == Origin("https", "api.example.test", 443)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.test\\@me:s3cr3t@api.example.test/x",
        "https://me:s3cr3t@[::1/x",
        "ftp://me:s3cr3t@api.example.test/x",
        "http://me:s3cr3t@api.example.test/x",
        "https://evil.test/x?key=s3cr3t",
    ],
)
def test_refusals_never_echo_userinfo_or_query(url: str) -> None:
    with pytest.raises(ForeignHostError) as caught:
        AllowedOrigins([GOOD]).check(url)
    assert "s3cr3t" not in str(caught.value)


def test_allow_list_grows_and_names_what_is_allowed() -> None:
    allowed = AllowedOrigins([GOOD], purpose="the test session")
    with pytest.raises(ForeignHostError) as caught:
        allowed.check("https://auth.example.test/token")
    assert "the test session may only connect to https://api.example.test:443" in str(caught.value)
    allowed.allow("https://auth.example.test:443/token")
    assert allowed.check("https://auth.example.test/token").host == "auth.example.test"


def test_the_message_quotes_and_bounds_the_url() -> None:
    url = "https://evil.test/\x1b[31m\r\nINFO Marking task as SUCCESS" + "A" * 5000
    with pytest.raises(ForeignHostError) as caught:
        AllowedOrigins([GOOD]).check(url)
    message = str(caught.value)
    assert "\x1b" not in message
    assert "\n" not in message
    assert len(message) < 800


def test_quote_untrusted_escapes_and_bounds() -> None:
    assert quote_untrusted("a\r\nb") == repr("a\r\nb")
    assert quote_untrusted("x" * 300, limit=10) == "'" + "x" * 10 + "... (290 more characters not shown)'"


# -- the adapter: checked on the prepared request, no redirects followed ----------------------------


@pytest.fixture
def session() -> requests.Session:
    return new_session(ssl.create_default_context(), 2, AllowedOrigins([GOOD]))


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.mark.parametrize("url", TRICKS[:9])
def test_session_refuses_tricks_before_sending(
    session: requests.Session, mocked: responses.RequestsMock, url: str
) -> None:
    mocked.add(responses.GET, "https://evil.test/organisations", json={})
    with pytest.raises(ForeignHostError):
        session.get(url, headers={"Authorization": "Bearer live"}, timeout=5)
    assert len(mocked.calls) == 0


def test_session_checks_the_prepared_url_even_when_set_by_hand(
    session: requests.Session, mocked: responses.RequestsMock
) -> None:
    prepared = session.prepare_request(requests.Request("GET", GOOD + "/organisations"))
    prepared.url = "https://evil.test:443\\@api.example.test/organisations"
    with pytest.raises(ForeignHostError):
        session.send(prepared, timeout=5)
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("allow_redirects", [True, False])
def test_session_never_follows_a_redirect(
    session: requests.Session, mocked: responses.RequestsMock, status: int, allow_redirects: bool
) -> None:
    mocked.add(responses.POST, GOOD + "/token", status=status, headers={"Location": GOOD + "/elsewhere"})
    mocked.add(responses.POST, GOOD + "/elsewhere", json={"access_token": "foreign"})

    with pytest.raises(RedirectError) as caught:
        session.post(GOOD + "/token", data={"client_assertion": "x"}, allow_redirects=allow_redirects, timeout=5)

    assert caught.value.location == GOOD + "/elsewhere"
    assert caught.value.status == status
    assert [call.request.url for call in mocked.calls] == [GOOD + "/token"]


def test_session_refuses_per_request_proxies(session: requests.Session, mocked: responses.RequestsMock) -> None:
    with pytest.raises(ConfigurationError, match="proxies are not accepted"):
        session.get(GOOD + "/x", proxies={"https": "http://127.0.0.1:9"}, timeout=5)
    assert len(mocked.calls) == 0


def test_allowed_origins_of_a_session(session: requests.Session) -> None:
    assert allowed_origins(session).origins == {Origin("https", "api.example.test", 443)}


# -- require_https_url -----------------------------------------------------------------------------


def test_require_https_url_accepts_a_plain_https_url() -> None:
    assert require_https_url("https://api.example.test:8443/v1", "api_base_url") == "https://api.example.test:8443/v1"


def test_discovered_endpoints_may_have_a_query_but_no_userinfo_or_fragment() -> None:
    source = "https://auth.example.test/.well-known/openid-configuration"
    assert require_https_url("https://auth.example.test/t?x=1", "token_endpoint", source=source, allow_query=True)
    for url in ("https://u:s3cr3t@auth.example.test/t", "https://auth.example.test/t#f"):
        with pytest.raises(DiscoveryError) as caught:
            require_https_url(url, "token_endpoint", error=DiscoveryError, source=source, allow_query=True)
        assert str(caught.value).startswith(source + ": token_endpoint is ")
        assert "s3cr3t" not in str(caught.value)
