"""Lineage naming and schemas, and the provider working without the OpenLineage provider installed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airflow_provider_raidiam.directory.schema import TABLES
from airflow_provider_raidiam.lineage import columns_of, directory_namespace, file_location, operator_lineage


@pytest.mark.parametrize(
    ("url", "namespace"),
    [
        ("https://matls-api.sandbox.raidiam.io", "raidiam://matls-api.sandbox.raidiam.io"),
        ("https://matls-api.sandbox.raidiam.io:443/", "raidiam://matls-api.sandbox.raidiam.io"),
        ("https://127.0.0.1:8443/participants", "raidiam://127.0.0.1:8443"),
    ],
)
def test_directory_namespace_is_the_host(url: str, namespace: str) -> None:
    assert directory_namespace(url) == namespace


@pytest.mark.parametrize(
    ("uri", "location"),
    [
        ("file:///data/raidiam/organisations.parquet", ("file", "/data/raidiam/organisations.parquet")),
        ("s3://aws_default@bucket/raidiam/organisations.parquet", ("s3://bucket", "raidiam/organisations.parquet")),
        ("gs://bucket/a/b.parquet", ("gs://bucket", "a/b.parquet")),
    ],
)
def test_files_follow_the_openlineage_naming_spec_without_credentials(uri: str, location: tuple[str, str]) -> None:
    assert file_location(uri) == location


def test_schemas_come_from_the_catalogue_and_changes_files_add_two_columns() -> None:
    assert columns_of("organisations") == list(TABLES["organisations"].dtypes.items())
    assert columns_of("organisations_changes")[:3] == [
        ("change", "string"),
        ("changed_columns", "string"),
        ("organisation_id", "string"),
    ]
    assert columns_of("records") == []


def test_operator_lineage_has_the_inputs_outputs_and_schema_facets() -> None:
    pytest.importorskip("airflow.providers.openlineage")
    lineage = operator_lineage(
        {"api_resources": "raidiam://api.example"},
        {"api_resources": "file:///out/api_resources.parquet", "records": "file:///out/records.parquet"},
    )
    (read,) = lineage.inputs
    assert (read.namespace, read.name) == ("raidiam://api.example", "api_resources")
    assert [f.name for f in read.facets["schema"].fields] == TABLES["api_resources"].column_names
    assert [(o.namespace, o.name) for o in lineage.outputs] == [
        ("file", "/out/api_resources.parquet"),
        ("file", "/out/records.parquet"),
    ]
    assert "schema" not in lineage.outputs[1].facets


def test_the_operators_import_without_the_openlineage_provider() -> None:
    # Airflow itself imports every installed provider's get_provider_info: hide what our code would use.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith(('openlineage', 'airflow.providers.openlineage.extractors')):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from airflow_provider_raidiam.operators.changes import RaidiamDirectoryChangesOperator\n"
        "from airflow_provider_raidiam.operators.directory import RaidiamDirectoryOperator\n"
        "RaidiamDirectoryChangesOperator(task_id='c', tables=['organisations'], snapshot_root='file:///tmp/x')\n"
        "assert not [m for m in sys.modules if m.startswith('openlineage')]\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert result.stdout.strip().endswith("ok"), result.stderr[-3000:]
