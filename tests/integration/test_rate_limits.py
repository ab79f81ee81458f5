"""Gateway rate limits: the snapshot slows down but never loses, duplicates or fails for throttling alone.

The Directory emulator's gateway limits requests (fixed windows or a token bucket, with or without
``Retry-After``, or refuses everything) and logs when each request arrived, on this machine's monotonic
clock, the same one the client's throttle uses. So the server's own log proves what the client did: no
request arrived during a shared pause beyond those already in flight when it began. Clients use the
default retry policy (they are not told the limit); only ``throttle_timeout`` is shortened where the
budget itself is tested. Nothing here bounds the time a test takes.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.log import mask_secret
from ground_truth import assert_matches_truth, snapshot_tables

from airflow_provider_raidiam.client import RaidiamClient
from airflow_provider_raidiam.directory.catalogue import read_tables
from airflow_provider_raidiam.exceptions import ThrottledError
from airflow_provider_raidiam.hooks.raidiam import RaidiamHook
from airflow_provider_raidiam.operators.directory import RaidiamDirectoryOperator
from airflow_provider_raidiam.retry import RetryPolicy
from raidiam_sandbox import Sandbox

pytestmark = pytest.mark.integration

LIMITS = {
    "token-bucket": {"mode": "token-bucket", "rate": 100, "burst": 20},
    "token-bucket+retry-after": {"mode": "token-bucket", "rate": 100, "burst": 20, "retry_after": "seconds"},
    "fixed-window": {"mode": "fixed-window", "rate": 100},
    "fixed-window+http-date": {"mode": "fixed-window", "rate": 100, "retry_after": "http-date"},
}
"""Limits a full snapshot (about 1260 requests) runs into. The buckets hold 20 requests: smaller ones would
also refuse the backlog of a sandbox that a busy machine stalled for a moment."""


@pytest.fixture
def sb(fresh_sandbox_counters: Sandbox) -> Sandbox:
    return fresh_sandbox_counters


MakeClient = Callable[..., RaidiamClient]


@pytest.fixture
def make_client(sb: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeClient]:
    """Clients of real Airflow connections to the sandbox, with the default retry policy unless given."""
    clients: list[RaidiamClient] = []

    def make(retry: RetryPolicy | None = None, **overrides: Any) -> RaidiamClient:
        conn_id = f"raidiam_limits_{len(clients)}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", sb.connection_uri_env("tls", **overrides))
        client = RaidiamClient(RaidiamHook(raidiam_conn_id=conn_id).settings, on_secret=mask_secret, retry=retry)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.mark.parametrize("limit", list(LIMITS))
def test_the_full_snapshot_under_each_gateway_limit_equals_the_ground_truth(
    sb: Sandbox, make_client: MakeClient, limit: str
) -> None:
    truth = sb.ground_truth()
    client = make_client()
    client.access_token()
    sb.set_gateway(**LIMITS[limit])

    frames = read_tables(client, snapshot_tables())

    for table, frame in frames.items():
        assert_matches_truth(table, frame, truth)  # every id once: nothing lost, nothing duplicated
    gateway, api = sb.gateway(), sb.api_stats()
    refused = gateway["refused"]
    assert refused > 0, "the 16 workers went over the limit"
    assert api["requests_by_status"] == {"200": api["requests"] - refused, "429": refused}
    assert client.throttle.refusals == {429: refused}, "the client saw every refusal"
    assert "throttled: " in client._describe_calls()
    print(
        f"\n[gateway {limit}] requests={api['requests']} refused={refused} "
        f"attempts/success={api['requests'] / (api['requests'] - refused):.3f} "
        f"pauses={len(client.throttle.pauses)} paused={client.throttle.paused_seconds:.1f}s "
        f"rate={client.throttle.rate}"
    )


def test_a_429_pauses_every_worker_at_once(sb: Sandbox, make_client: MakeClient) -> None:
    client = make_client(max_workers=8)
    organisations = [o["OrganisationId"] for o in client.paginate("/organisations")][:120]
    sb.set_gateway(mode="fixed-window", rate=25, window=1.0, retry_after="seconds")

    servers = client.fan_out(lambda org: client.get_json(f"/organisations/{org}/authorisationservers"), organisations)

    assert len(servers) == len(organisations)
    pauses = list(client.throttle.pauses)
    assert pauses, "the gateway refused, and the client paused"
    assert all(p.end - p.start >= 0.999 for p in pauses), "each pause honoured Retry-After: 1 (or more)"
    arrived = [(at, status) for at, status, _connection in sb.gateway()["requests"]]
    for pause in pauses:
        during = [status for at, status in arrived if pause.start <= at < pause.end]
        # Only requests already sent when the pause began may reach the server during it.
        assert len(during) <= pause.in_flight, (pause, during)
    print(f"\n[shared pause] pauses={len(pauses)} in flight at their start={[p.in_flight for p in pauses]}")


def test_throttling_shorter_than_the_budget_never_fails_the_read(sb: Sandbox, make_client: MakeClient) -> None:
    client = make_client(throttle_timeout=30)
    client.access_token()
    sb.set_gateway(mode="closed")
    opener = threading.Timer(3.0, lambda: sb.set_gateway(mode="token-bucket", rate=200, burst=10))
    opener.start()
    try:
        frames = read_tables(client, ["organisations", "authorisation_servers"])
    finally:
        opener.join()

    truth = sb.ground_truth()
    for table, frame in frames.items():
        assert_matches_truth(table, frame, truth)
    refusals = [at for at, status, _connection in sb.gateway()["requests"] if status == 429]
    assert refusals[-1] - refusals[0] >= 2.0, "the gateway refused everything for seconds"
    assert client.throttle.paused_seconds >= 2.0


def test_a_gateway_refusing_everything_for_the_budget_is_a_throttled_error(
    sb: Sandbox, make_client: MakeClient
) -> None:
    client = make_client(throttle_timeout=2)
    client.access_token()
    sb.set_gateway(mode="closed")

    with pytest.raises(ThrottledError) as caught:
        read_tables(client, ["organisations"])

    assert caught.value.status == 429
    assert re.search(r"refused every request of this client for \d+ s", str(caught.value))
    assert "throttle_timeout (2 s)" in str(caught.value)
    arrived = [(at, status) for at, status, _connection in sb.gateway()["requests"]]
    assert {status for _at, status in arrived} == {429}
    assert arrived[-1][0] - arrived[0][0] >= 2.0, "it tried for the whole budget"


def test_the_operator_summary_counts_the_429s(
    sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_DEFAULT", sb.connection_uri_env("tls"))
    sb.set_gateway(mode="token-bucket", rate=100, burst=2)
    operator = RaidiamDirectoryOperator(
        task_id="snapshot", tables=["organisations", "authorisation_servers"], output_uri=tmp_path.as_uri()
    )

    operator.execute(context={})  # type: ignore[arg-type]

    refused = sb.gateway()["refused"]
    assert refused > 0
    output = capfd.readouterr()
    (summary,) = [line for line in (output.out + output.err).splitlines() if "API calls (" in line]
    assert f"{refused} throttled with HTTP 429" in summary
