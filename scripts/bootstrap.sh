#!/usr/bin/env bash
# Create (or refresh) .venv with the pinned toolchain, the provider and the sandbox (sandbox/) installed in
# editable mode.
# Idempotent: does nothing when .venv already matches pyproject.toml and requirements/constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
# uv, unlike pip, ignores the machine's certificate store unless told: needed where HTTPS goes through a
# proxy whose CA the system trusts (pip.conf's cert=, SSL_CERT_FILE are not always set).
export UV_SYSTEM_CERTS=1

python_bin=${PYTHON:-python3}
"$python_bin" - <<'PY' || { echo "Python 3.11+ is required (set PYTHON=/path/to/python3.11)." >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
# The one statement of the Node.js version the sandbox needs: engines.node (">=N...") of its package.json.
authserver_package=sandbox/raidiam_sandbox/authserver/package.json
node_min=$("$python_bin" -c 'import json, re, sys; print(re.match(r">=\s*(\d+)", json.load(open(sys.argv[1]))["engines"]["node"]).group(1))' "$authserver_package")
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt "$node_min" ]; then
  echo "Node.js ${node_min}+ is required for the sandbox's authorisation server (found: ${node_major})." >&2
  exit 1
fi

stamp=$(cat pyproject.toml sandbox/pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-16)
if [ -x .venv/bin/python ] && [ "$(cat .venv/.stamp 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
echo "Setting up .venv: Apache Airflow, pandas, the sandbox, test and docs tools."
echo "  (first time: under a minute, about 1 GB on disk, a few hundred MB from PyPI)"
"$python_bin" -m venv .venv
# pip installs uv (pinned in the constraints), uv the rest: it downloads in parallel and resolves in a
# fraction of pip's time. --compile-bytecode because pip does it too, and with PYTHONDONTWRITEBYTECODE set
# every process would otherwise compile Airflow again. (grep drops this machine's notes about absent local
# package mirrors; real errors still show.)
.venv/bin/python -m pip install --quiet --disable-pip-version-check --constraint requirements/constraints.txt uv \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
.venv/bin/uv pip install --quiet --python .venv/bin/python --compile-bytecode \
  --constraint requirements/constraints.txt --editable ".[test,docs]" --editable ./sandbox
echo "  .venv ready."
echo "$stamp" > .venv/.stamp
