"""What a user of each supported Airflow line relies on, checked on that line.

``scripts/matrix.sh`` runs this module in one venv per Airflow line (installed with plain pip from the
built wheels and ``requirements/airflow-3.X.txt``), once with each pandas major; the whole suite runs
it on the newest line. It checks that the provider imports and registers, that the UI's connection
endpoint draws the ``raidiam`` form, that Airflow's own ``connections test`` passes against the sandbox,
and that an example DAG hands DataFrames from task to task through XCom.

The Airflow commands run in subprocesses with their own ``AIRFLOW_HOME``, so the test process needs
no metadata database, and the same code serves every Airflow line.
"""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

import airflow_provider_raidiam
from airflow_provider_raidiam.get_provider_info import get_provider_info
from airflow_provider_raidiam.version_compat import AIRFLOW_V_3_3_PLUS, PANDAS_2_DATAFRAME, xcom_serde

if TYPE_CHECKING:
    from raidiam_sandbox import Sandbox

DAGS = Path(__file__).resolve().parents[2] / "dags"
CONNECTION_TYPE: dict[str, Any] = get_provider_info()["connection-types"][0]
CONN_FIELDS: dict[str, Any] = CONNECTION_TYPE["conn-fields"]
SECTIONS = ("hooks", "operators", "sensors", "triggers")
EXPIRY_DAG = "raidiam_certificate_expiry"
REFERENCE_DATE = "2025-06-30T12:00:00+00:00"  # the sandbox data set's reference date

pytestmark = pytest.mark.integration


def test_this_is_the_airflow_and_pandas_the_matrix_asked_for() -> None:
    """The cell really runs what it is named after, and the provider from its wheel."""
    import airflow

    expected_airflow = os.environ.get("RAIDIAM_MATRIX_AIRFLOW")
    if not expected_airflow:
        pytest.skip("run by scripts/matrix.sh only (RAIDIAM_MATRIX_AIRFLOW is not set)")
    assert airflow.__version__ == expected_airflow
    assert pd.__version__ == os.environ["RAIDIAM_MATRIX_PANDAS"]
    assert "site-packages" in Path(airflow_provider_raidiam.__file__).parts, "the repository's source was imported"


def test_every_module_of_the_provider_info_imports() -> None:
    info = get_provider_info()
    modules = [module for section in SECTIONS for item in info.get(section, []) for module in item["python-modules"]]

    assert {"hooks", "operators"} <= {section for section in SECTIONS if info.get(section)}
    for module in modules:
        importlib.import_module(module)


def test_providers_manager_registers_the_hook_with_its_form() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()  # type: ignore[no-untyped-call]  # unannotated in Airflow
    provider = manager.providers["airflow-provider-raidiam"]
    hook = manager.hooks["raidiam"]

    assert provider.version == airflow_provider_raidiam.__version__
    assert hook is not None, "the providers manager could not import RaidiamHook (see its log above)"
    assert hook.hook_class_name == CONNECTION_TYPE["hook-class-name"]
    assert hook.connection_testable
    widgets = {key.removeprefix("extra__raidiam__") for key in manager.connection_form_widgets if "raidiam" in key}
    assert widgets == set(CONN_FIELDS)
    behaviour = manager.field_behaviours["raidiam"]
    assert behaviour["relabeling"] == CONNECTION_TYPE["ui-field-behaviour"]["relabeling"]
    assert set(behaviour["hidden_fields"]) == set(CONNECTION_TYPE["ui-field-behaviour"]["hidden-fields"])


UI_HOOK_META = """
import importlib
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
[meta] = [entry for entry in HookMetaService.hook_meta_data() if entry.connection_type == "raidiam"]
print(json.dumps(meta.model_dump(), default=str))
"""


def test_ui_connection_endpoint_draws_the_raidiam_form() -> None:
    """What ``GET /ui/connections/hook_meta`` returns for ``raidiam``, from a fresh process like the API server's."""
    result = subprocess.run([sys.executable, "-c", UI_HOOK_META], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    meta = json.loads(result.stdout.strip().splitlines()[-1])
    extra_fields, standard = meta["extra_fields"], meta["standard_fields"]

    assert extra_fields, f"the raidiam form has no extra fields on this Airflow:\n{result.stderr[-4000:]}"
    assert list(extra_fields) == list(CONN_FIELDS)
    for name, spec in CONN_FIELDS.items():
        schema = extra_fields[name]["schema"]
        assert schema["title"] == spec["label"], name
        assert (schema.get("format") == "password") == (spec["schema"].get("format") == "password"), name
        assert schema.get("enum") == spec["schema"].get("enum"), name
    assert standard["host"]["title"] == "Issuer URL"
    assert standard["login"]["title"] == "Client ID"
    assert standard["port"]["hidden"] is True


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of the Airflow commands: their own home, its SQLite database migrated and the DAGs parsed.

    Parsing registers the DAGs' assets, as the DAG processor of a deployment does (Airflow 3.0 refuses to
    run a task whose outlets are not registered).
    """
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    airflow(env, "db", "migrate")
    airflow(env, "dags", "reserialize")
    return env


def airflow(env: dict[str, str], *args: str) -> str:
    """Run the ``airflow`` CLI of this interpreter; return its output, or fail the test with it."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"airflow {' '.join(args)} exited {result.returncode}:\n{output[-6000:]}"
    return output


@pytest.fixture
def sandbox_env(sandbox: Sandbox, airflow_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The Airflow environment with ``raidiam_default`` pointing at the sandbox, counters zeroed."""
    sandbox.reset_stats()
    yield {**airflow_env, "AIRFLOW_CONN_RAIDIAM_DEFAULT": sandbox.connection_uri_env("tls")}
    sandbox.reset_stats()


def test_airflow_connections_test_passes_against_the_sandbox(sandbox: Sandbox, sandbox_env: dict[str, str]) -> None:
    output = airflow(sandbox_env, "connections", "test", "raidiam_default")

    assert "success" in output.lower(), output[-3000:]
    assert sandbox.as_stats()["token_requests"] == 1, "the test asked for one token"
    assert sandbox.api_stats()["requests"] >= 1, "the test called the Directory API"


def xcom_values(home: Path, dag_id: str) -> dict[str, Any]:
    """``{task_id: value}`` of the return values of ``dag_id``'s runs, read from the SQLite database."""
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT task_id, value FROM xcom WHERE dag_id = ? AND key = 'return_value'", (dag_id,))
        return {task_id: json.loads(value) for task_id, value in rows}


def test_example_dag_hands_dataframes_through_xcom(sandbox: Sandbox, sandbox_env: dict[str, str]) -> None:
    """``raidiam_certificate_expiry``: the operator's dict of DataFrames, then a task's DataFrame."""
    airflow(
        sandbox_env,
        "dags",
        "test",
        EXPIRY_DAG,
        REFERENCE_DATE,
        "--conf",
        json.dumps({"days": 30, "fail_when_found": False}),
    )

    stored = xcom_values(Path(sandbox_env["AIRFLOW_HOME"]), EXPIRY_DAG)
    serde = xcom_serde()
    certificates = serde.deserialize(stored["read_certificates"])
    expiring = serde.deserialize(stored["report_expiring"])
    truth = sandbox.ground_truth()

    assert set(certificates) == {"software_statement_certificates", "organisation_certificates"}
    assert all(isinstance(frame, pd.DataFrame) and len(frame) for frame in certificates.values())
    assert isinstance(expiring, pd.DataFrame)
    assert sorted(expiring["kid"]) == truth["certificates_expiring_within_30_days"]["ids"]
    if not AIRFLOW_V_3_3_PLUS:  # written under the class name every Airflow 3 reader registers
        assert stored["report_expiring"]["__classname__"] == PANDAS_2_DATAFRAME
    assert sandbox.as_stats()["token_requests"] == 1
