"""Credentials only go to the configured hosts: proven against hostile TLS peers, from the peers' side.

The token and the client certificate come from the real sandbox (oidc-provider over mTLS); the peers
trust the sandbox CA and ask for client certificates, so a client that would leak them does, and the
peer records it. A peer on 127.0.0.2 (or on another port of 127.0.0.1) is "another host".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.hostile_peer import HostilePeer, Received, Reply

from airflow_provider_raidiam.client import RaidiamClient
from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.exceptions import (
    ApiError,
    DiscoveryError,
    ForeignHostError,
    RedirectError,
    TokenError,
)
from airflow_provider_raidiam.retry import RetryPolicy
from raidiam_sandbox import Sandbox

pytestmark = pytest.mark.integration

StartPeer = Callable[..., HostilePeer]
MakeClient = Callable[..., RaidiamClient]
RETRY = RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.02)
REDIRECTS = [301, 302, 303, 307, 308]


@pytest.fixture
def make_client(sandbox: Sandbox) -> Iterator[MakeClient]:
    """Clients of the sandbox's ``tls`` identity; keyword args override connection fields and extras."""
    clients: list[RaidiamClient] = []

    def make(**overrides: Any) -> RaidiamClient:
        conn = sandbox.connection("tls", **overrides)
        settings = RaidiamSettings.from_fields(host=conn["host"], login=conn["login"], extra=conn["extra"])
        client = RaidiamClient(settings, retry=RETRY)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def netloc(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


# -- templated endpoints ----------------------------------------------------------------------------


def test_templated_endpoint_with_backslash_trick_sends_nothing_to_the_other_host(
    sandbox: Sandbox, hostile_peer: StartPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # urllib.parse reads the host after the '@'; urllib3 (which connects) stops the authority at '\'.
    from airflow_provider_raidiam.operators.directory import RaidiamApiOperator

    peer = hostile_peer(sandbox.pki)
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_DEFAULT", sandbox.connection_uri_env("tls"))
    trick = f"https://{peer.netloc}\\@{netloc(sandbox.api_base_url)}/organisations"
    operator = RaidiamApiOperator(task_id="call", endpoint="{{ params.endpoint }}", paginate=False)
    operator.render_template_fields({"params": {"endpoint": trick}})  # type: ignore[arg-type]
    assert operator.endpoint == trick

    with pytest.raises(ForeignHostError, match=r"Refusing to connect to https://127\.0\.0\.2:"):
        operator.execute(context={})  # type: ignore[arg-type]

    peer.assert_untouched()


# A table of URL parser tricks, built from the peer's and the Directory's host:port. "refused": the
# call raises before any connection; "directory": it is a legitimate spelling of the Directory's URL.
TRICKS: list[tuple[str, str, str]] = [
    ("backslash-userinfo", "https://{evil}\\@{good}/organisations", "refused"),
    ("backslash-host", "https://{evil}\\.{good}/organisations", "refused"),
    ("userinfo-at", "https://{good}@{evil}/organisations", "refused"),
    ("userinfo-user-pass", "https://user:pass@{good}/organisations", "refused"),
    ("fragment-at", "https://{evil}#@{good}/organisations", "refused"),
    ("query-at", "https://{evil}?@{good}/organisations", "refused"),
    ("encoded-slash-host", "https://{evil}%2F@{good}/organisations", "refused"),
    ("encoded-at-host", "https://{evil}%40{good}/organisations", "refused"),
    ("upper-case-scheme-evil", "HTTPS://{evil}/organisations", "refused"),
    ("other-port-same-ip", "https://127.0.0.1:{evil_port}/organisations", "refused"),
    ("ipv6-loopback", "https://[::1]:{good_port}/organisations", "refused"),
    ("ipv6-mapped-ipv4", "https://[::ffff:127.0.0.1]:{good_port}/organisations", "refused"),
    ("short-ipv4", "https://127.1:{good_port}/organisations", "refused"),
    ("trailing-dot", "https://127.0.0.1.:{good_port}/organisations", "refused"),
    ("localhost-alias", "https://localhost:{good_port}/organisations", "refused"),
    ("idn-look-alike", "https://l\u043ecalhost:{good_port}/organisations", "refused"),
    ("punycode-look-alike", "https://xn--lcalhost-9fh:{good_port}/organisations", "refused"),
    ("plain-http", "http://{good}/organisations", "refused"),
    ("upper-case-scheme-good", "HTTPS://{good}/organisations", "directory"),
    ("fragment-at-good", "https://{good}/organisations#@{evil}", "directory"),
    ("encoded-at-in-path", "https://{good}/organisations%40{evil}", "directory-404"),
]


@pytest.mark.parametrize(("name", "template", "outcome"), TRICKS, ids=[t[0] for t in TRICKS])
def test_url_parser_tricks_never_reach_another_host(
    sandbox: Sandbox, hostile_peer: StartPeer, make_client: MakeClient, name: str, template: str, outcome: str
) -> None:
    evil_peer = hostile_peer(sandbox.pki, "127.0.0.2")
    evil_port_peer = hostile_peer(sandbox.pki, "127.0.0.1")
    v6_peer = hostile_peer(sandbox.pki, "::1", port=int(sandbox.api_base_url.rsplit(":", 1)[1].split("/")[0]))
    good = netloc(sandbox.api_base_url)
    url = template.format(
        evil=evil_peer.netloc, good=good, evil_port=evil_port_peer.port, good_port=good.rsplit(":", 1)[1]
    )
    client = make_client()
    client.access_token()

    if outcome == "refused":
        with pytest.raises(ForeignHostError) as caught:
            client.get_json(url, {"page": 0, "size": 1})
        assert "pass" not in str(caught.value)
    elif outcome == "directory":
        assert client.get_json(url, {"page": 0, "size": 1})["content"]
    else:
        with pytest.raises(ApiError, match="HTTP 404"):
            client.get_json(url)

    for peer in (evil_peer, evil_port_peer, v6_peer):
        peer.assert_untouched()


# -- redirects --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", REDIRECTS)
@pytest.mark.parametrize("target", ["other-host", "other-port"])
def test_directory_api_redirect_is_not_followed(
    sandbox: Sandbox, hostile_peer: StartPeer, make_client: MakeClient, status: int, target: str
) -> None:
    directory = hostile_peer(sandbox.pki, "127.0.0.1")  # stands in for the configured Directory API host
    elsewhere = hostile_peer(sandbox.pki, "127.0.0.2" if target == "other-host" else "127.0.0.1")
    directory.respond(Reply.redirect(elsewhere.url_for("/organisations"), status))
    client = make_client(api_base_url=directory.url)

    with pytest.raises(RedirectError) as caught:
        client.get_json("/organisations")

    assert caught.value.status == status
    assert caught.value.location == elsewhere.url_for("/organisations")
    assert elsewhere.url_for("/organisations") in str(caught.value)
    elsewhere.assert_untouched()
    assert len(directory.requests) == 1, "a redirect is not retried"


def test_redirect_location_in_the_error_is_escaped_and_bounded(
    sandbox: Sandbox, hostile_peer: StartPeer, make_client: MakeClient
) -> None:
    directory = hostile_peer(sandbox.pki, "127.0.0.1")
    forged = "https://x/\x1b[31m\r\nINFO - Marking task as SUCCESS" + "A" * 5000
    directory.respond(Reply(302, {"Location": forged.replace("\r\n", "%0D%0A")}))
    client = make_client(api_base_url=directory.url)

    with pytest.raises(RedirectError) as caught:
        client.get_json("/organisations")

    message = str(caught.value)
    assert "\x1b" not in message
    assert "\n" not in message
    assert len(message) < 1000


def issuer_with_token_redirect(peer: HostilePeer, status: int, location: str) -> Callable[[Received], Reply]:
    """A stand-in issuer: discovery for itself, its token endpoint redirecting to ``location``."""

    def answer(request: Received) -> Reply:
        if request.path == "/.well-known/openid-configuration":
            return Reply.json(
                {
                    "issuer": peer.url,
                    "token_endpoint": peer.url_for("/token"),
                    "token_endpoint_auth_methods_supported": ["tls_client_auth", "private_key_jwt"],
                }
            )
        return Reply.redirect(location, status)

    return answer


@pytest.mark.parametrize("status", REDIRECTS)
@pytest.mark.parametrize("client_name", ["tls", "pkj"])
def test_token_endpoint_redirect_is_not_followed(
    sandbox: Sandbox, hostile_peer: StartPeer, status: int, client_name: str
) -> None:
    issuer = hostile_peer(sandbox.pki, "127.0.0.1")
    collector = hostile_peer(sandbox.pki, "127.0.0.2")
    collector.respond(Reply.json({"access_token": "foreign", "token_type": "Bearer", "expires_in": 300}))
    issuer.respond(issuer_with_token_redirect(issuer, status, collector.url_for("/token")))
    conn = sandbox.connection(client_name, host=issuer.url)
    settings = RaidiamSettings.from_fields(host=conn["host"], login=conn["login"], extra=conn["extra"])

    with RaidiamClient(settings, retry=RETRY) as client, pytest.raises(TokenError) as caught:
        client.access_token()

    assert collector.url_for("/token") in str(caught.value)
    collector.assert_untouched()
    assert [r.request_line for r in issuer.requests] == [
        "GET /.well-known/openid-configuration HTTP/1.1",
        "POST /token HTTP/1.1",
    ], "one token request, not retried, not re-posted"


@pytest.mark.parametrize("status", REDIRECTS)
def test_discovery_redirect_is_not_followed(sandbox: Sandbox, hostile_peer: StartPeer, status: int) -> None:
    issuer = hostile_peer(sandbox.pki, "127.0.0.1")
    elsewhere = hostile_peer(sandbox.pki, "127.0.0.2")
    issuer.respond(Reply.redirect(elsewhere.url_for("/.well-known/openid-configuration"), status))
    conn = sandbox.connection("tls", host=issuer.url)
    settings = RaidiamSettings.from_fields(host=conn["host"], login=conn["login"], extra=conn["extra"])

    with RaidiamClient(settings, retry=RETRY) as client, pytest.raises(DiscoveryError, match="redirects to"):
        client.access_token()

    elsewhere.assert_untouched()
    assert len(issuer.requests) == 1


# -- which hosts each session may reach -------------------------------------------------------------


def test_token_endpoint_on_another_host_than_discovery_is_allowed_only_as_discovered(
    sandbox: Sandbox, hostile_peer: StartPeer, make_client: MakeClient
) -> None:
    # The mTLS alias (another port than the issuer) is reached because discovery named it; the same
    # session still refuses a host nobody configured.
    client = make_client()
    client.access_token()
    mtls_alias = client.token_client.token_endpoint
    assert netloc(mtls_alias) != netloc(sandbox.issuer)
    peer = hostile_peer(sandbox.pki)
    with pytest.raises(ForeignHostError):
        client.mtls_session.get(peer.url_for("/anything"), timeout=30)
    peer.assert_untouched()


def test_public_session_reaches_only_discovery_and_participants_hosts(
    sandbox: Sandbox, hostile_peer: StartPeer, make_client: MakeClient
) -> None:
    client = make_client()
    assert client.get_public_json(sandbox.participants_url)
    peer = hostile_peer(sandbox.pki)
    with pytest.raises(ForeignHostError):
        client.get_public_json(peer.url_for("/participants"))
    peer.assert_untouched()


def test_public_client_presents_no_certificate_and_no_token(sandbox: Sandbox, hostile_peer: StartPeer) -> None:
    peer = hostile_peer(sandbox.pki, reply=Reply.json([]))
    conn = sandbox.connection("tls", participants_url=peer.url_for("/participants"))
    settings = RaidiamSettings.from_fields(host=conn["host"], login=conn["login"], extra=conn["extra"])
    with RaidiamClient(settings, retry=RETRY) as client:
        assert client.get_public_json(peer.url_for("/participants")) == []
    assert len(peer.requests) == 1
    assert peer.client_certificates == []
    assert peer.bearer_tokens == []
