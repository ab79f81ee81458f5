"""What a full Directory snapshot costs the servers (issue #5's cost model), counted by the servers; not timed.

A full read of the ``raidiam_directory_snapshot`` DAG's tables through ``RaidiamHook`` must make exactly
one token request and one discovery fetch, at most ``max_workers + 2`` TLS handshakes over the
authorisation server's and the Directory emulator's listeners together (connections and the SSL context
are reused), and exactly the API calls of the fetch plan: the pages of ``/organisations``, three calls
per organisation and one per software statement, each once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from ground_truth import snapshot_tables

from airflow_provider_raidiam.hooks.raidiam import RaidiamHook
from raidiam_sandbox import Sandbox
from raidiam_sandbox.runner import counters_since

pytestmark = pytest.mark.integration

CONN_ID = "raidiam_snapshot_costs"
PAGE_SIZE = 50  # several pages of /organisations, so the paged read fans out too

ORG = "/organisations/{OrganisationId}"


@pytest.fixture
def counters(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.reset_stats()
    yield sandbox
    sandbox.reset_stats()


def expected_calls(truth: dict[str, Any]) -> dict[str, int]:
    """The fetch plan of a full snapshot, per route, from the emulator's ground truth."""
    organisations = truth["organisations"]["count"]
    return {
        "/organisations": max(1, math.ceil(organisations / PAGE_SIZE)),
        ORG + "/authorisationservers": organisations,
        ORG + "/softwarestatements": organisations,
        ORG + "/certificates": organisations,
        ORG + "/softwarestatements/{SoftwareStatementId}/certificates": truth["software_statements"]["count"],
    }


@pytest.mark.parametrize("max_workers", [1, 4])
def test_full_snapshot_costs_one_token_one_discovery_and_a_bounded_number_of_handshakes(
    sandbox: Sandbox, counters: Sandbox, monkeypatch: pytest.MonkeyPatch, max_workers: int
) -> None:
    tables = snapshot_tables()
    truth = sandbox.ground_truth()
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        sandbox.connection_uri_env("tls", max_workers=max_workers, page_size=PAGE_SIZE),
    )
    before = counters.read_counters()
    with RaidiamHook(raidiam_conn_id=CONN_ID) as hook:
        frames = hook.get_pandas_dfs(tables)
    cost = counters_since(before, counters.read_counters())

    assert list(frames) == tables
    assert len(frames["organisations"]) == truth["organisations"]["count"]
    assert len(frames["software_statement_certificates"]) == truth["software_statement_certificates"]["count"]

    assert cost["discovery_requests"] == 1
    assert cost["token_requests"] == 1
    assert cost["tokens_seen"] == 1, "every API call must reuse the one token"
    handshakes = cost["tls_handshakes"]
    assert handshakes["as_issuer"] == 1, "discovery: one connection to the issuer"
    assert handshakes["as_mtls"] == 1, "the token request: one connection to the mTLS alias"
    assert 1 <= handshakes["api_mtls"] <= max_workers, handshakes
    assert sum(handshakes.values()) <= max_workers + 2, handshakes

    plan = expected_calls(truth)
    assert cost["requests_by_route"] == plan, "each planned call exactly once, nothing else"
    assert cost["api_requests"] == sum(plan.values())
    assert cost["requests_by_status"] == {"200": sum(plan.values())}
    assert cost["rejected_tokens"] == 0
