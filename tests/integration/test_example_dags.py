"""The example DAGs import cleanly and run end to end (``dag.test()``) against the sandbox.

Row counts and ids are checked against the sandbox's own ground truth, and request/token counts against
what its servers saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_provider_raidiam.sandbox import Sandbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
REFERENCE_DATE = datetime(2025, 6, 30, 12, tzinfo=UTC)

# table -> (ground-truth key, id column); None compares counts only (the table has no natural id).
TRUTH: dict[str, tuple[str, str | None]] = {
    "organisations": ("organisations", "organisation_id"),
    "authorisation_servers": ("authorisation_servers", "authorisation_server_id"),
    "api_resources": ("api_resources", "api_resource_id"),
    "api_discovery_endpoints": ("api_discovery_endpoints", "api_discovery_id"),
    "authorisation_server_certifications": ("authorisation_server_certifications", "certification_id"),
    "software_statements": ("software_statements", "software_statement_id"),
    "software_statement_certifications": ("software_statement_certifications", "certification_id"),
    "software_statement_certificates": ("software_statement_certificates", "kid"),
    "organisation_certificates": ("organisation_certificates", "kid"),
    "participants_organisations": ("participants", "organisation_id"),
    "participants_authorisation_servers": ("participant_authorisation_servers", "authorisation_server_id"),
    "participants_api_resources": ("participant_api_resources", "api_resource_id"),
    "participants_api_discovery_endpoints": ("participant_api_discovery_endpoints", "api_discovery_id"),
    "participants_authorisation_server_certifications": (
        "participant_authorisation_server_certifications",
        "certification_id",
    ),
    "participants_org_domain_claims": ("participant_org_domain_claims", None),
    "participants_org_domain_role_claims": ("participant_org_domain_role_claims", None),
}


def assert_matches_truth(table: str, frame: pd.DataFrame, truth: dict[str, Any]) -> None:
    key, id_column = TRUTH[table]
    expected = truth[key]
    assert len(frame) == expected["count"], f"{table}: {len(frame)} rows, server has {expected['count']}"
    if id_column is not None:
        assert sorted(frame[id_column].astype(str)) == expected["ids"], f"{table}: ids differ from the server's"


def load_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


@pytest.fixture
def dag_env(sandbox: Sandbox, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Connection and output root of the example DAGs, pointing at the sandbox and a tmp dir."""
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_DEFAULT", sandbox.connection_uri_env("tls"))
    monkeypatch.setenv("AIRFLOW_VAR_RAIDIAM_OUTPUT_ROOT", tmp_path.as_uri())
    sandbox.reset_stats()
    return tmp_path


def test_every_example_dag_imports() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors
    assert set(bag.dag_ids) == {"raidiam_directory_snapshot", "raidiam_certificate_expiry", "raidiam_participants"}


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
        assert sorted(frame["kid"]) == truth["ids"]
