"""Integration fixtures: one local sandbox (real TLS/mTLS, real oidc-provider) for the whole session."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_raidiam.sandbox import Sandbox
from airflow_provider_raidiam.sandbox.runner import DIRECTORY_MODULE

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration as ``integration``."""
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The running sandbox (authorisation server + Directory emulator, 300 organisations, seed 7)."""
    with_directory = importlib.util.find_spec(DIRECTORY_MODULE) is not None
    if not with_directory:
        warnings.warn(f"{DIRECTORY_MODULE} is missing: the sandbox runs without the Directory emulator", stacklevel=1)
    with Sandbox(tmp_path_factory.mktemp("sandbox"), organisations=300, seed=7, directory=with_directory) as running:
        yield running


@pytest.fixture
def fresh_sandbox_counters(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox with counters zeroed and faults cleared before (and after) the test."""
    sandbox.reset_stats()
    yield sandbox
    sandbox.reset_stats()
