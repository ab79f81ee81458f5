"""The Bearer token goes only to the Directory API origin, checked on the prepared request (hostile peer)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from support.hostile_peer import HostilePeer

from airflow_provider_raidiam.auth.bearer import BearerAuth
from airflow_provider_raidiam.exceptions import ForeignHostError
from raidiam_sandbox.pki import SandboxPki

StartPeer = Callable[..., HostilePeer]


def mtls_session(pki: SandboxPki) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(pki.ca_cert)
    session.cert = (str(pki.cert("tls-client")), str(pki.key("tls-client")))
    return session


def test_token_endpoint_host_receives_no_bearer_token(hostile_peer: StartPeer, pki: SandboxPki) -> None:
    token_host = hostile_peer(pki)
    tokens_issued: list[str] = []

    def token() -> str:
        tokens_issued.append("live-token")
        return "live-token"

    auth = BearerAuth(token, "https://127.0.0.1:1/api")

    with pytest.raises(ForeignHostError, match=r"Refusing to send the access token to https://127\.0\.0\.2:"):
        mtls_session(pki).get(token_host.url_for("/token"), auth=auth, timeout=30)

    token_host.assert_untouched()
    assert tokens_issued == []
    assert auth.sent_token == ""


def test_api_origin_receives_the_current_token(hostile_peer: StartPeer, pki: SandboxPki) -> None:
    api = hostile_peer(pki)
    tokens = iter(["tok-1", "tok-2"])
    auth = BearerAuth(lambda: next(tokens), api.url_for("/base"))
    session = mtls_session(pki)

    session.get(api.url_for("/a?page=1"), auth=auth, timeout=30)
    session.get(api.url_for("/b"), auth=auth, timeout=30)

    assert api.bearer_tokens == ["tok-1", "tok-2"]
    assert auth.sent_token == "tok-2"


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8443/x",  # same host, other port
        "http://api.example/x",  # other scheme
        "https://api.example.evil/x",  # other host
    ],
)
def test_foreign_origins_get_no_header(url: str) -> None:
    request = requests.Request("GET", url).prepare()
    with pytest.raises(ForeignHostError):
        BearerAuth(lambda: "live-token", "https://api.example")(request)
    assert "Authorization" not in request.headers


def test_same_origin_in_another_spelling_gets_the_header() -> None:
    request = requests.Request("GET", "https://API.example:443/x").prepare()
    BearerAuth(lambda: "live-token", "https://api.example")(request)
    assert request.headers["Authorization"] == "Bearer live-token"
