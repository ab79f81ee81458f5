"""The public participants list (no token, no client certificate) into tidy tables.

Uses the ``participants_url`` of the ``raidiam_default`` connection (for example
``https://data.directory.openbankingbrasil.org.br/participants``) and writes one parquet file per table
under ``<raidiam_output_root>/participants/<ds>/``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_raidiam.operators.directory import RaidiamParticipantsOperator

with DAG(
    dag_id="raidiam_participants",
    description="Public Raidiam participants list into tidy tables",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["raidiam", "example"],
):
    RaidiamParticipantsOperator(
        task_id="participants",
        raidiam_conn_id="raidiam_default",
        output_uri="{{ var.value.get('raidiam_output_root', 'file:///tmp/raidiam') }}/participants/{{ ds }}",
    )
