"""The change feed end to end: the emulator changes its data, the ``raidiam_directory_changes`` DAG reports it.

What the DAG writes is compared with what the emulator says it changed (its own bookkeeping, computed
from its records before and after the change, not from our tables): ids added, removed and changed per
table, exactly. A run with nothing changed ends skipped and emits no asset event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from ground_truth import TRUTH

from raidiam_sandbox import Sandbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAY_1 = datetime(2025, 6, 30, 12, tzinfo=UTC)
EDITS = {
    "seed": 11,
    "add_organisations": 3,
    "remove_organisations": 2,
    "change_endpoints": 5,
    "remove_endpoints": 4,
    "revoke_certificates": 6,
}
# Per table of the DAG: (the emulator's ground-truth key, the table's id column)
FEED_TRUTH = {
    table: TRUTH[table]
    for table in (
        "participants_organisations",
        "organisations",
        "authorisation_servers",
        "api_discovery_endpoints",
        "software_statement_certificates",
    )
}


def load_changes_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "raidiam_directory_changes.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("raidiam_directory_changes")


@pytest.fixture
def changing_sandbox(
    sandbox: Sandbox, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sandbox]:
    """The session sandbox with the DAG's connection and output root set; its data restored afterwards."""
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_DEFAULT", sandbox.connection_uri_env("tls"))
    monkeypatch.setenv("AIRFLOW_VAR_RAIDIAM_OUTPUT_ROOT", tmp_path.as_uri())
    sandbox.reset_stats()
    yield sandbox
    sandbox.reset_stats()  # also restores the original data set


def changes_of(folder: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(folder / f"{table}_changes.parquet")


def ids(frame: pd.DataFrame, change: str, column: str) -> list[str]:
    return sorted(frame.loc[frame["change"] == change, column].astype(str))


def assert_feed_equals(folder: Path, edits: dict[str, Any]) -> None:
    """The change files in ``folder`` list exactly the ids the emulator says it added, removed and changed."""
    for table, (key, column) in FEED_TRUTH.items():
        frame = changes_of(folder, table)
        for change in ("added", "removed", "changed"):
            assert ids(frame, change, column) == edits[change].get(key, []), f"{table}: {change} rows"


def task_states(run: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def change_events(dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    """The asset events the DAG run emitted, by asset URI."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
        ).all()
        return {event.uri: dict(event.extra) for event in events}


def read_xcom(dag_id: str, run_id: str, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.sdk.serde import deserialize
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=run_id, dag_ids=dag_id, task_ids=task_id)
        return deserialize(XComModel.deserialize_value(session.scalars(query).first()))


def test_change_feed_equals_the_emulators_ground_truth(changing_sandbox: Sandbox, tmp_path: Path) -> None:
    dag = load_changes_dag()
    first = dag.test(logical_date=DAY_1)
    assert first.state == "success"
    truth = changing_sandbox.ground_truth()
    day_1 = tmp_path / "changes" / "2025-06-30"
    for table, (key, column) in FEED_TRUTH.items():
        assert ids(changes_of(day_1, table), "added", column) == truth[key]["ids"], f"{table}: first run adds all"

    edits = changing_sandbox.change_data(**EDITS)
    assert len(edits["changed"]["software_statement_certificates"]) == EDITS["revoke_certificates"]
    second = dag.test(logical_date=DAY_1 + timedelta(days=1))
    assert second.state == "success"
    day_2 = tmp_path / "changes" / "2025-07-01"
    assert_feed_equals(day_2, edits)
    endpoints = changes_of(day_2, "api_discovery_endpoints")
    moved = endpoints[endpoints.change == "changed"]
    assert set(moved.changed_columns) == {json.dumps(["api_endpoint"])}
    assert moved.api_endpoint.str.contains("/moved-").all(), "changed rows carry the current values"

    report = read_xcom(dag.dag_id, second.run_id, "report")
    assert report["revoked_certificates"] == edits["changed"]["software_statement_certificates"]
    assert report["new_participants"] == edits["added"]["participants"]
    assert len(report["removed_api_endpoints"]) == len(edits["removed"]["api_discovery_endpoints"])
    events = change_events(dag.dag_id, second.run_id)
    changed_tables = {t for t, (k, _c) in FEED_TRUTH.items() if any(k in edits[kind] for kind in edits)}
    assert set(events) == {f"raidiam://raidiam-default/{t}_changes" for t in changed_tables}
    assert events["raidiam://raidiam-default/organisations_changes"]["added"] == EDITS["add_organisations"]

    third = dag.test(logical_date=DAY_1 + timedelta(days=2))
    assert task_states(third) == {"changes": "skipped", "report": "skipped"}
    assert change_events(dag.dag_id, third.run_id) == {}
    summary = read_xcom(dag.dag_id, third.run_id, "changes")
    assert summary["changed"] is False
    assert summary["previous_uri"].endswith("/changes/2025-07-01")
    for table in FEED_TRUTH:
        assert changes_of(tmp_path / "changes" / "2025-07-02", table).empty


@pytest.fixture(scope="module")
def demo_scale_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox of its own at the demo's scale: 2,000 organisations."""
    with Sandbox(tmp_path_factory.mktemp("sandbox-2000"), organisations=2000, seed=3) as running:
        yield running


@pytest.mark.timeout(3600)
def test_change_feed_at_demo_scale(
    demo_scale_sandbox: Sandbox, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = demo_scale_sandbox
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_DEFAULT", sandbox.connection_uri_env("tls"))
    monkeypatch.setenv("AIRFLOW_VAR_RAIDIAM_OUTPUT_ROOT", tmp_path.as_uri())
    dag = load_changes_dag()
    assert dag.test(logical_date=DAY_1).state == "success"
    edits = sandbox.change_data(
        seed=5,
        add_organisations=20,
        remove_organisations=15,
        change_endpoints=40,
        remove_endpoints=30,
        revoke_certificates=25,
    )
    assert sandbox.ground_truth()["organisations"]["count"] == 2000 + 20 - 15
    second = dag.test(logical_date=DAY_1 + timedelta(days=1))
    assert second.state == "success"
    assert_feed_equals(tmp_path / "changes" / "2025-07-01", edits)
