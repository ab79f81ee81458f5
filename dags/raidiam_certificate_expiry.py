"""Find Directory certificates that expire within N days of the run, report them, and fail (or not).

Reads software-statement and organisation certificates, keeps those expiring between the run's logical
date and ``days`` later (already-expired ones are reported separately), logs them and returns them as a
table. With ``fail_when_found`` (default) the run fails when any are found, so alerting on task failure
(email, Slack, on_failure_callback) turns it into an alert.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pendulum
from airflow.exceptions import AirflowException
from airflow.sdk import DAG, Param, task

from airflow_provider_raidiam.operators.directory import RaidiamDirectoryOperator

with DAG(
    dag_id="raidiam_certificate_expiry",
    description="Certificates expiring soon in the Raidiam Directory",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "days": Param(30, type="integer", minimum=1, description="Report certificates expiring within this window"),
        "fail_when_found": Param(True, type="boolean", description="Fail the run when any are found"),
    },
    tags=["raidiam", "example"],
):
    certificates = RaidiamDirectoryOperator(
        task_id="read_certificates",
        tables=["software_statement_certificates", "organisation_certificates"],
    )

    @task
    def report_expiring(
        frames: dict[str, pd.DataFrame], params: dict[str, Any], logical_date: Any = None
    ) -> pd.DataFrame:
        """Return the certificates expiring within ``days`` of the logical date; fail if configured."""
        now = pd.Timestamp(logical_date).tz_convert("UTC")
        horizon = now + pd.Timedelta(days=int(params["days"]))
        parts = [frame.assign(source=table) for table, frame in frames.items()]
        certs = pd.concat(parts, ignore_index=True)
        expiring = certs[(certs["expiry_date_time"] >= now) & (certs["expiry_date_time"] < horizon)]
        expired = certs[certs["expiry_date_time"] < now]
        expiring = expiring.sort_values(["expiry_date_time", "source"]).reset_index(drop=True)
        print(f"{len(expiring)} certificate(s) expire before {horizon:%Y-%m-%d}; {len(expired)} already expired.")
        for row in expiring.itertuples():
            print(f"  {row.expiry_date_time:%Y-%m-%d}  {row.source}  org={row.organisation_id}  kid={row.kid}")
        if len(expiring) and params["fail_when_found"]:
            raise AirflowException(f"{len(expiring)} certificate(s) expire within {params['days']} days.")
        return expiring

    report_expiring(certificates.output)
