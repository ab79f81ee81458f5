#!/usr/bin/env bash
# The main job: run the raidiam_directory_snapshot example DAG against the local sandbox and show
# the tables it produced. Usage: bash scripts/demo.sh [--organisations N]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python scripts/demo.py "$@"
