#!/usr/bin/env bash
# Regenerate the connection-form screenshots the docs show (docs/img/connection-form*.png) by running the
# browser test with its screenshots directed into docs/img. Needs Debian's chromium (see .ci/run).
# A plain test run never touches docs/img: its screenshots go to build/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
before=$(mktemp)
trap 'rm -f "$before"' EXIT
RAIDIAM_SCREENSHOT_DIR="$PWD/docs/img" .venv/bin/python -m pytest -p no:cacheprovider -q -rs \
  tests/integration/test_ui_browser.py -k test_add_connection_form_shows_every_raidiam_field
for image in docs/img/connection-form.png docs/img/connection-form-extras.png; do
  if [ ! "$image" -nt "$before" ]; then
    echo "$image was not regenerated (did the browser test skip?)" >&2
    exit 1
  fi
done
echo "Regenerated docs/img/connection-form.png and docs/img/connection-form-extras.png"
