"""Test-wide setup: an isolated Airflow home (SQLite) pointing at the project's example DAGs.

The environment is set before anything imports Airflow, because Airflow reads its configuration once
at import time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.hostile_peer import CertificateAuthority, HostilePeer

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="raidiam-test-airflow-"))

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
os.environ.pop("AIRFLOW_CONN_RAIDIAM_DEFAULT", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the temporary Airflow home (its processes are gone by now)."""
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database (needed by ``dag.test()`` and the CLI)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return AIRFLOW_HOME


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> None:
    """Each test starts without cached discovery documents or tokens (they are per process)."""
    from airflow_provider_raidiam import discovery
    from airflow_provider_raidiam.auth.token_client import TOKEN_CACHE

    discovery.clear_cache()
    TOKEN_CACHE.clear()


@pytest.fixture(autouse=True)
def _secret_masks_per_test() -> Iterator[None]:
    """The masks a test adds to Airflow's secret maskers are dropped after it, as a task process starts
    with a fresh masker.

    A masker keeps one regular expression of every secret it was given and compiles it again for each new
    one: kept for the whole session, every token, client assertion and key line of every earlier test made
    each new mask slower (one PEM-key test took 4 s alone and 113 s late in the suite). Masks that
    session- and module-scoped fixtures added before the test are kept.
    """
    from airflow._shared.secrets_masker import _secrets_masker as core_masker
    from airflow.sdk._shared.secrets_masker import _secrets_masker as sdk_masker

    maskers: list[Any] = [core_masker(), sdk_masker()]  # two copies of one class (core, Task SDK)
    saved = [(set(masker.patterns), masker.replacer) for masker in maskers]
    yield
    for masker, (patterns, replacer) in zip(maskers, saved, strict=True):
        masker.patterns, masker.replacer = patterns, replacer


@pytest.fixture
def hostile_peer() -> Iterator[Callable[..., HostilePeer]]:
    """Factory of started :class:`~support.hostile_peer.HostilePeer` servers, stopped after the test.

    ``hostile_peer(pki, host="127.0.0.2", **options)``: ``pki`` is the test PKI whose CA the client trusts
    (``sandbox.pki`` in integration tests, the ``pki`` fixture in unit tests).
    """
    peers: list[HostilePeer] = []

    def start(ca: CertificateAuthority, host: str = "127.0.0.2", **options: Any) -> HostilePeer:
        peer = HostilePeer(ca, host, **options).start()
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.stop()
