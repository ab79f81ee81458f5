"""Change-driven scheduling against the sandbox: the participants trigger over real TLS, then in a real triggerer.

1. The trigger's loop on this test's event loop, polling the emulator's ``/participants`` over TLS: no
   event while nothing changes, exactly one per change, one request per poll and ``304 Not Modified``
   answers once the server's ``ETag`` is known, all counted by the server. The digests in the event are
   checked against the bodies the test reads itself.
2. ``airflow dag-processor``, ``airflow scheduler`` and ``airflow triggerer`` in a private home: a DAG
   scheduled on an Asset whose ``AssetWatcher`` uses the trigger (through the ``raidiam`` connection) gets
   no run while the list is unchanged, and exactly one ``asset_triggered`` run after it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import AsyncGenerator, Callable, Iterator

import pytest
import requests
from processes import Airflow, migrate, tail

from airflow_provider_raidiam.triggers.participants import RaidiamParticipantsTrigger
from raidiam_sandbox import Sandbox

pytestmark = pytest.mark.integration

WAIT = 240.0  # how long a condition may take before the test fails (only a guard against hanging)
DAG_ID = "raidiam_on_participants_change"
WATCHER_DAG = f'''
import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, AssetWatcher

from airflow_provider_raidiam.triggers.participants import RaidiamParticipantsTrigger

participants = Asset(
    uri="raidiam://raidiam-default/participants",
    name="raidiam_participants",
    watchers=[
        AssetWatcher(
            name="raidiam_participants_watcher",
            trigger=RaidiamParticipantsTrigger(raidiam_conn_id="raidiam_default", poll_interval=1.0),
        )
    ],
)

with DAG("{DAG_ID}", schedule=[participants], start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False):
    EmptyOperator(task_id="react")
'''


def participants_requests(sandbox: Sandbox) -> tuple[int, int]:
    """(requests of /participants, of them answered 304) as the emulator counted them."""
    stats = sandbox.api_stats()
    return stats["requests_by_route"].get("/participants", 0), stats["requests_by_status"].get("304", 0)


def wait_for(condition: Callable[[], bool], what: str, on_timeout: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting for {what} after {WAIT:.0f} s\n{on_timeout()}")
        time.sleep(0.2)


def body_digest(sandbox: Sandbox) -> str:
    response = requests.get(sandbox.participants_url, verify=str(sandbox.pki.ca_cert), timeout=30)
    response.raise_for_status()
    return hashlib.sha256(response.content).hexdigest()


@pytest.fixture
def restored_sandbox(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session sandbox with zeroed counters; its original data restored afterwards."""
    sandbox.reset_stats()
    yield sandbox
    sandbox.reset_stats()


def test_the_trigger_fires_once_per_change_with_one_request_per_poll(restored_sandbox: Sandbox) -> None:
    sandbox = restored_sandbox
    before = body_digest(sandbox)
    sandbox.reset_stats()
    trigger = RaidiamParticipantsTrigger(
        participants_url=sandbox.participants_url, ca_bundle=str(sandbox.pki.ca_cert), poll_interval=0.05
    )

    async def scenario() -> tuple[dict[str, object], tuple[int, int], tuple[int, int]]:
        events = trigger.run()
        assert isinstance(events, AsyncGenerator)  # run() is an async generator: it can be closed
        first = asyncio.ensure_future(anext(events))
        counts = await asyncio.to_thread(participants_requests, sandbox)
        while counts[0] < 6:  # the baseline read and at least five unchanged polls
            assert not first.done(), f"fired without a change: {first.result()}"
            await asyncio.sleep(0.05)
            counts = await asyncio.to_thread(participants_requests, sandbox)
        assert not first.done(), "fired without a change"
        unchanged = counts
        await asyncio.to_thread(sandbox.change_data, add_organisations=1)
        event = (await first).payload
        after_change = await asyncio.to_thread(participants_requests, sandbox)
        second = asyncio.ensure_future(anext(events))
        while counts[0] < after_change[0] + 5:
            await asyncio.sleep(0.05)
            counts = await asyncio.to_thread(participants_requests, sandbox)
        assert not second.done(), "fired twice for one change"
        second.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await second
        await events.aclose()
        return event, unchanged, after_change

    event, (polls, not_modified), (polls_at_event, not_modified_at_event) = asyncio.run(scenario())
    assert event["previous_sha256"] == before
    assert event["sha256"] == body_digest(sandbox)
    assert event["participants_url"] == sandbox.participants_url
    # Each poll is one request; once the ETag is known, an unchanged list costs a bodiless 304.
    assert not_modified == polls - 1, "the baseline read is the only full body before the change"
    assert not_modified_at_event == polls_at_event - 2, "one more full body: the changed list"


@pytest.fixture
def triggerer_airflow(restored_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    """dag-processor, scheduler and triggerer on a private SQLite home whose DAGs folder holds the watcher DAG."""
    home = tmp_path_factory.mktemp("airflow-triggerer-home")
    dags = home / "dags"
    dags.mkdir()
    (dags / "watcher.py").write_text(WATCHER_DAG, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "1",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW_CONN_RAIDIAM_DEFAULT": restored_sandbox.connection_uri_env("tls", pem_text=True),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    migrate(env, home)
    deployment = Airflow(url="", home=home, output=home, env=env)
    try:
        deployment.spawn("dag-processor", "dag-processor")
        deployment.spawn("scheduler", "scheduler", "--skip-serve-logs")
        deployment.spawn("triggerer", "triggerer")
        yield deployment
    finally:
        deployment.stop()


def query(airflow: Airflow, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{airflow.home / 'airflow.db'}?mode=ro", uri=True, timeout=30) as db:
        return db.execute(sql, args).fetchall()


def runs(airflow: Airflow) -> list[tuple[object, ...]]:
    return query(airflow, "SELECT run_type FROM dag_run WHERE dag_id = ?", DAG_ID)


def test_a_real_triggerer_runs_the_dag_when_the_participants_list_changes(
    triggerer_airflow: Airflow, restored_sandbox: Sandbox
) -> None:
    airflow, sandbox = triggerer_airflow, restored_sandbox

    def logs() -> str:
        return "\n".join(f"--- {name}\n{tail(airflow.log_path(name))}" for name in airflow.processes)

    def polled(count: int) -> Callable[[], bool]:
        def check() -> bool:
            airflow.check_alive()
            return participants_requests(sandbox)[0] >= count

        return check

    def parsed_or_failed() -> bool:
        failures = query(airflow, "SELECT stacktrace FROM import_error")
        assert not failures, f"the watcher DAG does not import: {failures}"
        return bool(query(airflow, "SELECT dag_id FROM dag WHERE dag_id = ?", DAG_ID))

    wait_for(parsed_or_failed, "the DAG processor to store the DAG", logs)
    wait_for(polled(4), "the triggerer to poll the participants list", logs)
    assert runs(airflow) == [], "no run while the participants list is unchanged"
    polls = participants_requests(sandbox)[0]

    sandbox.change_data(add_organisations=1)

    def run_created() -> bool:
        airflow.check_alive()
        return bool(runs(airflow))

    wait_for(run_created, "a DAG run after the change", logs)
    wait_for(polled(participants_requests(sandbox)[0] + 3), "three more polls", logs)
    assert runs(airflow) == [("asset_triggered",)], "exactly one run for one change"
    (event_extra,) = query(
        airflow,
        "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = ?",
        "raidiam_participants",
    )
    assert sandbox.participants_url in str(event_extra)
    assert participants_requests(sandbox)[0] > polls
    assert "Trigger fired event" in airflow.log_path("triggerer").read_text(errors="replace")
