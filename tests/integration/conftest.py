"""Integration tests: every test here is marked ``integration``. The ``sandbox`` and
``fresh_sandbox_counters`` fixtures come from the sandbox's pytest plugin (``raidiam_sandbox.pytest_plugin``)."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration as ``integration``."""
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)
