#!/usr/bin/env bash
# Create (or refresh) .venv with the pinned toolchain and the provider installed in editable mode.
# Idempotent: does nothing when .venv already matches pyproject.toml and requirements/constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=${PYTHON:-python3}
"$python_bin" - <<'PY' || { echo "Python 3.11+ is required (set PYTHON=/path/to/python3.11)." >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "Node.js 20+ is required for the sandbox's authorisation server (found: ${node_major})." >&2
  exit 1
fi

stamp=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-16)
if [ -x .venv/bin/python ] && [ "$(cat .venv/.stamp 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
echo "Setting up .venv (Airflow, pandas, test tools) ..."
"$python_bin" -m venv .venv
# (grep drops this machine's notes about absent local package mirrors; real errors still show)
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  --constraint requirements/constraints.txt --editable ".[test,docs]" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
echo "$stamp" > .venv/.stamp
