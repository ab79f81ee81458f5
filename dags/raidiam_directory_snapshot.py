"""Daily snapshot of the Raidiam Directory into parquet files, with a row-count summary.

One task reads every table with one access token and one mTLS connection pool (tables that share API
calls, such as authorisation servers and their API resources, are fetched once), and writes the files
atomically under ``<raidiam_output_root>/snapshot/<ds>/``. Set the Airflow Variable
``raidiam_output_root`` to any object-storage URI (``s3://...``, ``gs://...``, ``file:///...``).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_raidiam.directory.catalogue import SNAPSHOT_TABLES
from airflow_provider_raidiam.operators.directory import RaidiamDirectoryOperator

with DAG(
    dag_id="raidiam_directory_snapshot",
    description="Daily parquet snapshot of the Raidiam Directory",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["raidiam", "example"],
):
    snapshot = RaidiamDirectoryOperator(
        task_id="snapshot",
        tables=list(SNAPSHOT_TABLES),
        output_uri="{{ var.value.get('raidiam_output_root', 'file:///tmp/raidiam') }}/snapshot/{{ ds }}",
    )

    @task
    def summarise(result: dict[str, Any]) -> dict[str, int]:
        """Log one line per table (rows and file) and return the row counts."""
        counts = {table: info["rows"] for table, info in result["tables"].items()}
        width = max(map(len, counts))
        lines = [f"{table:<{width}} {info['rows']:>9} rows  {info['uri']}" for table, info in result["tables"].items()]
        print("Raidiam Directory snapshot:\n" + "\n".join(lines))
        return counts

    summarise(snapshot.output)
