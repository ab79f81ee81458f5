#!/usr/bin/env bash
# The full-snapshot benchmark of issue #5, from a fresh clone: bash benchmarks/run.sh [--check] [options]
# Sets up .venv (scripts/bootstrap.sh), starts the local sandbox, measures the provider, a hand-written
# sequential script and a raw thread-pool floor side by side, and writes benchmarks/results/latest.{json,md}.
# Options: python benchmarks/snapshot_bench.py --help
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python benchmarks/snapshot_bench.py "$@"
