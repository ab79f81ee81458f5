#!/usr/bin/env bash
# Build the documentation site into ./site with MkDocs in strict mode: any warning (a broken link or
# anchor, a page missing from the nav, an API reference that does not resolve) fails the build.
# Usage: bash scripts/docs.sh [more `mkdocs build` options]     Preview: .venv/bin/mkdocs serve
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export NO_MKDOCS_2_WARNING=1  # mkdocs-material's banner about its successor is not a build warning
exec .venv/bin/python -m mkdocs build --strict --site-dir site "$@"
