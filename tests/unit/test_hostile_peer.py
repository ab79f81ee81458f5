"""The hostile TLS peer used by the trust-boundary tests records what it receives and answers as scripted."""

from __future__ import annotations

import gzip
import socket
import ssl
from collections.abc import Callable

import pytest
import requests
from support.hostile_peer import HostilePeer, Received, Reply

from raidiam_sandbox.pki import SandboxPki

StartPeer = Callable[..., HostilePeer]


def client(pki: SandboxPki, *, certificate: bool = True) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(pki.ca_cert)
    if certificate:
        session.cert = (str(pki.cert("tls-client")), str(pki.key("tls-client")))
    return session


def test_records_handshake_certificate_request_token_and_body(hostile_peer: StartPeer, pki: SandboxPki) -> None:
    peer = hostile_peer(pki)
    assert peer.url.startswith("https://127.0.0.2:")
    peer.assert_untouched()

    response = client(pki).post(
        peer.url_for("/token?x=1"),
        data={"grant_type": "client_credentials", "client_assertion": "signed.jwt.value"},
        headers={"Authorization": "Bearer live-token"},
        timeout=30,
    )

    assert response.json() == {"hostile": True}
    [connection] = peer.connections
    assert connection.handshake_ok
    assert connection.client_certificate == pki.thumbprint("tls-client")
    [received] = peer.requests
    assert received.request_line == "POST /token?x=1 HTTP/1.1"
    assert received.path == "/token"
    assert received.bearer_token == "live-token"
    assert received.form["grant_type"] == "client_credentials"
    assert peer.bearer_tokens == ["live-token"]
    assert peer.client_assertions == ["signed.jwt.value"]
    assert peer.client_certificates == [pki.thumbprint("tls-client")]
    with pytest.raises(AssertionError, match="1 bearer token"):
        peer.assert_untouched()


def test_a_client_without_certificate_is_recorded_without_one(hostile_peer: StartPeer, pki: SandboxPki) -> None:
    peer = hostile_peer(pki, "127.0.0.1")
    client(pki, certificate=False).get(peer.url_for("/a"), timeout=30)
    assert peer.client_certificates == []
    assert peer.requests[0].bearer_token is None


def test_a_failed_handshake_is_still_a_recorded_connection(hostile_peer: StartPeer, pki: SandboxPki) -> None:
    peer = hostile_peer(pki)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(peer.url, timeout=30, verify=str(pki.foreign_ca_cert))
    [connection] = peer.connections
    assert not connection.handshake_ok
    assert peer.requests == []


def test_scripted_replies_redirect_handler_and_raw(hostile_peer: StartPeer, pki: SandboxPki) -> None:
    peer = hostile_peer(pki, reply=Reply.redirect("https://127.0.0.3/x", 307))
    session = client(pki)
    response = session.get(peer.url_for("/organisations"), allow_redirects=False, timeout=30)
    assert (response.status_code, response.headers["Location"]) == (307, "https://127.0.0.3/x")

    def echo(request: Received) -> Reply:
        return Reply.json({"path": request.path}, status=201)

    peer.respond(echo)
    assert session.get(peer.url_for("/p?q=1"), timeout=30).json() == {"path": "/p"}

    peer.respond(Reply.raw_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        session.get(peer.url, timeout=30)


def test_gzip_bomb_is_small_on_the_wire_and_inflates_to_the_size_asked(
    hostile_peer: StartPeer, pki: SandboxPki
) -> None:
    inflated = 8 << 20
    peer = hostile_peer(pki, reply=Reply.gzip_bomb(inflated))
    response = client(pki).get(peer.url, stream=True, timeout=30)
    wire = response.raw.read(decode_content=False)
    assert len(wire) < inflated / 100
    assert len(gzip.decompress(wire)) == inflated


def test_huge_and_dripped_bodies_are_streamed(hostile_peer: StartPeer, pki: SandboxPki) -> None:
    peer = hostile_peer(pki, reply=Reply.huge(3 << 20, content_length=False))
    session = client(pki)
    assert len(session.get(peer.url, timeout=30).content) == 3 << 20

    peer.respond(Reply.drip(b'{"slow": true}', every=0.001, chunk=3))
    assert session.get(peer.url, timeout=30).json() == {"slow": True}


def test_stop_ends_a_dripping_reply(pki: SandboxPki) -> None:
    peer = HostilePeer(pki, reply=Reply.drip(b"x" * 1000, every=3600)).start()
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    raw = socket.create_connection((peer.host, peer.port), timeout=60)
    with context.wrap_socket(raw, server_hostname=peer.host) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"Content-Length: 1000" in tls.recv(4096)
        peer.stop()
        remaining = b""
        while chunk := tls.recv(4096):
            remaining += chunk
    assert len(remaining) < 1000
