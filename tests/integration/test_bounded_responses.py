"""Hostile servers cost little: bounded size, bounded time, bounded and escaped text, bounded token lifetimes.

The hostile TLS peer (``tests/support/hostile_peer.py``) plays the Directory API (tokens come from the real
sandbox authorisation server), or the whole issuer (discovery and token endpoint), over real TLS with the
sandbox CA. Evidence is taken from the peer's side (requests received, how each answer ended: the client
hung up before the end) and, for memory, from a child process's peak RSS (``ru_maxrss``). No test asserts
how long anything took: deadlines are checked by the typed error and by what the peer saw.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.hostile_peer import HostilePeer, Received, Reply

from airflow_provider_raidiam.client import PublicClient, RaidiamClient
from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.exceptions import ApiError, ResponseDeadlineError, ResponseTooLargeError
from airflow_provider_raidiam.http import INTERACTION_HEADER
from airflow_provider_raidiam.retry import RetryPolicy
from airflow_provider_raidiam.throttle import Clock
from raidiam_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
ONE_ATTEMPT = RetryPolicy(attempts=1)
TWO_ATTEMPTS = RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.01)

StartPeer = Callable[..., HostilePeer]


@pytest.fixture
def peer(hostile_peer: StartPeer, sandbox: Sandbox) -> HostilePeer:
    """A hostile peer on 127.0.0.2 with a certificate from the sandbox CA."""
    return hostile_peer(sandbox.pki)


def connection(sandbox: Sandbox, **overrides: Any) -> dict[str, Any]:
    return sandbox.connection("tls", **overrides)


def settings_of(conn: dict[str, Any]) -> RaidiamSettings:
    return RaidiamSettings.from_fields(host=conn["host"], login=conn["login"], extra=conn["extra"])


@pytest.fixture
def client_for(sandbox: Sandbox) -> Iterator[Callable[..., RaidiamClient]]:
    """Clients of the sandbox's ``tls`` identity; keyword arguments override the connection's fields."""
    clients: list[RaidiamClient] = []

    def make(*, retry: RetryPolicy = ONE_ATTEMPT, **overrides: Any) -> RaidiamClient:
        built = RaidiamClient(settings_of(connection(sandbox, **overrides)), retry=retry)
        clients.append(built)
        return built

    yield make
    for built in clients:
        built.close()


# -- size: peak memory of a child process reading a hostile answer ------------------------------------------

READ_IN_A_CHILD = """
import json, os, resource
from airflow_provider_raidiam.client import RaidiamClient
from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.retry import RetryPolicy
from airflow_provider_raidiam.throttle import Clock

conn = json.loads(os.environ["RAIDIAM_TEST_CONNECTION"])
settings = RaidiamSettings.from_fields(host=conn["host"], login=conn["login"], extra=conn["extra"])
with RaidiamClient(settings, retry=RetryPolicy(attempts=1)) as client:
    client.access_token()  # TLS contexts, discovery and the token are not part of the measure
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        client.get_json("/organisations")
        outcome = "read whole"
    except Exception as error:
        outcome = type(error).__name__ + ": " + str(error)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "peak_growth_mib": (after - before) / 1024}))
"""

PEAK_GROWTH_BOUND_MIB = 256
"""With the default 64 MiB limit the body buffer and its one copy stay well under this; reading 500 MiB whole
(the behaviour before the limit) grows the peak by more than 1 GiB."""


@pytest.mark.parametrize(
    ("reply", "decompressed"),
    [
        pytest.param(lambda: Reply.gzip_bomb(500 * MiB), True, id="gzip-bomb-500MiB"),
        pytest.param(lambda: Reply.huge(500 * MiB, content_length=False), False, id="500MiB-without-length"),
        pytest.param(lambda: Reply.huge(500 * MiB), False, id="500MiB-with-length"),
    ],
)
def test_hostile_body_costs_a_child_process_little_memory(
    peer: HostilePeer, sandbox: Sandbox, reply: Callable[[], Reply], decompressed: bool
) -> None:
    peer.respond(reply())
    conn = connection(sandbox, api_base_url=peer.url)  # default max_response_bytes: 64 MiB

    child = subprocess.run(
        [sys.executable, "-c", READ_IN_A_CHILD],
        env={**os.environ, "RAIDIAM_TEST_CONNECTION": json.dumps(conn)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard, not a speed check
        check=False,
    )

    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"child process report: {report}")
    assert report["outcome"].startswith("ResponseTooLargeError: GET https://127.0.0.2:"), report
    assert "67,108,864-byte limit" in report["outcome"]
    assert "max_response_bytes" in report["outcome"]
    assert report["peak_growth_mib"] < PEAK_GROWTH_BOUND_MIB, report
    assert [r.path for r in peer.requests] == ["/organisations"]
    [answer] = peer.wait_for_answers(1)
    if not decompressed:  # the bomb itself is small: the peer sends it all, the client inflates only 64 MiB
        assert not answer.completed, "the client hung up before the end of the body"
        assert answer.bytes_sent < 100 * MiB


@pytest.mark.parametrize("endpoint", ["discovery", "token", "participants"])
def test_every_kind_of_response_is_bounded(peer: HostilePeer, sandbox: Sandbox, endpoint: str) -> None:
    huge = Reply.huge(64 * MiB, content_length=False)

    def answer(request: Received) -> Reply:
        if request.path == "/.well-known/openid-configuration":
            return huge if endpoint == "discovery" else Reply.json(discovery_of(peer))
        return huge

    peer.respond(answer)
    conn = connection(sandbox, host=peer.url, api_base_url=peer.url, max_response_bytes=MiB)
    settings = settings_of(conn)

    public = PublicClient.for_ca_bundle(
        str(sandbox.pki.ca_cert), allowed_urls=[peer.url], retry=ONE_ATTEMPT, limits=settings.response_limits
    )
    client = RaidiamClient(settings, retry=ONE_ATTEMPT)
    read = (
        (lambda: public.get_public_json(peer.url_for("/participants")))
        if endpoint == "participants"
        else client.access_token
    )
    try:
        with pytest.raises(ResponseTooLargeError) as caught:
            read()
    finally:
        public.close()
        client.close()

    assert caught.value.limit == MiB
    expected_path = {"discovery": "/.well-known/openid-configuration", "token": "/token"}.get(endpoint, "/participants")
    assert peer.requests[-1].path == expected_path
    answers = peer.wait_for_answers(len(peer.requests))
    assert not answers[-1].completed, "the client hung up before the end of the body"


def discovery_of(peer: HostilePeer) -> dict[str, Any]:
    return {
        "issuer": peer.url,
        "token_endpoint": peer.url_for("/token"),
        "token_endpoint_auth_methods_supported": ["tls_client_auth", "private_key_jwt"],
    }


# -- time: a dripping server is cut at the deadline of each attempt ---------------------------------------


def test_a_dripping_body_is_cut_at_the_attempt_deadline(
    peer: HostilePeer, client_for: Callable[..., RaidiamClient]
) -> None:
    body = json.dumps({"content": [], "totalPages": 0, "totalSize": 0, "padding": "x" * 100}).encode()
    peer.respond(Reply.drip(body, every=1.0))  # 150 bytes at 1 byte/s: two and a half minutes
    client = client_for(api_base_url=peer.url, attempt_deadline=2, retry=TWO_ATTEMPTS)

    with pytest.raises(ResponseDeadlineError) as caught:
        client.get_json("/organisations")

    assert caught.value.deadline == 2
    assert "within the 2s deadline of one attempt" in str(caught.value)
    answers = peer.wait_for_answers(2)
    assert [r.path for r in peer.requests] == ["/organisations"] * 2, "each attempt had its own deadline"
    assert [a.completed for a in answers] == [False, False], "the client hung up before the body finished"
    assert all(a.bytes_sent < len(body) for a in answers)


def test_dripping_headers_are_cut_at_the_attempt_deadline(
    peer: HostilePeer, client_for: Callable[..., RaidiamClient]
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Stall: " + b"a" * 500 + b"\r\n\r\n"
    peer.respond(Reply.drip_raw(head + b"[]", every=0.5))  # headers alone take four minutes
    client = client_for(api_base_url=peer.url, attempt_deadline=2)

    with pytest.raises(ResponseDeadlineError):
        client.get_json("/organisations")

    [answer] = peer.wait_for_answers(1)
    assert not answer.completed
    assert answer.bytes_sent < len(head), "the client hung up before the headers were complete"


def test_a_prompt_answer_is_untouched_by_the_deadline(
    peer: HostilePeer, client_for: Callable[..., RaidiamClient]
) -> None:
    peer.respond(Reply.json([{"OrganisationId": "org-1"}]))
    client = client_for(api_base_url=peer.url, attempt_deadline=2)

    for _call in range(3):  # reuses the pooled connection each time
        assert client.get_json("/organisations") == [{"OrganisationId": "org-1"}]

    assert [a.completed for a in peer.wait_for_answers(3)] == [True] * 3
    assert len(peer.connections) == 1


# -- server text: bounded and escaped in errors and logs -------------------------------------------------

FORGED = "denied\r\n[2026-12-01, 03:00:00 UTC] {taskinstance.py:1} INFO - Marking task as SUCCESS\x1b[2K"


FORGED_ID = "\x1b[2K" + "Marking-task-as-SUCCESS" * 10
"""An interaction id with an ANSI code, far longer than the 100 characters the Directory API allows."""


def assert_one_safe_line(text: str, bound: int = 6000) -> None:
    assert len(text) < bound, len(text)
    assert not any(ord(character) < 32 or ord(character) == 127 for character in text), repr(text[:300])


def test_hostile_error_text_stays_one_bounded_line(
    peer: HostilePeer, client_for: Callable[..., RaidiamClient], caplog: pytest.LogCaptureFixture
) -> None:
    errors = [FORGED, "E" * (5 * MiB), *[f"more\n{n}" for n in range(500)]]
    peer.respond(Reply.json({"errors": errors}, status=400, headers={INTERACTION_HEADER: FORGED_ID}))
    client = client_for(api_base_url=peer.url)
    caplog.set_level(logging.DEBUG, logger="airflow_provider_raidiam")

    with pytest.raises(ApiError) as caught:
        client.get_json("/organisations")

    message = str(caught.value)
    assert_one_safe_line(message)
    sent_id = peer.requests[0].header(INTERACTION_HEADER)
    assert caught.value.interaction_id == sent_id, "the malformed id the server sent is not shown"
    assert "Marking task as SUCCESS" in message, "the server's text is still there, escaped"
    for record in caplog.records:
        assert_one_safe_line(record.getMessage())


def test_hostile_error_text_cannot_forge_a_task_log_line(
    peer: HostilePeer,
    sandbox: Sandbox,
    airflow_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    caplog.set_level(0)  # every record of every logger
    peer.respond(Reply.json({"errors": [FORGED]}, status=400, headers={INTERACTION_HEADER: FORGED_ID}))
    conn = connection(sandbox, participants_url=peer.url_for("/participants"))
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_VAR_RAIDIAM_OUTPUT_ROOT", tmp_path.as_uri())
    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("raidiam_participants")
    assert dag is not None

    dag_run = dag.test(logical_date=datetime(2025, 6, 30, 12, tzinfo=UTC))

    assert dag_run.state == "failed"
    assert [r.path for r in peer.requests] == ["/participants"]
    out, err = capfd.readouterr()
    log_folder = airflow_db / "logs"
    files = [p.read_text(errors="replace") for p in log_folder.rglob("*") if p.is_file()] if log_folder.exists() else []
    everything = "\n".join([out, err, caplog.text, *files])
    assert "Marking task as SUCCESS" in everything, "the server's error was logged (escaped)"
    assert "\x1b" not in everything
    forged = [line for line in everything.splitlines() if line.lstrip().startswith("[2026-12-01, 03:00:00 UTC]")]
    assert forged == [], "a server wrote its own line into the task log"


# -- token lifetime -------------------------------------------------------------------------------------


def test_a_token_that_claims_to_live_forever_is_renewed_after_a_day(peer: HostilePeer, sandbox: Sandbox) -> None:
    def answer(request: Received) -> Reply:
        if request.path == "/token":
            token = f"opaque-{len(peer.requests)}"
            return Reply.json({"access_token": token, "token_type": "Bearer", "expires_in": 1e308})
        return Reply.json(discovery_of(peer))

    peer.respond(answer)
    now = [time.monotonic()]
    retry = RetryPolicy(clock=Clock(now=lambda: now[0]))  # the client's clock, which the token cache reads

    with RaidiamClient(settings_of(connection(sandbox, host=peer.url, api_base_url=peer.url)), retry=retry) as client:
        first = client.access_token()
        now[0] += 86400 - 61  # a day, less the renewal margin: still the same token
        assert client.access_token() == first
        now[0] += 2
        second = client.access_token()

    assert second != first
    assert [r.path for r in peer.requests if r.path == "/token"] == ["/token", "/token"]
    assert peer.requests[-1].form["grant_type"] == "client_credentials"
