"""The documentation site builds with MkDocs in strict mode, with no warning, and says what it must.

Runs the same build as ``scripts/docs.sh`` (``mkdocs build --strict``) into a temporary directory. A
broken link or anchor, a page missing from the nav or an API reference (mkdocstrings) that does not
resolve fails the build.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_raidiam.get_provider_info import get_provider_info

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site_dir)]
    result = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if re.match(r"^\s*(WARNING|ERROR)\b", line)]
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{output[-6000:]}"
    assert not warnings, "mkdocs warned:\n" + "\n".join(warnings)
    return site_dir


def test_every_page_is_built(site: Path) -> None:
    pages = sorted(path.relative_to(DOCS) for path in DOCS.rglob("*.md"))

    assert pages
    for page in pages:
        built = site / ("index.html" if page.name == "index.md" else page.with_suffix("") / "index.html")
        assert built.is_file(), f"{page} was not built"


def test_api_reference_is_generated_from_the_docstrings(site: Path) -> None:
    hook = (site / "reference" / "hook" / "index.html").read_text()
    operators = (site / "reference" / "operators" / "index.html").read_text()

    for method in ("get_pandas_df", "get_pandas_dfs", "paginate", "test_connection", "list_tables"):
        assert method in hook, method
    assert "Read one Directory table into a DataFrame" in hook  # a docstring, rendered
    assert ":meth:" not in hook, "Sphinx roles left in the page: docs/_hooks/sphinx_roles.py did not run"
    for operator in ("RaidiamDirectoryOperator", "RaidiamParticipantsOperator", "RaidiamApiOperator"):
        assert f'id="airflow_provider_raidiam.operators.directory.{operator}"' in operators, operator


def test_screenshots_of_the_connection_form_are_shown(site: Path) -> None:
    page = (site / "connection" / "index.html").read_text()

    for image in ("connection-form.png", "connection-form-extras.png"):
        assert (DOCS / "img" / image).is_file(), f"docs/img/{image} is missing: run bash scripts/docs_images.sh"
        assert f'src="../img/{image}"' in page
        assert (site / "img" / image).is_file()


def test_connection_reference_covers_every_field() -> None:
    text = (DOCS / "connection.md").read_text()
    connection_type = get_provider_info()["connection-types"][0]

    for name, spec in connection_type["conn-fields"].items():
        assert f"| `{name}` | {spec['label']} |" in text, f"extra {name!r} (form label {spec['label']!r}) missing"
    for name, label in connection_type["ui-field-behaviour"]["relabeling"].items():
        assert f"| `{name}` | {label} |" in text, f"standard field {name!r} ({label!r}) missing"
    for host in ("auth.sandbox.raidiam.io", "matls-api.sandbox.raidiam.io", "auth.directory.openbankingbrasil.org.br"):
        assert host in text
    for form in ("airflow connections add", "AIRFLOW_CONN_", "AIRFLOW__CORE__TEST_CONNECTION=Enabled"):
        assert form in text


def test_quick_start_has_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    index = (DOCS / "index.md").read_text()

    for command in ("bash scripts/demo.sh", "bash scripts/test.sh"):
        assert command in readme
        assert command in index
