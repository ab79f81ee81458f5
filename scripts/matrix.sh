#!/usr/bin/env bash
# The compatibility matrix: every supported Airflow line, installed as a user would, runs tests/matrix.
#
#   bash scripts/matrix.sh            # every line of requirements/airflow-3.*.txt
#   bash scripts/matrix.sh 3.0 3.2    # only these lines
#
# Per line: one venv, made from the provider's and the sandbox's wheels, that line's Airflow and its
# known-good constraints (requirements/airflow-3.X.txt names the Airflow release and the Python), installed
# as a user would but with uv (pinned in requirements/constraints.txt, from the project's .venv) instead of
# pip: the same pins give the same packages, in a fraction of the time. tests/matrix then runs with the
# line's own pandas, and its DataFrame-through-XCom test again with the other pandas major laid over it
# (installed with --target, first on PYTHONPATH). The venvs are cached under
# ${RAIDIAM_MATRIX_CACHE:-~/.cache/airflow-provider-raidiam/matrix}, keyed by the constraints' pins: a
# later run only reinstalls the two wheels. A first run downloads about 1.5 GB.
#
# Lines run ${RAIDIAM_MATRIX_JOBS:-<number of cores>} at a time (a line's tests mostly wait on one Airflow
# process at a time); each output line is prefixed with its Airflow line.
set -euo pipefail
cd "$(dirname "$0")/.."
# uv, unlike pip, ignores the machine's certificate store unless told: needed where HTTPS goes through a
# proxy whose CA the system trusts (pip.conf's cert=, SSL_CERT_FILE are not always set).
export UV_SYSTEM_CERTS=1
repo=$PWD
cache=${RAIDIAM_MATRIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airflow-provider-raidiam/matrix}
jobs=${RAIDIAM_MATRIX_JOBS:-$(nproc)}
# The other pandas major each line is also tested with.
pandas_2=2.3.3
pandas_3=3.1.1
bash scripts/bootstrap.sh  # .venv, with uv
uv=$repo/.venv/bin/uv

header() { sed -n "s/^# $1: //p" "$2"; }

find_python() {  # find_python 3.12 -> an interpreter of that version (PATH first, then pyenv's)
  local version=$1 candidate
  for candidate in "python$version" "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/"$version".*/bin/"python$version"; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c pass 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

lines=("$@")
if [ ${#lines[@]} -eq 0 ]; then
  for file in requirements/airflow-3.*.txt; do
    name=${file##*/airflow-}
    lines+=("${name%.txt}")
  done
fi
for line in "${lines[@]}"; do  # every line can run, before any starts
  constraints=$repo/requirements/airflow-$line.txt
  [ -f "$constraints" ] || { echo "no $constraints: unknown Airflow line $line" >&2; exit 2; }
  python_version=$(header python "$constraints")
  find_python "$python_version" >/dev/null || {
    echo "Python $python_version (for Airflow $line) is not installed: install it or run other lines." >&2
    exit 2
  }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/raidiam-matrix.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "== building the wheels (provider, sandbox)"
for project in "$repo" "$repo/sandbox"; do
  "$uv" build --quiet --wheel --out-dir "$work/wheels" "$project"
done
wheels=("$work"/wheels/*.whl)
# A wheel rebuilt from changed source keeps its name and version: never take it from uv's cache.
fresh_wheels=(--refresh-package airflow-provider-raidiam --refresh-package airflow-provider-raidiam-sandbox)

run_line() {  # run_line 3.X: make or refresh the line's venv, run tests/matrix with each pandas major
  local line=$1
  local constraints=$repo/requirements/airflow-$line.txt
  local airflow_version python_version python_bin venv stamp started own_pandas other_pandas overlay pandas_version
  airflow_version=$(header airflow "$constraints")
  python_version=$(header python "$constraints")
  python_bin=$(find_python "$python_version")
  venv=$cache/airflow-$line
  stamp=$({ echo "$python_version"; grep -v '^#' "$constraints"; } | sha256sum | cut -c1-16)
  started=$(date +%s)
  if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "== Airflow $airflow_version: new venv with Python $python_version"
    rm -rf "$venv"
    "$uv" venv --quiet --python "$python_bin" "$venv"
    "$uv" pip install --quiet --python "$venv/bin/python" --compile-bytecode "${fresh_wheels[@]}" \
      --constraint "$constraints" "apache-airflow==$airflow_version" "${wheels[@]}" pytest
    echo "$stamp" >"$venv/.stamp"
  else
    echo "== Airflow $airflow_version: cached venv, reinstalling the wheels"
    "$uv" pip install --quiet --python "$venv/bin/python" --compile-bytecode "${fresh_wheels[@]}" \
      --no-deps --reinstall "${wheels[@]}"
  fi
  "$uv" pip check --python "$venv/bin/python"

  own_pandas=$("$venv/bin/python" -c 'import pandas; print(pandas.__version__)')
  case $own_pandas in 2.*) other_pandas=$pandas_3 ;; *) other_pandas=$pandas_2 ;; esac
  overlay=$venv/overlay-pandas-$other_pandas
  if [ ! -f "$overlay/.complete" ]; then
    # pandas with what it needs (pandas 2 needs pytz, which pandas 3 dropped), at the venv's versions.
    rm -rf "$overlay"
    "$uv" pip freeze --quiet --python "$venv/bin/python" | grep -iv -e '^pandas==' -e ' @ ' >"$work/venv-pins-$line.txt"
    "$uv" pip install --quiet --python "$venv/bin/python" --compile-bytecode --target "$overlay" \
      --constraint "$work/venv-pins-$line.txt" "pandas==$other_pandas"
    touch "$overlay/.complete"
  fi

  for pandas_version in "$own_pandas" "$other_pandas"; do
    local run_env=(AIRFLOW_HOME="$(mktemp -d "$work/airflow-home.XXXXXX")" AIRFLOW__CORE__LOAD_EXAMPLES=False
      RAIDIAM_MATRIX_AIRFLOW="$airflow_version" RAIDIAM_MATRIX_PANDAS="$pandas_version")
    local selection=()  # the other pandas changes only what crosses XCom: run just that (and the version check)
    [ "$pandas_version" = "$own_pandas" ] || { run_env+=(PYTHONPATH="$overlay"); selection=(-k "xcom or asked_for"); }
    echo "== Airflow $airflow_version, Python $python_version, pandas $pandas_version"
    # Run outside the repository (its source must not shadow the installed wheel) and without the
    # project's conftest files and settings: only tests/matrix, as a user's environment sees it.
    if ! (cd "$work" && env -u PYTHONPATH "${run_env[@]}" "$venv/bin/python" -m pytest "$repo/tests/matrix" \
      -c /dev/null --rootdir "$work" --confcutdir "$repo/tests/matrix" --import-mode importlib \
      -o "markers=integration" -p no:cacheprovider -q -rs -W "ignore::DeprecationWarning" "${selection[@]}"); then
      echo "Airflow $airflow_version + pandas $pandas_version" >>"$work/failed"
    fi
  done
  echo "== Airflow $airflow_version done in $(($(date +%s) - started)) s"
  touch "$work/finished-$line"  # not reached when making the venv failed (set -e)
}

for line in "${lines[@]}"; do
  while [ "$(jobs -pr | wc -l)" -ge "$jobs" ]; do
    wait -n || true
  done
  run_line "$line" 2>&1 | sed -u "s/^/[$line] /" &
done
wait

for line in "${lines[@]}"; do
  [ -f "$work/finished-$line" ] || echo "Airflow line $line (its venv could not be made: see above)" >>"$work/failed"
done
if [ -s "$work/failed" ]; then
  sed 's/^/matrix FAILED for: /' "$work/failed" >&2
  exit 1
fi
echo "matrix passed: Airflow ${lines[*]}, each with pandas 2 and 3"
