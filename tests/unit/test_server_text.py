"""Server-sent text in messages and logs: bounded, escaped, one line; interaction ids validated.

The unit is :mod:`airflow_provider_raidiam.server_text`; then every place that puts server text into an
exception (API errors, token errors, discovery errors, binding errors) is fed a hostile value through
``responses``. The same is proven over real TLS, with the log lines, in
``tests/integration/test_bounded_responses.py``.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
import responses

from airflow_provider_raidiam import discovery
from airflow_provider_raidiam.auth.binding import check_token_binding
from airflow_provider_raidiam.auth.client_auth import TlsClientAuth
from airflow_provider_raidiam.auth.token_client import TokenClient
from airflow_provider_raidiam.boundary import AllowedOrigins
from airflow_provider_raidiam.client import RaidiamClient
from airflow_provider_raidiam.credentials import TlsMaterial
from airflow_provider_raidiam.exceptions import ApiError, BindingError, DiscoveryError, RaidiamError, TokenError
from airflow_provider_raidiam.http import INTERACTION_HEADER, new_session
from airflow_provider_raidiam.server_text import MAX_SERVER_TEXT, interaction_id, server_text

FORGED = "denied\r\n[2026-12-01, 03:00:00 UTC] {taskinstance.py:1} INFO - Marking task as SUCCESS\x1b[2K\x1b[1A"
"""A CR/LF line break and ANSI codes (erase line, cursor up): a forged "success" line in a task log."""

HUGE = "A" * (5 * 1024 * 1024)
"""A 5 MB error description."""


def assert_safe(text: str, *, limit: int = 4 * MAX_SERVER_TEXT + 2000) -> None:
    """One bounded line, no control characters at all."""
    assert len(text) < limit, f"{len(text)} characters"
    assert not any(ord(character) < 32 or ord(character) == 127 for character in text), repr(text[:200])


# -- the functions ----------------------------------------------------------------------------------


def test_control_characters_are_escaped_onto_one_line() -> None:
    shown = server_text(FORGED)

    assert_safe(shown)
    assert shown.startswith("denied\\r\\n[2026-12-01")
    assert "Marking task as SUCCESS\\x1b[2K\\x1b[1A" in shown


@pytest.mark.parametrize("character", ["\u202e", "\u2028", "\x00", "\x7f", "\x9b"])
def test_invisible_and_line_breaking_characters_are_escaped(character: str) -> None:
    shown = server_text(f"a{character}b")

    assert character not in shown
    assert shown == repr(f"a{character}b")[1:-1]


def test_printable_non_ascii_text_is_kept() -> None:
    assert server_text("Não autorizado: organização inválida") == "Não autorizado: organização inválida"


def test_long_text_is_cut_and_says_how_much_was_left_out() -> None:
    shown = server_text(HUGE)

    assert shown == "A" * MAX_SERVER_TEXT + f"... ({len(HUGE) - MAX_SERVER_TEXT:,} more characters not shown)"


def test_worst_case_length_is_bounded() -> None:
    assert len(server_text("\x00" * 10_000, limit=100)) <= 100 * 4 + 50
    assert len(server_text("\U0001f600\u202e" * 10_000, limit=100)) <= 100 * 10 + 50


def test_non_text_values_are_shown_as_text() -> None:
    assert server_text({"code": "X\n"}) == "{'code': 'X\\\\n'}"
    assert server_text(None) == "None"


@pytest.mark.parametrize("value", ["3f2b1c9e-6a55-4f3e-9d84-0c7e2a1b5d6f", "srv-1", "A", "a" * 100])
def test_well_formed_interaction_ids_are_kept(value: str) -> None:
    assert interaction_id(value, "ours") == value


@pytest.mark.parametrize(
    "value", [None, "", "-leading-dash", "a" * 101, "id\r\nMarking task as SUCCESS", "id\x1b[2K", "ïd", "a b", "a;b"]
)
def test_malformed_interaction_ids_are_replaced(value: str | None) -> None:
    assert interaction_id(value, "ours") == "ours"


# -- every place that shows server text ----------------------------------------------------------------

ISSUER = "https://auth.example.test"
API = "https://matls-api.example.test"


@pytest.fixture
def client(
    tls_settings: Callable[..., Any], kit: Any, shared_tls: TlsMaterial, mocked: responses.RequestsMock
) -> Iterator[RaidiamClient]:
    kit.register_discovery(mocked)
    mocked.add(responses.POST, kit.MTLS_TOKEN_ENDPOINT, json=kit.token_body("tok-1"))
    with RaidiamClient(tls_settings(), retry=kit.FAST_RETRY) as raidiam:
        raidiam.tls = shared_tls  # type: ignore[misc]  # pre-fill the cached property
        yield raidiam


def caught_message(call: Callable[[], object], error: type[RaidiamError] = RaidiamError) -> RaidiamError:
    with pytest.raises(error) as caught:
        call()
    assert_safe(str(caught.value))
    return caught.value


def test_api_error_bounds_and_escapes_the_errors_list(client: RaidiamClient, mocked: responses.RequestsMock) -> None:
    errors = [FORGED, HUGE, *[f"error {n}\n" for n in range(1000)]]
    mocked.add(responses.GET, API + "/x", status=400, json={"errors": errors})

    raised = caught_message(lambda: client.get_json("/x"), ApiError)

    assert isinstance(raised, ApiError)
    assert raised.errors[0] == server_text(FORGED)
    assert len(raised.errors) == 6
    assert raised.errors[-1] == "... 997 more errors not shown"
    assert "Marking task as SUCCESS" in str(raised), "the text is still there to read, escaped"


def test_api_error_escapes_the_reason_and_www_authenticate(
    client: RaidiamClient, mocked: responses.RequestsMock
) -> None:
    mocked.add(responses.GET, API + "/x", status=401, headers={"WWW-Authenticate": "Bearer " + HUGE})

    raised = caught_message(lambda: client.get_json("/x"), ApiError)

    assert "WWW-Authenticate: Bearer AAAA" in str(raised)


def test_a_malformed_interaction_id_is_replaced_by_ours(client: RaidiamClient, mocked: responses.RequestsMock) -> None:
    mocked.add(responses.GET, API + "/x", status=404, json={"errors": []}, headers={INTERACTION_HEADER: FORGED})

    raised = caught_message(lambda: client.get_json("/x"), ApiError)

    sent = mocked.calls[-1].request.headers[INTERACTION_HEADER]
    assert isinstance(raised, ApiError)
    assert raised.interaction_id == sent
    assert f"{INTERACTION_HEADER}={sent}" in str(raised)
    assert "Marking" not in str(raised)


def test_non_json_body_escapes_the_content_type(client: RaidiamClient, mocked: responses.RequestsMock) -> None:
    mocked.add(responses.GET, API + "/x", body="<html>", headers={"Content-Type": "text/html; x=" + HUGE})

    raised = caught_message(lambda: client.get_json("/x"), ApiError)

    assert "not valid JSON (text/html; x=AAA" in str(raised)


@pytest.fixture
def token_client(kit: Any, mocked: responses.RequestsMock) -> TokenClient:
    return TokenClient(
        session=new_session(ssl.create_default_context(), 2, AllowedOrigins([kit.MTLS_TOKEN_ENDPOINT])),
        token_endpoint=kit.MTLS_TOKEN_ENDPOINT,
        issuer=ISSUER,
        client_auth=TlsClientAuth("client-1"),
        scope="directory:software",
        certificate_thumbprint=None,
        timeout=5,
        retry=kit.FAST_RETRY,
        on_new_token=lambda _token: None,
    )


def test_token_error_bounds_and_escapes_the_oauth_error(
    token_client: TokenClient, kit: Any, mocked: responses.RequestsMock
) -> None:
    mocked.add(responses.POST, kit.MTLS_TOKEN_ENDPOINT, status=400, json={"error": FORGED, "error_description": HUGE})

    raised = caught_message(token_client.get, TokenError)

    assert isinstance(raised, TokenError)
    assert raised.error == server_text(FORGED, 100)
    assert raised.error_description is not None
    assert len(raised.error_description) < 400


def test_token_type_and_scope_are_escaped(
    token_client: TokenClient, kit: Any, mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.add(responses.POST, kit.MTLS_TOKEN_ENDPOINT, json={"access_token": "t", "token_type": FORGED})
    caught_message(token_client.get, TokenError)

    mocked.replace(responses.POST, kit.MTLS_TOKEN_ENDPOINT, json=kit.token_body("t", scope=FORGED + HUGE))
    with caplog.at_level("INFO"):
        token_client.get()

    (line,) = [record.getMessage() for record in caplog.records if "Obtained an access token" in record.getMessage()]
    assert_safe(line)


def test_discovery_errors_escape_what_the_server_sent(kit: Any, mocked: responses.RequestsMock) -> None:
    session = new_session(ssl.create_default_context(), 2, AllowedOrigins([kit.DISCOVERY_URL]))

    def fetch() -> object:
        discovery.clear_cache()
        return discovery.get_provider_metadata(
            session, kit.DISCOVERY_URL, expected_issuer=ISSUER, timeout=5, retry=kit.FAST_RETRY
        )

    documents: list[dict[str, Any]] = [
        kit.discovery_document(issuer=FORGED),
        kit.discovery_document(token_endpoint="http://" + FORGED),
        kit.discovery_document(**{FORGED + "_endpoint": "ftp://x"}),
        kit.discovery_document(mtls_endpoint_aliases={FORGED: 1}),
        kit.discovery_document(mtls_endpoint_aliases={FORGED: "http://x"}),
    ]
    for document in documents:
        mocked.upsert(responses.GET, kit.DISCOVERY_URL, json=document)
        caught_message(fetch, DiscoveryError)
    mocked.upsert(responses.GET, kit.DISCOVERY_URL, status=302, headers={"Location": FORGED + HUGE})
    assert "redirects to 'denied\\r\\n" in str(caught_message(fetch, DiscoveryError))
    mocked.upsert(responses.GET, kit.DISCOVERY_URL, body="<html>", headers={"Content-Type": FORGED})
    caught_message(fetch, DiscoveryError)


def test_binding_error_escapes_the_claimed_thumbprint() -> None:
    token = jwt.encode({"cnf": {"x5t#S256": FORGED + HUGE}}, "k" * 32, algorithm="HS256")

    for ours in ("our-thumbprint", None):
        caught_message(lambda ours=ours: check_token_binding(token, ours), BindingError)  # type: ignore[misc]
