"""Daily: what changed in the Raidiam Directory since yesterday, written as change files and reported.

One task reads the tables, compares them with the previous run's snapshot and writes, under
``<raidiam_output_root>/changes/<ds>/``, each table's snapshot and ``<table>_changes.parquet`` (rows added,
removed or changed). The report lists new participants, removed API endpoints and certificates revoked
since the previous run. When nothing changed the ``changes`` task ends *skipped*, so the report is skipped
too and no asset event is emitted: a DAG scheduled on
``changes_asset("raidiam_default", "participants_organisations")`` runs only when participants changed.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pendulum
from airflow.sdk import DAG, ObjectStoragePath, task

from airflow_provider_raidiam.operators.changes import RaidiamDirectoryChangesOperator

CHANGE_TABLES = [
    "participants_organisations",
    "organisations",
    "authorisation_servers",
    "api_discovery_endpoints",
    "software_statement_certificates",
]

with DAG(
    dag_id="raidiam_directory_changes",
    description="Daily change feed of the Raidiam Directory: new participants, removed endpoints, revoked certificates",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["raidiam", "example"],
):
    changes = RaidiamDirectoryChangesOperator(
        task_id="changes",
        tables=CHANGE_TABLES,
        snapshot_root="{{ var.value.get('raidiam_output_root', 'file:///tmp/raidiam') }}/changes",
    )

    @task
    def report(summary: dict[str, Any]) -> dict[str, list[str]]:
        """Log and return new participants, removed API endpoints and revoked certificates."""

        def read(table: str) -> pd.DataFrame:
            with ObjectStoragePath(summary["tables"][table]["changes_uri"]).open("rb") as handle:
                return pd.read_parquet(handle)

        participants = read("participants_organisations")
        endpoints = read("api_discovery_endpoints")
        certificates = read("software_statement_certificates")
        changed = certificates[certificates.change == "changed"]
        status_changed = changed.changed_columns.map(lambda names: "status" in json.loads(names)).astype(bool)
        revoked = changed[status_changed & (changed.status == "Revoked")]
        found = {
            "new_participants": sorted(participants.organisation_id[participants.change == "added"]),
            "removed_api_endpoints": sorted(endpoints.api_endpoint[endpoints.change == "removed"]),
            "revoked_certificates": sorted(revoked.kid),
        }
        print(f"Changes since {summary['previous_uri'] or 'the first run'}:")
        for what, items in found.items():
            print(f"  {what.replace('_', ' ')}: {len(items)}")
            for item in items:
                print(f"    {item}")
        return found

    report(changes.output)
