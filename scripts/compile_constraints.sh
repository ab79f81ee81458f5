#!/usr/bin/env bash
# Regenerate the known-good dependency set of an Airflow line: bash scripts/compile_constraints.sh 3.2
#
# requirements/airflow-3.X.txt names its Airflow release, Python and cut-off date in its header. The pins
# are what PyPI offered on that date (the day after the release, as Apache's own constraints of the release
# were made) for that Airflow, this provider and its sandbox, and pytest. Apache's constraints files are not
# on a package index; this rebuilds an equivalent from the index. Check the result with scripts/matrix.sh.
# To move a line to a new Airflow patch, edit the header values first. An optional header line
# "# newer-than-cutoff: pkg ..." lets those packages be newer than the cut-off (the provider's floor for them
# was raised after that Airflow release).
set -euo pipefail
# uv, unlike pip, ignores the machine's certificate store unless told: needed where HTTPS goes through a
# proxy whose CA the system trusts (pip.conf's cert=, SSL_CERT_FILE are not always set).
export UV_SYSTEM_CERTS=1
cd "$(dirname "$0")/.."
line=${1:?usage: scripts/compile_constraints.sh 3.X}
file=requirements/airflow-$line.txt
header() { sed -n "s/^# $1: //p" "$file"; }
airflow_version=$(header airflow)
python_version=$(header python)
cutoff=$(header exclude-newer)
# Packages this provider needs newer than the cut-off (a security floor raised after the release).
newer=()
for package in $(header newer-than-cutoff); do
  newer+=(--exclude-newer-package "$package=$(date -u +%Y-%m-%d)")
done

tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check uv
printf 'apache-airflow==%s\npytest\n' "$airflow_version" >"$tools/extra.txt"
"$tools/venv/bin/uv" pip compile --quiet --python-version "$python_version" --exclude-newer "$cutoff" "${newer[@]}" \
  --no-annotate --no-header pyproject.toml sandbox/pyproject.toml "$tools/extra.txt" -o "$tools/pins.txt"
{ grep '^#' "$file"; cat "$tools/pins.txt"; } >"$tools/new.txt"
mv "$tools/new.txt" "$file"
echo "$file: $(grep -vc '^#' "$file") pins for Airflow $airflow_version on Python $python_version as of $cutoff"
