"""Faults survived and nothing lost: the Directory snapshot read under every sandbox fault at once.

Everything runs through a real Airflow connection (``AIRFLOW_CONN_*``) and a ``RaidiamClient`` built from
the hook's settings, against the sandbox's real oidc-provider and Directory emulator. Only the retry waits
are shortened (``FAST``) so many seeds fit in a CI run; the focused tests use real waits where the wait
itself is what is checked (``Retry-After``), recorded by the client's clock as scheduled and checked
from the server's side by when the requests arrived (a lower bound: nothing here times an upper one).
Fault and request counts are read from the servers' own counters, retries from the provider's retry log
lines, and rows are compared with the emulator's ground truth, before (raw records) and after (tables)
flattening. The gateway's rate limit is not a random fault: it refuses by rate (fixed windows here;
``test_rate_limits.py`` tries every kind).

What "correct" means when the data changes during a run (``mutate_after_requests``): a snapshot is
consistent with the organisation list *as read*. A change that lands while ``/organisations`` is being
paged moves ``totalSize``, so the list is read again from page 0 and the snapshot equals the ground truth
after the change. A change that lands after the list was read (during the per-organisation fan-out) is
not in this snapshot: every table equals the ground truth before the change, and the next run picks the
new organisation up. Either way no table mixes the two states.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.log import mask_secret
from ground_truth import SNAPSHOT_TRUTH, snapshot_tables

from airflow_provider_raidiam.auth.token_client import TOKEN_CACHE
from airflow_provider_raidiam.client import RaidiamClient
from airflow_provider_raidiam.concurrency import Logger
from airflow_provider_raidiam.directory.catalogue import read_tables
from airflow_provider_raidiam.directory.paging import PageLimits
from airflow_provider_raidiam.exceptions import ApiError, PaginationError, ThrottledError, TokenError
from airflow_provider_raidiam.hooks.raidiam import RaidiamHook
from airflow_provider_raidiam.operators.directory import RaidiamDirectoryOperator
from airflow_provider_raidiam.retry import RetryPolicy
from airflow_provider_raidiam.throttle import Clock
from raidiam_sandbox import Sandbox

pytestmark = pytest.mark.integration

T = TypeVar("T")
R = TypeVar("R")

ROOT = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(attempts=10, max_elapsed=30.0, initial_wait=0.005, max_wait=0.02)
"""Retries exactly like the default policy, with waits of at most 20 ms (Retry-After capped to that)."""

SEEDS = list(range(1, 9))
RETRY_AFTER_MODES = ("seconds", "http-date", "none")
GATEWAY_RATE = 100
"""Requests per one-second window the gateway admits in the fault mix: the 16 workers exceed it (a window,
not a small token bucket, so a sandbox stalled by a busy machine does not see its own backlog as a burst)."""
PAGE_SIZE = 40
"""300 organisations in 8 pages, so a change can land between the pages of one read."""

SNAPSHOT_TABLES = snapshot_tables()


class RecordingReader:
    """A ``DirectoryReader`` that passes every call to the client and keeps the raw records it returned.

    Lets the test count records before flattening, so a page or a fan-out call counted twice shows as
    such (a table would refuse its repeated keys with a ``DataIntegrityError``). A paged read that restarts
    from page 0 (its ``totalSize`` moved) starts its endpoint's records afresh: only the last read counts.
    """

    def __init__(self, client: RaidiamClient) -> None:
        self.client = client
        self.raw: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _keep(self, endpoint: str, records: Any, *, first_page: bool) -> None:
        kind = endpoint.rstrip("/").split("/")[-1] if endpoint.count("/") > 1 else "organisations"
        if kind == "certificates":
            kind = "ss-certificates" if "/softwarestatements/" in endpoint else "org-certificates"
        with self._lock:
            if first_page:
                self.raw[kind] = []
            self.raw.setdefault(kind, []).extend(records if isinstance(records, list) else [records])

    @property
    def log(self) -> Logger:
        return self.client.log

    @property
    def page_limits(self) -> PageLimits:
        return self.client.page_limits

    def url_for(self, endpoint: str) -> str:
        return self.client.url_for(endpoint)

    def get_json(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        body = self.client.get_json(endpoint, params)
        paged = isinstance(body, dict) and isinstance(body.get("content"), list)
        self._keep(endpoint, body["content"] if paged else body, first_page=paged and (params or {}).get("page") == 0)
        return body

    def fan_out(self, func: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return self.client.fan_out(func, items)

    def get_public_json(self, url: str) -> Any:
        return self.client.get_public_json(url)

    def raw_ids(self) -> dict[str, list[str]]:
        """Ids of every snapshot table as found in the raw responses (duplicates kept)."""
        servers = self.raw.get("authorisationservers", [])
        statements = self.raw.get("softwarestatements", [])
        resources = [r for s in servers for r in s["ApiResources"]]
        return {
            "organisations": [o["OrganisationId"] for o in self.raw.get("organisations", [])],
            "authorisation_servers": [s["AuthorisationServerId"] for s in servers],
            "api_resources": [r["ApiResourceId"] for r in resources],
            "api_discovery_endpoints": [e["ApiDiscoveryId"] for r in resources for e in r["ApiDiscoveryEndpoints"]],
            "authorisation_server_certifications": [
                c["CertificationId"] for s in servers for c in s["AuthorisationServerCertifications"]
            ],
            "software_statements": [s["SoftwareStatementId"] for s in statements],
            "software_statement_certifications": [
                c["CertificationId"] for s in statements for c in s["SoftwareStatementCertifications"]
            ],
            "software_statement_certificates": [c["kid"] for c in self.raw.get("ss-certificates", [])],
            "organisation_certificates": [c["kid"] for c in self.raw.get("org-certificates", [])],
        }


MakeClient = Callable[..., RaidiamClient]


@pytest.fixture
def sb(fresh_sandbox_counters: Sandbox) -> Sandbox:
    return fresh_sandbox_counters


@pytest.fixture
def make_client(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeClient]:
    """Clients built from real Airflow connections of the sandbox clients, with a chosen retry policy."""
    clients: list[RaidiamClient] = []

    def make(client: str = "tls", *, retry: RetryPolicy = FAST, **overrides: Any) -> RaidiamClient:
        conn_id = f"raidiam_faults_{len(clients)}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", sandbox.connection_uri_env(client, **overrides))
        settings = RaidiamHook(raidiam_conn_id=conn_id).settings
        built = RaidiamClient(settings, on_secret=mask_secret, retry=retry)
        clients.append(built)
        return built

    yield make
    for built in clients:
        built.close()


@pytest.fixture
def retry_log(caplog: pytest.LogCaptureFixture) -> Callable[[str], list[logging.LogRecord]]:
    """The provider's retry log lines, by what was retried (``"GET "`` or ``"Token request"``)."""
    caplog.set_level(logging.INFO, logger="airflow_provider_raidiam")

    def retries(prefix: str) -> list[logging.LogRecord]:
        return [
            record
            for record in caplog.records
            if record.name == "airflow_provider_raidiam.retry"
            and isinstance(record.args, tuple)
            and str(record.args[0]).startswith(prefix)
        ]

    return retries


def api_faults(stats: dict[str, Any]) -> dict[str, int]:
    """Faults the Directory emulator injected that a client must retry (latency excluded)."""
    return {kind: count for kind, count in stats["faults_injected"].items() if kind != "latency"}


def assert_tables_match(frames: Mapping[str, pd.DataFrame], truth: dict[str, Any]) -> int:
    """Every snapshot table has exactly the server's ids (no row lost, none duplicated); returns the rows."""
    rows = 0
    for table, (key, id_column) in SNAPSHOT_TRUTH.items():
        frame = frames[table]
        expected = truth[key]
        assert len(frame) == expected["count"], f"{table}: {len(frame)} rows, the server has {expected['count']}"
        assert sorted(frame[id_column].astype(str)) == expected["ids"], f"{table}: ids differ from the server's"
        assert frame[id_column].is_unique or len(set(expected["ids"])) < expected["count"], f"{table}: duplicates"
        rows += len(frame)
    return rows


@pytest.fixture(scope="module")
def reference_frames(sandbox: Sandbox) -> dict[str, pd.DataFrame]:
    """The snapshot tables read once without any fault (the values every faulty run must reproduce)."""
    from airflow_provider_raidiam import discovery
    from airflow_provider_raidiam.auth.token_client import TOKEN_CACHE
    from airflow_provider_raidiam.connection import RaidiamSettings

    sandbox.reset_stats()
    conn = sandbox.connection("tls", page_size=PAGE_SIZE)
    settings = RaidiamSettings.from_fields(host=conn["host"], login=conn["login"], extra=conn["extra"])
    with RaidiamClient(settings, retry=FAST) as client:
        frames = read_tables(client, SNAPSHOT_TABLES)
    assert_tables_match(frames, sandbox.ground_truth())
    assert sandbox.api_stats()["faults_injected"] == {}
    discovery.clear_cache()
    TOKEN_CACHE.clear()
    return frames


# ---- the fault mix -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_snapshot_under_every_fault_at_once_equals_ground_truth(
    sb: Sandbox,
    make_client: MakeClient,
    retry_log: Callable[[str], list[logging.LogRecord]],
    reference_frames: dict[str, pd.DataFrame],
    caplog: pytest.LogCaptureFixture,
    seed: int,
) -> None:
    mid_paging = seed % 2 == 1  # odd seeds: the Directory changes while /organisations is paged
    truth_before = sb.ground_truth()
    # Tokens live 4 s: renewed several times per run. (On this 2-core machine under load, issuing a token
    # has taken up to 3.4 s; a 2 s token then arrives expired, and no client can use it.)
    sb.set_as_faults(token_ttl=4, token_failure_every=2, latency_ms=10)
    sb.set_gateway(mode="fixed-window", rate=GATEWAY_RATE, retry_after=RETRY_AFTER_MODES[seed % 3])
    sb.set_api_faults(
        seed=seed,
        error_rate=0.1,
        retry_after=RETRY_AFTER_MODES[seed % 3],
        retry_after_seconds=1,
        drop_rate=0.05,
        latency_ms=3,
        mutate_after_requests=1 if mid_paging else 400,
    )
    client = make_client(page_size=PAGE_SIZE)
    reader = RecordingReader(client)
    started = time.monotonic()

    frames = read_tables(reader, SNAPSHOT_TABLES)

    elapsed = time.monotonic() - started
    truth_after = sb.ground_truth()  # the mutation changed it: read it after the run
    api, auth = sb.api_stats(), sb.as_stats()

    # The data changed exactly once, and the snapshot is consistent with the organisation list it read.
    assert api["mutations"] == truth_after["meta"]["mutations"] == 1
    added = set(truth_after["organisations"]["ids"]) - set(truth_before["organisations"]["ids"])
    assert len(added) == 1
    expected = truth_after if mid_paging else truth_before
    rows = assert_tables_match(frames, expected)
    raw = reader.raw_ids()
    for table, (key, _id_column) in SNAPSHOT_TRUTH.items():
        assert sorted(raw[table]) == expected[key]["ids"], f"{table}: raw records lost or duplicated"
    original = set(truth_before["organisations"]["ids"])
    for table, reference in reference_frames.items():
        kept = frames[table][frames[table]["organisation_id"].isin(original)].reset_index(drop=True)
        pd.testing.assert_frame_equal(kept, reference, obj=table)  # same values, same (stable) order
    assert (added <= set(frames["organisations"]["organisation_id"])) is mid_paging

    # Every kind of fault really happened, and every one was retried: no fewer, no more.
    faults = api_faults(api)
    assert {"500", "502", "503", "504", "drop"} <= set(faults), faults
    refused = sb.gateway()["refused"]
    assert refused > 0, "the gateway's rate limit was reached"
    assert api["requests_by_status"]["429"] == refused
    assert api["faults_injected"]["latency"] == api["requests"] - api["rejected_tokens"] - refused
    api_retries = retry_log("GET ")
    assert len(api_retries) == sum(faults.values()) + refused, (faults, refused, len(api_retries))

    # Tokens expired mid-run and were renewed, through injected token-endpoint failures.
    token_ok, token_failed = (
        auth["token_responses_by_status"].get("200", 0),
        auth["token_responses_by_status"].get("503", 0),
    )
    assert token_ok >= 2, f"no renewal in {elapsed:.1f}s with a 4 s token lifetime: {auth}"
    assert token_failed >= 1
    assert len(retry_log("Token request")) == token_failed
    # Every token issued was used, except one the API refused as expired (delayed in flight) and renewed.
    assert token_ok - api["rejected_tokens"] <= api["tokens_seen"] <= token_ok
    renewals_after_401 = [r for r in caplog.records if "renewing the access token" in r.getMessage()]
    assert len(renewals_after_401) == api["rejected_tokens"]

    print(
        f"\n[fault-mix] seed={seed} retry_after={RETRY_AFTER_MODES[seed % 3]} "
        f"mutation={'mid-paging' if mid_paging else 'mid-fan-out'} elapsed={elapsed:.1f}s "
        f"requests={api['requests']} faults={faults} latency={api['faults_injected']['latency']} "
        f"gateway_429={refused} api_retries={len(api_retries)} token_requests={auth['token_requests']} "
        f"tokens_ok={token_ok} "
        f"token_503={token_failed} rejected_tokens={api['rejected_tokens']} rows={rows}"
    )


def test_many_threads_renewing_an_expired_token_make_one_request(sb: Sandbox, make_client: MakeClient) -> None:
    sb.set_as_faults(token_ttl=1)
    client = make_client()
    first = client.access_token()
    time.sleep(1.2)  # the token is now expired at the server too
    # A slow renewal that fails once, so all threads pile up behind it; the new token lives long.
    sb.set_as_faults(token_ttl=None, latency_ms=300, token_failures=1)
    barrier = threading.Barrier(32)

    def call(_index: int) -> int:
        barrier.wait()
        return len(client.get_json("/organisations", {"page": 0, "size": 1})["content"])

    with ThreadPoolExecutor(max_workers=32) as pool:
        assert list(pool.map(call, range(32))) == [1] * 32
    auth, api = sb.as_stats(), sb.api_stats()
    assert client.access_token() != first
    assert auth["token_responses_by_status"] == {"200": 2, "503": 1}  # first token, one renewal (retried once)
    assert api["tokens_seen"] == 1, "all 32 calls used the one renewed token"
    assert api["rejected_tokens"] == 0
    assert api["requests_by_status"] == {"200": 32}


# ---- one fault at a time -------------------------------------------------------------------------

FAULT_TEXT = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Upstream timeout",
}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_each_5xx_is_retried_and_reported_once_the_retries_are_spent(
    sb: Sandbox, make_client: MakeClient, retry_log: Callable[[str], list[logging.LogRecord]], status: int
) -> None:
    sb.set_api_faults(seed=status, error_rate=0.5, error_statuses=[status])
    client = make_client()
    for page in range(20):
        assert len(client.get_json("/organisations", {"page": page % 5, "size": 2})["content"]) == 2
    stats = sb.api_stats()
    assert stats["requests_by_status"] == {"200": 20, str(status): stats["faults_injected"][str(status)]}
    assert len(retry_log("GET ")) == stats["faults_injected"][str(status)] > 0

    sb.reset_stats()
    sb.set_api_faults(error_rate=1.0, error_statuses=[status])
    failing = make_client(retry=RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.02))
    with pytest.raises(ApiError) as caught:
        failing.get_json("/organisations")
    assert caught.value.status == status
    assert FAULT_TEXT[status] in str(caught.value), "the server's errors message is shown"
    assert "kept failing after the retries" in str(caught.value)
    assert sb.api_stats()["requests_by_status"] == {str(status): 3}


class RecordingClock:
    """The real clock and sleep, recording every wait the client scheduled (thread-safe)."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(seconds)

    def policy(self, **settings: Any) -> RetryPolicy:
        return RetryPolicy(clock=Clock(now=time.monotonic, sleep=self.sleep), **settings)


def arrivals(sb: Sandbox) -> list[tuple[float, int]]:
    """(arrival time, status) of every Directory API request, from the emulator's own log."""
    return [(arrived, status) for arrived, status, _connection in sb.gateway()["requests"]]


@pytest.mark.parametrize("mode", ["seconds", "http-date"])
def test_429_waits_as_long_as_retry_after_says(
    sb: Sandbox, make_client: MakeClient, retry_log: Callable[[str], list[logging.LogRecord]], mode: str
) -> None:
    # Backoff alone would pause 0.1 s at most; Retry-After asks for 2 s (HTTP-date: rounded to the second).
    clock = RecordingClock()
    client = make_client(retry=clock.policy(max_wait=10.0))
    client.access_token()
    sb.set_api_faults(rate_limit_rate=1.0, retry_after=mode, retry_after_seconds=2)
    clearer = threading.Timer(0.5, sb.set_api_faults)  # the throttling ends while the client waits
    clearer.start()
    try:
        page = client.get_json("/organisations", {"page": 0, "size": 3})
    finally:
        clearer.join()
    assert len(page["content"]) == 3
    assert sb.api_stats()["requests_by_status"] == {"429": 1, "200": 1}
    (retry,) = retry_log("GET ")
    assert "HTTP 429" in retry.getMessage()
    (scheduled,) = client.throttle.pauses
    pause = scheduled.end - scheduled.start
    if mode == "seconds":
        assert pause == pytest.approx(2.0)
    else:
        assert 1.0 < pause <= 3.0
    assert len(clock.sleeps) == 1, "one sleep, until the pause ended"
    (refused_at, refused), (retried_at, ok) = arrivals(sb)
    assert (refused, ok) == (429, 200)
    assert retried_at - refused_at >= pause - 0.01, "the server saw the retry only after the pause"


def test_retry_after_is_capped(sb: Sandbox, make_client: MakeClient) -> None:
    clock = RecordingClock()
    client = make_client(retry=clock.policy(initial_wait=0.001, max_wait=0.3, throttle_timeout=1.0))
    client.access_token()
    sb.set_api_faults(rate_limit_rate=1.0, retry_after="seconds", retry_after_seconds=3600)
    with pytest.raises(ThrottledError) as caught:
        client.get_json("/organisations")
    assert caught.value.status == 429
    assert "throttle_timeout (1 s)" in str(caught.value)
    pauses = [pause.end - pause.start for pause in client.throttle.pauses]
    assert pauses, "it waited"
    assert pauses == pytest.approx([0.3] * len(pauses)), "pauses of max_wait (0.3 s), not one hour"
    assert sb.api_stats()["requests_by_status"] == {"429": len(pauses)}  # the last one paused the others too


def test_retries_are_bounded_by_the_calls_own_time(sb: Sandbox, make_client: MakeClient) -> None:
    clock = RecordingClock()
    client = make_client(retry=clock.policy(attempts=1000, max_elapsed=1.0, initial_wait=0.2, max_wait=0.3))
    client.access_token()
    sb.set_api_faults(error_rate=1.0)
    with pytest.raises(ApiError, match="kept failing after the retries"):
        client.get_json("/organisations")
    requests_made = sb.api_stats()["requests"]
    assert requests_made == len(clock.sleeps) + 1
    assert sum(clock.sleeps) < 1.0, "no wait scheduled past the call's max_elapsed"
    assert 2 <= requests_made <= 5, "stopped by time, long before 1000 attempts"


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/organisations/no-such-org", 404, "Organisation no-such-org not found"),
        ("/organisations?size=0", 400, "size must be between 1 and 50000"),
        ("/organisations?sort=Nope", 400, "cannot sort by unknown property 'Nope'"),
    ],
    ids=["404", "400-size", "400-sort"],
)
def test_other_4xx_fail_at_once_with_the_servers_message(
    sb: Sandbox,
    make_client: MakeClient,
    retry_log: Callable[[str], list[logging.LogRecord]],
    path: str,
    status: int,
    message: str,
) -> None:
    client = make_client()
    endpoint, _, query = path.partition("?")
    params = dict(item.split("=") for item in query.split("&")) if query else None
    with pytest.raises(ApiError) as caught:
        client.get_json(endpoint, params)
    assert caught.value.status == status
    assert caught.value.errors == [message]
    assert message in str(caught.value)
    assert sb.api_stats()["requests"] == 1, "no retry"
    assert retry_log("GET ") == []


def test_token_endpoint_503_is_retried_then_reported(
    sb: Sandbox, make_client: MakeClient, retry_log: Callable[[str], list[logging.LogRecord]]
) -> None:
    sb.set_as_faults(token_failures=2)
    assert make_client().access_token()
    assert sb.as_stats()["token_responses_by_status"] == {"503": 2, "200": 1}
    assert len(retry_log("Token request")) == 2

    sb.reset_stats()
    TOKEN_CACHE.clear()
    sb.set_as_faults(token_failures=10)
    client = make_client(retry=RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.02))
    with pytest.raises(TokenError) as caught:
        client.access_token()
    assert caught.value.error == "temporarily_unavailable"
    assert caught.value.status == 503
    assert "token_failures fault" in str(caught.value), "the server's error_description is shown"
    assert "overloaded" in str(caught.value)
    assert sb.as_stats()["token_responses_by_status"] == {"503": 3}


def test_total_size_moving_during_a_paged_read_restarts_it(
    sb: Sandbox, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    client.access_token()
    sb.set_api_faults(mutate_after_requests=1)  # after page 0 of the first read
    records = client.paginate("/organisations", page_size=PAGE_SIZE)
    truth = sb.ground_truth()["organisations"]
    assert truth["count"] == 301
    assert sorted(r["OrganisationId"] for r in records) == truth["ids"]
    # The first read stops at the first page that disagrees with page 0 (pages not started are cancelled),
    # so it made between 2 and 8 requests; the second read all 8.
    assert 8 + 2 <= sb.api_stats()["requests_by_route"]["/organisations"] <= 8 + 8
    assert [r.getMessage() for r in caplog.records if "totalSize" in r.getMessage()] == [
        "totalSize of /organisations changed during the read; reading it again from page 0"
    ]


def test_total_size_that_keeps_moving_is_reported(sb: Sandbox, make_client: MakeClient) -> None:
    client = make_client()
    client.access_token()
    sb.set_api_faults(mutate_after_requests=1, mutate_repeat=True)  # a change after every request
    with pytest.raises(PaginationError, match="totalSize kept changing while the pages were read") as caught:
        client.paginate("/organisations", page_size=PAGE_SIZE)
    assert "run the task again later" in str(caught.value)
    # Three reads (MAX_RESTARTS + 1), each of page 0 and at least the page that saw the move; a read stops as
    # soon as a page disagrees with page 0, so none reads more pages than there are.
    pages = -(-len(sb.ground_truth()["organisations"]["ids"]) // PAGE_SIZE)
    assert 3 * 2 <= sb.api_stats()["requests_by_route"]["/organisations"] <= 3 * pages


def test_a_connection_dropped_mid_body_is_retried(
    sb: Sandbox, make_client: MakeClient, retry_log: Callable[[str], list[logging.LogRecord]]
) -> None:
    sb.set_api_faults(seed=3, drop_rate=0.5)
    client = make_client()
    ids = [
        r["OrganisationId"]
        for page in range(10)
        for r in client.get_json("/organisations", {"page": page, "size": 30})["content"]
    ]
    assert sorted(ids) == sb.ground_truth()["organisations"]["ids"]
    drops = sb.api_stats()["faults_injected"]["drop"]
    retries = retry_log("GET ")
    assert len(retries) == drops > 0
    assert all(("ChunkedEncodingError" in r.getMessage() or "ConnectionError" in r.getMessage()) for r in retries)

    sb.reset_stats()
    sb.set_api_faults(drop_rate=1.0)
    failing = make_client(retry=RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.02))
    with pytest.raises(ApiError, match="Check network access to the server") as caught:
        failing.get_json("/organisations")
    assert caught.value.status is None
    assert sb.api_stats()["faults_injected"]["drop"] == 3


def test_latency_beyond_the_timeout_is_retried_as_a_timeout(
    sb: Sandbox, make_client: MakeClient, retry_log: Callable[[str], list[logging.LogRecord]]
) -> None:
    client = make_client(retry=RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.02), timeout=0.3)
    client.access_token()
    sb.set_api_faults(latency_ms=600)
    with pytest.raises(ApiError, match="ReadTimeout"):
        client.get_json("/organisations", {"page": 0, "size": 1})
    assert ["ReadTimeout" in r.getMessage() for r in retry_log("GET ")] == [True]
    assert sb.api_stats()["faults_injected"]["latency"] == 2


# ---- atomic outputs ------------------------------------------------------------------------------


def run_operator(output: Path, tables: list[str], conn_id: str = "raidiam_default", **kwargs: Any) -> Any:
    operator = RaidiamDirectoryOperator(
        task_id="snapshot", tables=tables, raidiam_conn_id=conn_id, output_uri=output.as_uri(), **kwargs
    )
    return operator.execute(context={})  # type: ignore[arg-type]


def files_in(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def default_conn(sb: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_DEFAULT", sb.connection_uri_env("tls"))
    return sb


AS_TABLES = ["organisations", "authorisation_servers", "api_resources", "api_discovery_endpoints"]


def test_a_write_failing_midway_leaves_no_file(
    default_conn: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "organisations.parquet").write_bytes(b"previous run")
    real_to_parquet = pd.DataFrame.to_parquet
    written: list[int] = []

    def failing_to_parquet(frame: pd.DataFrame, handle: Any, **kwargs: Any) -> None:
        if len(written) == 2:  # the third table: half a file, then the disk is full
            handle.write(b"PAR1" + b"\0" * 1000)
            raise OSError(28, "No space left on device")
        real_to_parquet(frame, handle, **kwargs)
        written.append(len(frame))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", failing_to_parquet)
    with pytest.raises(OSError, match="No space left on device"):
        run_operator(output, AS_TABLES)
    assert written, "two tables were written before the failure"
    assert files_in(output) == ["organisations.parquet"], "no temporary file, no partial table"
    assert (output / "organisations.parquet").read_bytes() == b"previous run", "older output untouched"


def test_a_rename_failing_midway_takes_back_the_tables_already_renamed(
    default_conn: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out"
    real_rename = ObjectStoragePath.rename
    renamed: list[str] = []

    def flaky_rename(self: ObjectStoragePath, target: Any, **kwargs: Any) -> Any:
        if len(renamed) == 2:
            raise OSError(5, "Input/output error (the object store went away)")
        result = real_rename(self, target, **kwargs)
        renamed.append(str(target))
        return result

    monkeypatch.setattr(ObjectStoragePath, "rename", flaky_rename)
    with pytest.raises(OSError, match="object store went away"):
        run_operator(output, AS_TABLES)
    assert len(renamed) == 2
    assert files_in(output) == [], "neither temporary files nor a part of this run's tables"


@pytest.mark.parametrize(
    ("faults", "kwargs", "match"),
    [
        ({"error_rate": 1.0}, {}, "kept failing after the retries"),
        ({}, {"organisation_ids": ["no-such-org"]}, "Organisation no-such-org not found"),
    ],
    ids=["api-down", "permanent-404"],
)
def test_a_failed_read_writes_nothing(
    default_conn: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    faults: dict[str, Any],
    kwargs: dict[str, Any],
    match: str,
) -> None:
    fast_client = functools.cached_property(lambda hook: RaidiamClient(hook.settings, retry=FAST))
    fast_client.__set_name__(RaidiamHook, "client")
    monkeypatch.setattr(RaidiamHook, "client", fast_client)
    default_conn.set_api_faults(**faults)
    output = tmp_path / "out"
    with pytest.raises(ApiError, match=match):
        run_operator(output, ["organisations", "authorisation_servers"], **kwargs)
    assert files_in(tmp_path) == []
