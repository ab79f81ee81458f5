#!/usr/bin/env bash
# The whole test suite: lint, format, types, unit and integration tests (real oidc-provider sandbox,
# real TLS/mTLS, real Airflow), with coverage. Usage: bash scripts/test.sh [pytest args...]
#
# pytest runs one worker per core (pytest-xdist; RAIDIAM_TEST_WORKERS to change it, 0 for none), each test
# file on one worker: a worker has its own session sandbox, Airflow home and module fixtures, so every count
# a test reads from the sandbox is its own, as in a run without workers.
set -euo pipefail
cd "$(dirname "$0")/.."
took() { echo "   ($1 took $((SECONDS - $2)) s)"; }

started=$SECONDS
bash scripts/bootstrap.sh
took bootstrap "$started"
export PATH="$PWD/.venv/bin:$PATH"

started=$SECONDS
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy (strict)"; mypy
took "ruff and mypy" "$started"
echo "== pytest"
started=$SECONDS
status=0
python -m pytest -p no:cacheprovider --numprocesses "${RAIDIAM_TEST_WORKERS:-$(nproc)}" --dist loadfile \
  --cov=airflow_provider_raidiam --cov=raidiam_sandbox --cov-report=term-missing:skip-covered \
  --cov-fail-under=90 -rs "$@" || status=$?
took pytest "$started"
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here." >&2
fi
exit "$status"
