"""The participants trigger's poll (``fetch_version``) and its configuration, without a network.

``fetch_version`` runs against ``httpx.MockTransport`` handlers that answer like a server would (or like
a hostile one); the handler records each request so the test sees what was sent. The trigger's loop
against a real TLS server is in ``tests/integration/test_participants_watch.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
from collections.abc import AsyncGenerator, Callable

import httpx
import pytest
from support.hostile_peer import HostilePeer, Reply

from airflow_provider_raidiam.exceptions import (
    ApiError,
    ConfigurationError,
    ResponseFormatError,
    ResponseTooLargeError,
)
from airflow_provider_raidiam.participants_watch import fetch_version
from airflow_provider_raidiam.sensors.participants import RaidiamParticipantsChangeSensor
from airflow_provider_raidiam.triggers.participants import RaidiamParticipantsTrigger
from raidiam_sandbox.pki import SandboxPki

URL = "https://data.directory.example/participants"
BODY = b'[{"OrganisationId": "a"}]'


def poll(handler: Callable[[httpx.Request], httpx.Response], **kwargs: object) -> object:
    async def go() -> object:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await fetch_version(client, URL, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(go())


def test_a_read_gives_the_digest_of_the_body_and_the_etag() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=BODY, headers={"ETag": '"v1"'})

    version = poll(handler)
    assert version.digest == hashlib.sha256(BODY).hexdigest()  # type: ignore[attr-defined]
    assert version.etag == '"v1"'  # type: ignore[attr-defined]
    assert "If-None-Match" not in seen[0].headers
    assert len(seen) == 1


def test_the_etag_is_sent_back_and_304_means_unchanged() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(304) if request.headers.get("If-None-Match") == '"v1"' else httpx.Response(200)

    assert poll(handler, etag='"v1"') is None
    assert [r.headers.get("If-None-Match") for r in seen] == ['"v1"']


def test_the_digest_is_of_the_decompressed_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=gzip.compress(BODY), headers={"Content-Encoding": "gzip"})

    assert poll(handler).digest == hashlib.sha256(BODY).hexdigest()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (httpx.Response(302, headers={"Location": "https://elsewhere.example/p"}), ApiError, "redirect: not followed"),
        (httpx.Response(304), ApiError, "answered 304"),  # 304 without our If-None-Match is not 'unchanged'
        (httpx.Response(503, content=b"down"), ApiError, "answered 503"),
        (httpx.Response(200, content=b"<html>maintenance</html>"), ResponseFormatError, "not a JSON array"),
        (httpx.Response(200, content=b"[" + b" " * 2000 + b"]"), ResponseTooLargeError, "larger than 1000 bytes"),
        (
            httpx.Response(
                200, content=gzip.compress(b"[" + b"0," * 5000 + b"0]"), headers={"Content-Encoding": "gzip"}
            ),
            ResponseTooLargeError,
            "larger than 1000 bytes",
        ),
    ],
)
def test_a_bad_answer_is_a_typed_error(response: httpx.Response, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        poll(lambda request: response, max_bytes=1000)


def test_an_unusable_etag_is_not_sent_back() -> None:
    version = poll(lambda request: httpx.Response(200, content=BODY, headers={"ETag": "x" * 300}))
    assert version.etag is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs participants_url or raidiam_conn_id"),
        ({"participants_url": "http://data.directory.example/participants"}, "must be an https:// URL"),
        ({"participants_url": URL, "poll_interval": 0}, "poll_interval must be a positive number"),
        ({"participants_url": URL, "poll_interval": float("inf")}, "poll_interval must be a positive number"),
        ({"participants_url": URL, "timeout": -1}, "timeout must be a positive number"),
        ({"participants_url": URL, "max_bytes": 0}, "max_bytes must be a positive integer"),
        ({"participants_url": URL, "attempt_deadline": 0}, "attempt_deadline must be a positive number"),
    ],
)
def test_bad_trigger_arguments_are_typed_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RaidiamParticipantsTrigger(**kwargs)  # type: ignore[arg-type]


def test_the_trigger_serializes_to_what_rebuilds_it() -> None:
    trigger = RaidiamParticipantsTrigger(raidiam_conn_id="raidiam_default", poll_interval=60, since_hash="ab")
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_raidiam.triggers.participants.RaidiamParticipantsTrigger"
    assert RaidiamParticipantsTrigger(**kwargs).serialize() == (classpath, kwargs)
    # a watcher's identity is its classpath and kwargs: the same configuration, the same trigger
    same = RaidiamParticipantsTrigger(raidiam_conn_id="raidiam_default", poll_interval=60.0, since_hash="ab")
    assert RaidiamParticipantsTrigger.hash(*same.serialize()) == RaidiamParticipantsTrigger.hash(classpath, kwargs)


def test_the_trigger_is_usable_in_an_asset_watcher() -> None:
    from airflow.sdk import Asset, AssetWatcher

    trigger = RaidiamParticipantsTrigger(participants_url=URL)
    asset = Asset("raidiam://raidiam-default/participants", watchers=[AssetWatcher(name="w", trigger=trigger)])
    assert asset.watchers[0].trigger is trigger


def test_the_sensor_defers_to_the_trigger_with_its_timeout() -> None:
    from airflow.sdk.exceptions import TaskDeferred

    sensor = RaidiamParticipantsChangeSensor(
        task_id="wait", raidiam_conn_id="raidiam_default", since_hash="ab", poll_interval=30, timeout=3600
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # type: ignore[arg-type]
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout is not None
    assert deferred.value.timeout.total_seconds() == 3600
    _classpath, kwargs = deferred.value.trigger.serialize()
    assert kwargs["raidiam_conn_id"] == "raidiam_default"
    assert kwargs["since_hash"] == "ab"
    assert kwargs["poll_interval"] == 30
    event = {"participants_url": URL, "sha256": "cd", "previous_sha256": "ab", "etag": None, "bytes": 2}
    assert sensor.execute_complete({}, event) == event  # type: ignore[arg-type]


def test_the_trigger_survives_a_hostile_server_and_fires_only_on_a_real_change(
    pki: SandboxPki, hostile_peer: Callable[..., HostilePeer]
) -> None:
    peer = hostile_peer(pki)
    elsewhere = hostile_peer(pki, host="127.0.0.3")
    first, second = [{"OrganisationId": "a"}], [{"OrganisationId": "b"}]
    replies = [
        Reply.json(first, headers={"ETag": '"e1"'}),  # the baseline
        Reply.redirect(elsewhere.url_for("/participants")),  # not followed
        Reply.gzip_bomb(50 << 20, prefix=b"["),  # bounded after decompression
        Reply.huge(5 << 20, prefix=b"["),  # bounded
        Reply.drip(json.dumps(second).encode(), every=1.0),  # bounded by the attempt deadline
        Reply.json({"errors": ["maintenance"]}),  # 200 but not a list of participants
        Reply.raw_bytes(b"garbage\r\n\r\n"),  # not HTTP
        Reply(304),  # answers our If-None-Match: unchanged
        Reply.json(second, headers={"ETag": '"e2"'}),  # the change
    ]
    peer.respond(lambda request: replies[min(len(peer.requests), len(replies)) - 1])
    trigger = RaidiamParticipantsTrigger(
        participants_url=peer.url_for("/participants"),
        ca_bundle=str(pki.ca_cert),
        poll_interval=0.01,
        max_bytes=1 << 20,
        attempt_deadline=0.5,
    )

    async def first_event() -> dict[str, object]:
        events = trigger.run()
        assert isinstance(events, AsyncGenerator)  # run() is an async generator: it can be closed
        try:
            return (await anext(events)).payload  # type: ignore[no-any-return]
        finally:
            await events.aclose()

    event = asyncio.run(first_event())
    assert event["previous_sha256"] == hashlib.sha256(json.dumps(first).encode()).hexdigest()
    assert event["sha256"] == hashlib.sha256(json.dumps(second).encode()).hexdigest()
    assert event["etag"] == '"e2"'
    assert len(peer.requests) == len(replies), "one request per poll, and no event before the real change"
    elsewhere.assert_untouched()
    assert [r.header("If-None-Match") for r in peer.requests] == [None] + ['"e1"'] * (len(replies) - 1)
    assert peer.bearer_tokens == []
    assert peer.client_certificates == []


class RecordingStore:
    """Stands in for the asset state store the triggerer gives a watcher (Airflow 3.3): a dict."""

    def __init__(self, **state: str) -> None:
        self.state: dict[str, object] = dict(state)

    async def aget(self, key: str, default: object = None) -> object:
        return self.state.get(key, default)

    async def aset(self, key: str, value: object) -> None:
        self.state[key] = value


def test_a_watcher_remembers_the_digest_so_a_change_during_a_restart_still_fires(
    pki: SandboxPki, hostile_peer: Callable[..., HostilePeer]
) -> None:
    body = json.dumps([{"OrganisationId": "b"}]).encode()
    peer = hostile_peer(pki)
    peer.respond(Reply(200, {"Content-Type": "application/json"}, body))
    store = RecordingStore(raidiam_participants_sha256="digest-seen-before-the-restart")
    trigger = RaidiamParticipantsTrigger(
        participants_url=peer.url_for("/participants"), ca_bundle=str(pki.ca_cert), poll_interval=0.01
    )
    trigger.asset_state_store = store  # type: ignore[assignment]

    async def first_event_then_one_more_poll() -> tuple[dict[str, object], object]:
        events = trigger.run()
        assert isinstance(events, AsyncGenerator)  # run() is an async generator: it can be closed
        event = (await anext(events)).payload
        stored_at_event = store.state["raidiam_participants_sha256"]
        polling = asyncio.ensure_future(anext(events))
        while len(peer.requests) < 2:
            await asyncio.sleep(0.01)
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
        await events.aclose()
        return event, stored_at_event

    event, stored_at_event = asyncio.run(first_event_then_one_more_poll())
    assert event["previous_sha256"] == "digest-seen-before-the-restart"
    assert len(peer.requests) >= 2
    # Remembered only once the triggerer took the event (at least once: a crash in between fires again).
    assert stored_at_event == "digest-seen-before-the-restart"
    assert store.state["raidiam_participants_sha256"] == hashlib.sha256(body).hexdigest()
