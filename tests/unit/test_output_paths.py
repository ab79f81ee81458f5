"""Output URIs and table file names that could write outside their folder are refused before any write."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_raidiam.exceptions import ConfigurationError
from airflow_provider_raidiam.operators.directory import RaidiamApiOperator
from airflow_provider_raidiam.operators.output import check_output_uri, check_table_file_name, write_tables

ESCAPING_URIS = {
    "dot-dot": "{base}/../escaped",
    "dot-dot-at-the-end": "{base}/..",
    "encoded": "{base}/%2e%2e/escaped",
    "encoded-upper": "{base}/%2E%2E/escaped",
    "double-encoded": "{base}/%252e%252e/escaped",
    "encoded-slash": "{base}/..%2fescaped",
    "backslash": "{base}\\..\\escaped",
    "encoded-backslash": "{base}/%5c..%5cescaped",
    "query": "{base}?x=/../escaped",
    "fragment": "{base}#/../escaped",
    "newline": "{base}/x\n/escaped",
    "encoded-nul": "{base}/x%00",
    "host-dot-dot": "file://../escaped",
    "userinfo-dot-dot": "s3://aws_default@../escaped",
    "relative": "out/../../escaped",
}


@pytest.mark.parametrize("template", ESCAPING_URIS.values(), ids=ESCAPING_URIS.keys())
def test_an_output_uri_that_could_leave_its_folder_is_refused(template: str, tmp_path: Path) -> None:
    uri = template.format(base=(tmp_path / "out").as_uri())
    with pytest.raises(ConfigurationError, match="could write outside its folder"):
        check_output_uri(uri)
    with pytest.raises(ConfigurationError, match="could write outside its folder"):
        write_tables({"records": pd.DataFrame({"a": [1]})}, uri, "csv")
    assert list(tmp_path.rglob("*")) == []  # not even the folder was created


@pytest.mark.parametrize(
    "uri",
    [
        "file:///data/raidiam",
        "/data/raidiam/2025-01-01",
        "s3://aws_default@bucket/raidiam/2025-01-01T00:00:00+00:00",
        "gs://bucket/a.b/..c/d..",
        "file:///data/raidiam/%20space",
    ],
)
def test_ordinary_output_uris_pass(uri: str) -> None:
    assert check_output_uri(uri) == uri


@pytest.mark.parametrize("uri", ["", "  ", None, 3])
def test_an_output_uri_must_be_text(uri: object) -> None:
    with pytest.raises(ConfigurationError, match="output_uri must be a folder URI"):
        check_output_uri(uri)


BAD_NAMES = ["../escaped", "/etc/passwd", "a/b", "a\\b", "..", ".hidden", "%2e%2e", "a b", "", "x" * 101, "é", 5]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_table_name_must_be_a_plain_file_name(name: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be a file name: use 1 to 100 letters, digits"):
        check_table_file_name(name)
    if isinstance(name, str):
        with pytest.raises(ConfigurationError, match="cannot be a file name"):
            write_tables({name: pd.DataFrame({"a": [1]})}, (tmp_path / "out").as_uri(), "csv")
    assert list(tmp_path.rglob("*")) == []


@pytest.mark.parametrize("name", ["records", "Clients_2025-01", "9"])
def test_plain_table_names_pass(name: str) -> None:
    assert check_table_file_name(name) == name


def test_the_api_operator_refuses_a_table_name_before_reading(tmp_path: Path) -> None:
    # The connection does not exist: reaching the hook would raise another error than this one.
    operator = RaidiamApiOperator(
        task_id="t",
        endpoint="/organisations",
        raidiam_conn_id="no_such_connection",
        table_name="../../escaped",
        output_uri=(tmp_path / "out").as_uri(),
    )
    with pytest.raises(ConfigurationError, match=r"table_name '\.\./\.\./escaped' cannot be a file name"):
        operator.execute(context={})  # type: ignore[arg-type]
    assert list(tmp_path.rglob("*")) == []


def test_the_api_operator_refuses_an_output_uri_before_reading(tmp_path: Path) -> None:
    operator = RaidiamApiOperator(
        task_id="t",
        endpoint="/organisations",
        raidiam_conn_id="no_such_connection",
        output_uri=(tmp_path / "out").as_uri() + "/%2e%2e/escaped",
    )
    with pytest.raises(ConfigurationError, match="could write outside its folder"):
        operator.execute(context={})  # type: ignore[arg-type]
    assert list(tmp_path.rglob("*")) == []
