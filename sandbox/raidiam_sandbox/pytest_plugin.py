"""pytest plugin (registered as ``pytest11`` entry point): the sandbox fixtures.

- ``sandbox``: one running sandbox (authorisation server + Directory emulator, 300 organisations, seed 7)
  for the whole test session;
- ``fresh_sandbox_counters``: that sandbox with counters zeroed and faults cleared before and after the test.

The sandbox is imported inside the fixtures, not here: pytest imports plugins before coverage starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from raidiam_sandbox.runner import Sandbox


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The running sandbox (authorisation server + Directory emulator, 300 organisations, seed 7)."""
    from raidiam_sandbox.runner import Sandbox

    with Sandbox(tmp_path_factory.mktemp("sandbox"), organisations=300, seed=7) as running:
        yield running


@pytest.fixture
def fresh_sandbox_counters(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox with counters zeroed and faults cleared before (and after) the test."""
    sandbox.reset_stats()
    yield sandbox
    sandbox.reset_stats()
