"""OpenLineage end to end: ``airflow dags test`` with Airflow's OpenLineage provider writing events to a file.

The ``raidiam_directory_changes`` DAG runs through the real CLI against the sandbox; the OpenLineage
listener (file transport) records what ``get_openlineage_facets_on_complete`` reported. The COMPLETE
event of the ``changes`` task must name the Directory tables read (namespace from the sandbox's hosts)
and every file written, with the catalogue's columns as schema facets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from airflow_provider_raidiam.directory.schema import TABLES
from raidiam_sandbox import Sandbox

pytestmark = pytest.mark.integration

DAG_ID = "raidiam_directory_changes"


def test_the_changes_task_reports_directory_inputs_and_file_outputs(
    sandbox: Sandbox, airflow_db: Path, tmp_path: Path
) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    events_file = tmp_path / "openlineage.jsonl"
    output = tmp_path / "output"
    env = {
        **os.environ,
        "AIRFLOW_CONN_RAIDIAM_DEFAULT": sandbox.connection_uri_env("tls"),
        "AIRFLOW_VAR_RAIDIAM_OUTPUT_ROOT": output.as_uri(),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "raidiam-tests",
    }
    sandbox.reset_stats()
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, "2025-06-30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    (complete,) = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{DAG_ID}.changes"]

    api, public = urlsplit(sandbox.api_base_url), urlsplit(sandbox.participants_url)
    tables = [
        "participants_organisations",
        "organisations",
        "authorisation_servers",
        "api_discovery_endpoints",
        "software_statement_certificates",
    ]
    expected_inputs = {(f"raidiam://{(public if t.startswith('participants_') else api).netloc}", t) for t in tables}
    assert {(d["namespace"], d["name"]) for d in complete["inputs"]} == expected_inputs
    for dataset in complete["inputs"]:
        fields = [f["name"] for f in dataset["facets"]["schema"]["fields"]]
        assert fields == TABLES[dataset["name"]].column_names

    folder = output / "changes" / "2025-06-30"
    expected_outputs = {("file", str(folder / f"{t}{suffix}.parquet")) for t in tables for suffix in ("", "_changes")}
    assert {(d["namespace"], d["name"]) for d in complete["outputs"]} == expected_outputs
    for dataset in complete["outputs"]:
        assert Path(dataset["name"]).exists()
        fields = [(f["name"], f["type"]) for f in dataset["facets"]["schema"]["fields"]]
        table = Path(dataset["name"]).stem.removesuffix("_changes")
        declared = list(TABLES[table].dtypes.items())
        assert fields == (
            declared
            if Path(dataset["name"]).stem == table
            else [("change", "string"), ("changed_columns", "string"), *declared]
        )
