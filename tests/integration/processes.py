"""Small helpers of the tests that run real Airflow processes (API server, scheduler, triggerer)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

STOP_TIMEOUT = 30.0  # SIGTERM to exit, per process group, before SIGKILL
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for failure messages ('' when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def processes_of(home: Path) -> list[psutil.Process]:
    """Every live process whose environment has ``AIRFLOW_HOME=<home>`` (ours and their children)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("AIRFLOW_HOME") == str(home) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


@dataclass
class Airflow:
    """The running Airflow deployment of this module."""

    url: str
    home: Path
    output: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)

    def log_path(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def spawn(self, name: str, *args: str) -> None:
        with self.log_path(name).open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: workers and uvicorn stop with it
            )

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                pytest.fail(f"airflow {name} exited with {process.returncode}:\n{tail(self.log_path(name))}")

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, self.url + "/api/v2" + path, timeout=30, **kwargs)
        assert response.ok, f"{method} {path} answered {response.status_code}: {response.text[:2000]}"
        return response.json()

    def stop(self) -> None:
        """SIGTERM each process group, SIGKILL what is left; fail if anything of this home survives."""
        self.session.close()
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT)
        leftovers = processes_of(self.home)
        for process in leftovers:
            process.kill()
        psutil.wait_procs(leftovers, timeout=10)
        assert not leftovers, f"processes outlived their Airflow component: {leftovers}"


def migrate(env: dict[str, str], home: Path) -> None:
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert migrate.returncode == 0, f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}"


def airflow_env(home: Path, **settings: str) -> dict[str, str]:
    """The environment of an Airflow process with its own home and SQLite database.

    Nothing ``AIRFLOW*`` is inherited from the test process; ``settings`` are added as they are.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            **settings,
        }
    )
    return env


@contextmanager
def api_server(env: dict[str, str], start_timeout: float = 180.0) -> Iterator[str]:
    """``airflow api-server`` on 127.0.0.1 (a free port, one worker) in ``env``; yields its URL once healthy.

    The database must be migrated. The server runs in its own process group, stopped with
    :meth:`Airflow.stop` when the block ends, also on failure.
    """
    home = Path(env["AIRFLOW_HOME"])
    port = free_port()
    deployment = Airflow(url=f"http://127.0.0.1:{port}", home=home, output=home, env=env)
    deployment.session.trust_env = False
    try:
        deployment.spawn("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port), "-w", "1")
        deadline = time.monotonic() + start_timeout
        while True:
            deployment.check_alive()
            try:
                if deployment.session.get(deployment.url + "/api/v2/monitor/health", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                log = tail(deployment.log_path("api-server"))
                pytest.fail(f"airflow api-server not healthy after {start_timeout:.0f} s:\n{log}")
            time.sleep(0.5)
        yield deployment.url
    finally:
        deployment.stop()
