"""The snapshot example DAG run by a real Airflow: scheduler (LocalExecutor), DAG processor and API server.

Not ``dag.test()``: the module starts, in a private ``AIRFLOW_HOME`` with its own SQLite database
(``airflow db migrate``), the three long-running Airflow 3 processes as a deployment would::

    airflow api-server --host 127.0.0.1 --port <free port> -w 1
    airflow dag-processor
    airflow scheduler --skip-serve-logs      # [core] executor = LocalExecutor

with the repository's ``dags/`` as DAGS_FOLDER, the sandbox connection (PEM text, as
``docs/executors.md`` recommends for workers) in ``AIRFLOW_CONN_RAIDIAM_DEFAULT`` and a tmp directory as
the ``raidiam_output_root`` Variable. The tasks run in LocalExecutor worker processes, which talk to the
API server's Execution API with JWTs signed by the shared ``[api_auth] jwt_secret``.

Through the REST API it unpauses and triggers ``raidiam_directory_snapshot`` for 2025-06-30 and waits
for the run, then checks every task instance succeeded, the parquet files equal the sandbox's ground
truth, and the task log (read through the REST API, as a user does) shows the operator's summary but no
access token and no private key. Every process (and any child) is stopped at the end, also on failure;
a process of this Airflow home still alive afterwards is an error.

Skips only when the sandbox has no Directory emulator (nothing to snapshot).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from ground_truth import SNAPSHOT_TRUTH
from processes import Airflow, free_port, migrate, tail

from raidiam_sandbox import Sandbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
DAG_ID = "raidiam_directory_snapshot"
LOGICAL_DATE = "2025-06-30T12:00:00+00:00"
DS = "2025-06-30"
START_TIMEOUT = 120.0  # until the API server is healthy and the DAG is parsed
RUN_TIMEOUT = 240.0  # from the trigger to the end of the run

JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}")


@pytest.fixture(scope="module")
def airflow(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    """api-server, dag-processor and scheduler (LocalExecutor) on one private SQLite home."""
    if "api_base_url" not in sandbox.connection("tls")["extra"]:
        pytest.skip("the sandbox runs without the Directory emulator: there is nothing to snapshot")
    home = tmp_path_factory.mktemp("airflow-scheduler-home")
    output = tmp_path_factory.mktemp("airflow-scheduler-output")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # LocalExecutor forks `parallelism` workers at start (default 32); the DAG is a chain of two.
            "AIRFLOW__CORE__PARALLELISM": "2",
            # Workers reach the API server's Execution API with JWTs that the scheduler signs.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__BASE_URL": url,
            # Only the run the test triggers: no scheduled run when the DAG is unpaused.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager."
            "SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW_CONN_RAIDIAM_DEFAULT": sandbox.connection_uri_env("tls", pem_text=True),
            "AIRFLOW_VAR_RAIDIAM_OUTPUT_ROOT": output.as_uri(),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    started = time.monotonic()
    migrate(env, home)
    deployment = Airflow(url=url, home=home, output=output, env=env)
    deployment.session.trust_env = False
    deployment.timings["migrate"] = time.monotonic() - started
    try:
        deployment.spawn("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port), "-w", "1")
        deployment.spawn("dag-processor", "dag-processor")
        deployment.spawn("scheduler", "scheduler", "--skip-serve-logs")
        _wait_until_ready(deployment)
        deployment.timings["ready (from migrate)"] = time.monotonic() - started
        yield deployment
    finally:
        deployment.stop()


def _wait_until_ready(deployment: Airflow) -> None:
    """The API server answers (Execution API warmed up), the scheduler heartbeats, the DAG is stored.

    The API server builds the Execution API's versioned routes (cadwyn) on the first request to
    ``/execution/``, blocking its event loop for 4-15 s here, often longer than a worker's 5 s
    ``[workers] execution_api_timeout``, so the first task would spend that time in retries. One request
    during start-up, while the DAG processor parses, takes that cost out of the run.
    """
    deadline = time.monotonic() + START_TIMEOUT
    warmed = False
    while True:
        deployment.check_alive()
        try:
            health = deployment.session.get(deployment.url + "/api/v2/monitor/health", timeout=5)
            if health.ok and not warmed:
                started = time.monotonic()
                warm = deployment.session.get(deployment.url + "/execution/health", timeout=START_TIMEOUT)
                warmed = warm.ok
                deployment.timings["execution_api_warm_up"] = time.monotonic() - started
            if health.ok and warmed and health.json()["scheduler"]["status"] == "healthy":
                dag = deployment.session.get(f"{deployment.url}/api/v2/dags/{DAG_ID}", timeout=5)
                if dag.ok:
                    return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {name}\n{tail(deployment.log_path(name))}" for name in deployment.processes)
            pytest.fail(f"Airflow not ready after {START_TIMEOUT:.0f} s:\n{logs}")
        time.sleep(0.5)


@dataclass(frozen=True)
class Run:
    dag_run: dict[str, Any]
    task_instances: list[dict[str, Any]]
    seconds: float
    as_stats: dict[str, Any]
    api_stats: dict[str, Any]


@pytest.fixture(scope="module")
def snapshot_run(airflow: Airflow, sandbox: Sandbox) -> Run:
    """Unpause and trigger the snapshot DAG through the REST API; wait for the run to finish."""
    sandbox.reset_stats()
    airflow.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    started = time.monotonic()
    run_id = airflow.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": LOGICAL_DATE})["dag_run_id"]
    deadline = started + RUN_TIMEOUT
    while True:
        airflow.check_alive()
        dag_run = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        if dag_run["state"] in ("success", "failed"):
            break
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {name}\n{tail(airflow.log_path(name))}" for name in airflow.processes)
            pytest.fail(f"run {run_id} still {dag_run['state']} after {RUN_TIMEOUT:.0f} s:\n{logs}")
        time.sleep(0.5)
    seconds = time.monotonic() - started
    task_instances = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return Run(dag_run, task_instances, seconds, sandbox.as_stats(), sandbox.api_stats())


def task_log(airflow: Airflow, run: Run, task_id: str) -> str:
    """The task's log as the UI gets it (REST API, full content), one JSON event per line."""
    (ti,) = [ti for ti in run.task_instances if ti["task_id"] == task_id]
    path = f"/dags/{DAG_ID}/dagRuns/{run.dag_run['dag_run_id']}/taskInstances/{task_id}/logs/{ti['try_number']}"
    response = airflow.session.get(
        airflow.url + "/api/v2" + path,
        params={"full_content": "true"},
        headers={"Accept": "application/x-ndjson"},
        timeout=30,
    )
    assert response.ok, f"GET {path} answered {response.status_code}: {response.text[:2000]}"
    text: str = response.text
    return text


def test_every_task_succeeds_under_the_scheduler(airflow: Airflow, snapshot_run: Run) -> None:
    run = snapshot_run
    task_logs = sorted((airflow.home / "logs" / f"dag_id={DAG_ID}").rglob("*.log"))
    assert run.dag_run["state"] == "success", "\n".join(f"--- {path}\n{tail(path)}" for path in task_logs)
    assert run.dag_run["run_type"] == "manual"
    assert run.dag_run["logical_date"].startswith(DS)
    states = {ti["task_id"]: ti["state"] for ti in run.task_instances}
    assert states == {"snapshot": "success", "summarise": "success"}
    for ti in run.task_instances:
        assert ti["try_number"] == 1, ti
        assert ti["pid"] is not None, ti
        assert ti["pid"] not in {process.pid for process in airflow.processes.values()}, ti
    scheduler_log = airflow.log_path("scheduler").read_text(errors="replace")
    assert "for executor: LocalExecutor(parallelism=2)" in scheduler_log
    timings = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in airflow.timings.items())
    tasks = ", ".join(f"{ti['task_id']} {ti['duration']:.1f}s" for ti in run.task_instances)
    print(f"\nscheduler test: {timings}; run {run.seconds:.1f}s ({tasks})")


def test_the_run_used_one_token_and_the_directory(snapshot_run: Run) -> None:
    assert snapshot_run.as_stats["token_requests"] == 1
    assert snapshot_run.as_stats["discovery_requests"] == 1
    assert snapshot_run.api_stats["tokens_seen"] == 1
    assert snapshot_run.api_stats["rejected_tokens"] == 0


def test_the_files_equal_the_ground_truth(airflow: Airflow, snapshot_run: Run, sandbox: Sandbox) -> None:
    folder = airflow.output / "snapshot" / DS
    assert sorted(path.name for path in folder.iterdir()) == sorted(f"{table}.parquet" for table in SNAPSHOT_TRUTH)
    truth = sandbox.ground_truth()
    for table, (key, id_column) in SNAPSHOT_TRUTH.items():
        frame = pd.read_parquet(folder / f"{table}.parquet")
        expected = truth[key]
        assert len(frame) == expected["count"], f"{table}: {len(frame)} rows, server has {expected['count']}"
        assert sorted(frame[id_column].astype(str)) == expected["ids"], f"{table}: ids differ from the server's"


def test_the_task_log_has_the_summary_and_no_secrets(
    airflow: Airflow, snapshot_run: Run, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = task_log(airflow, snapshot_run, "snapshot")
    summary_lines = [line for line in log.splitlines() if "Wrote 9 table(s)" in line]
    assert len(summary_lines) == 1, log
    assert f"{airflow.output.as_uri()}/snapshot/{DS}" in summary_lines[0]
    assert "organisations=300" in summary_lines[0]
    summary = task_log(airflow, snapshot_run, "summarise")
    assert "Raidiam Directory snapshot:" in summary

    # A token the sandbox issues to the same client now. Its JWT header (algorithm, type, key id of the
    # authorisation server) is the header of the worker's token too, so finding it would find that token.
    from airflow_provider_raidiam.hooks.raidiam import RaidiamHook

    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_DEFAULT", airflow.env["AIRFLOW_CONN_RAIDIAM_DEFAULT"])
    with RaidiamHook() as hook:
        token = hook.get_access_token()
    header, _, signature = token.split(".")
    assert header.startswith("eyJ"), "the sandbox issues JWT access tokens"
    key_lines = [
        line
        for path in (sandbox.pki.key("tls-client"), sandbox.pki.encrypted_key)
        for line in path.read_text().splitlines()
        if len(line) >= 40 and not line.startswith("-----")
    ]
    assert key_lines
    task_files = sorted((airflow.home / "logs" / f"dag_id={DAG_ID}").rglob("*.log"))
    assert len(task_files) == 2, task_files
    task_logs = [("snapshot (REST API)", log), ("summarise (REST API)", summary)]
    task_logs += [(str(path.relative_to(airflow.home)), path.read_text()) for path in task_files]
    # The components' own output: LocalExecutor workers write the task events to the scheduler's too.
    process_logs = [(f"{name}.log", airflow.log_path(name).read_text(errors="replace")) for name in airflow.processes]
    for name, text in task_logs + process_logs:
        assert header not in text, f"{name}: an access token of the client"
        assert signature not in text, f"{name}: the test's access token"
        assert "PRIVATE KEY" not in text, f"{name}: a PEM private key"
        assert not [line for line in key_lines if line in text], f"{name}: private key material"
    for name, text in task_logs:
        assert not JWT_LIKE.search(text), f"{name}: JWT-like string {JWT_LIKE.search(text)}"
