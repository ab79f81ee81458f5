"""The example DAGs import cleanly and run end to end (``dag.test()``) against the sandbox.

Row counts and ids are checked against the sandbox's own ground truth, and request/token counts against
what its servers saw.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from ground_truth import TRUTH, assert_matches_truth

from raidiam_sandbox import Sandbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
REFERENCE_DATE = datetime(2025, 6, 30, 12, tzinfo=UTC)


def load_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


@pytest.fixture
def dag_env(sandbox: Sandbox, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Connection and output root of the example DAGs, pointing at the sandbox and a tmp dir."""
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_DEFAULT", sandbox.connection_uri_env("tls"))
    monkeypatch.setenv("AIRFLOW_VAR_RAIDIAM_OUTPUT_ROOT", tmp_path.as_uri())
    sandbox.reset_stats()
    return tmp_path


def test_every_example_dag_imports() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors
    assert set(bag.dag_ids) == {
        "raidiam_directory_snapshot",
        "raidiam_directory_changes",
        "raidiam_certificate_expiry",
        "raidiam_participants",
    }


def test_directory_snapshot_writes_every_table_equal_to_ground_truth(sandbox: Sandbox, dag_env: Path) -> None:
    dag = load_dag("raidiam_directory_snapshot")
    run = dag.test(logical_date=REFERENCE_DATE)
    assert run.state == "success"
    truth = sandbox.ground_truth()
    folder = dag_env / "snapshot" / "2025-06-30"
    snapshot_tables = dag.get_task("snapshot").tables
    assert len(snapshot_tables) == 9
    for table in snapshot_tables:
        frame = pd.read_parquet(folder / f"{table}.parquet")
        assert_matches_truth(table, frame, truth)
    assert sorted(path.name for path in folder.iterdir()) == sorted(f"{t}.parquet" for t in snapshot_tables)
    as_stats = sandbox.as_stats()
    assert as_stats["token_requests"] == 1
    assert as_stats["discovery_requests"] == 1


def test_participants_dag_writes_the_tidy_tables(sandbox: Sandbox, dag_env: Path) -> None:
    run = load_dag("raidiam_participants").test(logical_date=REFERENCE_DATE)
    assert run.state == "success"
    truth = sandbox.ground_truth()
    folder = dag_env / "participants" / "2025-06-30"
    written = {path.stem for path in folder.glob("*.parquet")}
    assert {t for t in TRUTH if t.startswith("participants_")} <= written
    for table in written & set(TRUTH):
        assert_matches_truth(table, pd.read_parquet(folder / f"{table}.parquet"), truth)
    assert sandbox.as_stats()["token_requests"] == 0, "the participants list is public"


@pytest.mark.parametrize("fail_when_found", [True, False])
def test_certificate_expiry_dag_finds_the_servers_expiring_certificates(
    sandbox: Sandbox, dag_env: Path, fail_when_found: bool
) -> None:
    dag = load_dag("raidiam_certificate_expiry")
    run = dag.test(logical_date=REFERENCE_DATE, run_conf={"days": 30, "fail_when_found": fail_when_found})
    truth = sandbox.ground_truth()["certificates_expiring_within_30_days"]
    assert truth["count"] > 0, "the seeded data set always has expiring certificates"
    assert run.state == ("failed" if fail_when_found else "success")
    if not fail_when_found:
        from airflow.models.xcom import XComModel
        from airflow.sdk.serde import deserialize
        from airflow.utils.session import create_session

        with create_session() as session:
            query = XComModel.get_many(run_id=run.run_id, dag_ids=dag.dag_id, task_ids="report_expiring")
            frame = deserialize(XComModel.deserialize_value(session.scalars(query).first()))
        assert isinstance(frame, pd.DataFrame)
        assert sorted(frame["kid"]) == truth["ids"]
