"""The README's main job: run the ``raidiam_directory_snapshot`` DAG against the local sandbox.

Starts the sandbox (real oidc-provider + Directory emulator over mTLS), points a throw-away Airflow
home at ``dags/``, runs the DAG with the real ``airflow dags test`` CLI, and prints the tables it wrote.
Everything lives under ``.demo/``. Usage: ``bash scripts/demo.sh [--organisations N]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from raidiam_sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "raidiam_directory_snapshot"
LOGICAL_DATE = "2026-01-01"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--organisations", type=int, default=2000, help="size of the sandbox Directory")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=ROOT / ".demo")
    args = parser.parse_args()

    demo_dir: Path = args.dir.resolve()
    output_root = demo_dir / "output"
    airflow_home = demo_dir / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    print(f"Starting the sandbox ({args.organisations} organisations) ...", flush=True)
    with Sandbox(demo_dir / "sandbox", seed=args.seed, organisations=args.organisations) as sandbox:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_RAIDIAM_DEFAULT": sandbox.connection_uri_env("tls"),
            "AIRFLOW_VAR_RAIDIAM_OUTPUT_ROOT": output_root.as_uri(),
        }
        print("Preparing the Airflow metadata database ...", flush=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
        sandbox.reset_stats()  # count only what the DAG run does
        log_path = demo_dir / "dag-run.log"
        print(f"Running `airflow dags test {DAG_ID} {LOGICAL_DATE}` (log: {log_path}) ...", flush=True)
        started = time.monotonic()
        with log_path.open("w") as log:
            result = subprocess.run(
                [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, LOGICAL_DATE],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        elapsed = time.monotonic() - started
        as_stats, api_stats = sandbox.as_stats(), sandbox.api_stats()
    if result.returncode != 0:
        print(log_path.read_text()[-4000:])
        print(f"The DAG run failed (exit {result.returncode}); see {log_path}.", file=sys.stderr)
        return result.returncode

    snapshot_dir = output_root / "snapshot" / LOGICAL_DATE
    files = sorted(snapshot_dir.glob("*.parquet"))
    if not files:
        print(f"No files were written under {snapshot_dir}; see {log_path}.", file=sys.stderr)
        return 1
    print(f"\nDAG {DAG_ID} succeeded in {elapsed:.1f}s. Tables written to {snapshot_dir}:\n")
    width = max(len(path.stem) for path in files)
    for path in files:
        metadata = pq.read_metadata(path)
        print(f"  {path.stem:<{width}}  {metadata.num_rows:>8} rows  {metadata.num_columns:>3} columns  {path.name}")
    print_counters(as_stats, api_stats)
    print_next_steps(demo_dir, snapshot_dir, log_path)
    return 0


def print_counters(as_stats: dict[str, Any], api_stats: dict[str, Any]) -> None:
    """What the sandbox's servers counted during the DAG run, each number explained."""
    handshakes = (
        f"{as_stats.get('tls_handshakes')} at the authorisation server, {api_stats.get('tls_handshakes')} at the API"
    )
    rows = [
        (as_stats.get("token_requests"), "token requests", "bound access tokens, cached, shared by all tables"),
        (as_stats.get("discovery_requests"), "discovery requests", "the OpenID configuration, cached once fetched"),
        (api_stats.get("requests"), "Directory API requests", "pages of all tables; shared lists read once"),
    ]
    print("\nWhat the sandbox's servers counted during the run:")
    for count, what, why in rows:
        print(f"  {count!s:>6}  {what:<24}{why}")
    print(f"  TLS handshakes: {handshakes} (keep-alive connections are reused across requests)")


def print_next_steps(demo_dir: Path, snapshot_dir: Path, log_path: Path) -> None:
    """Where to look and what to try after the demo."""
    print(
        f"""
Next steps:
  - Read the DAG that ran, {ROOT / "dags" / f"{DAG_ID}.py"}, its task log, {log_path},
    and the tables, {snapshot_dir} (pandas.read_parquet).
  - Start the sandbox yourself and keep it running: .venv/bin/python -m raidiam_sandbox
    It prints an `export AIRFLOW_CONN_RAIDIAM_DEFAULT=...` line: paste it into the shell of your own
    Airflow (pip install airflow-provider-raidiam there) and run any DAG of dags/ against the sandbox.
  - Connect to a real Raidiam directory: README.md, "Connecting to a real Raidiam directory".
  - Everything the demo made is under {demo_dir}; delete it to start afresh."""
    )


if __name__ == "__main__":
    sys.exit(main())
