#!/usr/bin/env bash
# The whole test suite: lint, format, types, unit and integration tests (real oidc-provider sandbox,
# real TLS/mTLS, real Airflow), with coverage. Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy (strict)"; mypy
echo "== pytest"
status=0
python -m pytest -p no:cacheprovider --cov=airflow_provider_raidiam --cov=raidiam_sandbox --cov-report=term-missing:skip-covered \
  --cov-fail-under=90 -rs "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here." >&2
fi
exit "$status"
