"""A Directory that lies about its pages costs little and loses nothing, proven against the sandbox.

The Directory emulator (real mTLS, real tokens from oidc-provider) is told to lie with its paging faults
(``page_totals``: envelope counts replaced; ``page_shift``: later pages served one record back). Every
claim is checked on the server's side: the emulator's own request counters say how many pages were
asked for. The memory claim is measured in a child process (its peak RSS), never with a clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_raidiam.client import RaidiamClient
from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.exceptions import ConfigurationError, DataIntegrityError, PaginationError
from airflow_provider_raidiam.operators.directory import RaidiamApiOperator, RaidiamDirectoryOperator
from raidiam_sandbox import Sandbox

pytestmark = pytest.mark.integration

ORGANISATIONS = 300
"""The session sandbox's organisations (see ``tests/integration/conftest.py``)."""
PAGE_SIZE = 40


def settings_of(sandbox: Sandbox, **extra: Any) -> RaidiamSettings:
    connection = sandbox.connection("tls")
    return RaidiamSettings.from_fields(
        host=connection["host"],
        login=connection["login"],
        password=connection.get("password"),
        extra={**connection["extra"], **extra},
    )


@pytest.fixture
def client(fresh_sandbox_counters: Sandbox) -> Iterator[RaidiamClient]:
    with RaidiamClient(settings_of(fresh_sandbox_counters)) as raidiam:
        raidiam.access_token()
        yield raidiam


def organisation_pages_served(sandbox: Sandbox) -> int:
    served: int = sandbox.api_stats()["requests_by_route"].get("/organisations", 0)
    return served


def test_total_pages_that_contradicts_total_size_costs_one_request(
    fresh_sandbox_counters: Sandbox, client: RaidiamClient
) -> None:
    # The example: before the fix, 20,000 authenticated GETs and then OK.
    fresh_sandbox_counters.set_api_faults(page_totals={"totalPages": 20000, "totalSize": 1})

    with pytest.raises(PaginationError, match="page 0 says totalPages 20000 for totalSize 1 in pages of 40"):
        client.paginate("/organisations", page_size=PAGE_SIZE)

    assert organisation_pages_served(fresh_sandbox_counters) == 1


def test_more_pages_than_max_pages_cost_one_request(fresh_sandbox_counters: Sandbox, client: RaidiamClient) -> None:
    # 3,000,000 pages whose counts agree: before the fix, 3,000,000 futures were submitted up front.
    totals = {"totalPages": 3_000_000, "totalSize": 3_000_000 * PAGE_SIZE}
    fresh_sandbox_counters.set_api_faults(page_totals=totals)

    with pytest.raises(PaginationError, match=r"3000000 pages of 40 .* are more than max_pages 10000"):
        client.paginate("/organisations", page_size=PAGE_SIZE)

    assert organisation_pages_served(fresh_sandbox_counters) == 1


CHILD = textwrap.dedent(
    """
    import dataclasses, json, resource, sys
    from airflow_provider_raidiam.client import RaidiamClient
    from airflow_provider_raidiam.connection import RaidiamSettings
    from airflow_provider_raidiam.directory.paging import read_all_pages

    def status_kib(field):
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

    fields = json.loads(sys.argv[1])
    # max_pages past the claim (more than a connection may set), so only lazy paging keeps the read cheap.
    settings = dataclasses.replace(RaidiamSettings.from_fields(**fields), max_pages=5_000_000)
    with RaidiamClient(settings) as client:
        client.get_json("/organisations", {"page": 0, "size": 1})  # warm up: TLS, token
        # A safety net for the machine should paging regress: 2 GiB more address space at most.
        resource.setrlimit(
            resource.RLIMIT_AS, (status_kib("VmSize") * 1024 + 2 * 1024**3, resource.getrlimit(resource.RLIMIT_AS)[1])
        )
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # restart the peak RSS (VmHWM) from here
        before = status_kib("VmHWM")
        try:
            read_all_pages(client, "/organisations", None, 100)
            error = None
        except BaseException as caught:
            error = f"{type(caught).__name__}: {caught}"
        peak = status_kib("VmHWM")
    print(json.dumps({"error": error, "before_kib": before, "peak_kib": peak}))
    """
)


def test_three_million_claimed_pages_stay_bounded_in_requests_and_memory(fresh_sandbox_counters: Sandbox) -> None:
    # max_pages raised past the claim, so only lazy paging keeps this cheap: 300 organisations fill
    # pages 0 to 2 (of 100); page 3 is empty where 100 records were promised, and the read stops there.
    sandbox = fresh_sandbox_counters
    sandbox.set_api_faults(page_totals={"totalPages": 3_000_000, "totalSize": 300_000_000})
    connection = sandbox.connection("tls")
    fields = {key: connection.get(key) for key in ("host", "login", "password")} | {"extra": connection["extra"]}

    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(fields)], capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"].startswith("PaginationError: /organisations page 3: 0 records"), result["error"]
    max_workers = settings_of(sandbox).max_workers
    served = organisation_pages_served(sandbox)
    assert served <= 1 + 1 + 3 + 2 * max_workers, "warm-up, page 0, pages 1-3, then one window of pages at most"
    growth_mib = (result["peak_kib"] - result["before_kib"]) / 1024
    assert growth_mib < 64, f"peak RSS grew by {growth_mib:.0f} MiB during the read"


def test_a_page_shift_that_repeats_a_record_fails_the_table_and_writes_nothing(
    fresh_sandbox_counters: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages after the first come one record back: the last record of page 0 comes again, the very last
    # organisation never comes, and every count adds up. Before the fix: 299 rows and no error.
    sandbox = fresh_sandbox_counters
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_PAGING", sandbox.connection_uri_env("tls"))
    sandbox.set_api_faults(page_shift=True)
    ids = sandbox.ground_truth()["organisations"]["ids"]
    output = tmp_path / "out"
    operator = RaidiamDirectoryOperator(
        task_id="shifted",
        tables=["organisations", "authorisation_servers"],
        raidiam_conn_id="raidiam_paging",
        filters={"page_size": PAGE_SIZE},
        output_uri=output.as_uri(),
    )

    with pytest.raises(DataIntegrityError) as caught:
        operator.execute(context={})  # type: ignore[arg-type]

    assert caught.value.table == "organisations"
    assert caught.value.examples == [f"organisation_id={ids[PAGE_SIZE - 1]!r}"]
    assert "another record was lost" in str(caught.value)
    routes = sandbox.api_stats()["requests_by_route"]
    assert routes["/organisations"] == ORGANISATIONS // PAGE_SIZE + 1  # every page once, no restart
    assert sum(count for route, count in routes.items() if route != "/organisations") == 0, "no fan-out"
    assert not list(tmp_path.rglob("*"))


def test_the_page_shift_fault_really_loses_a_record(fresh_sandbox_counters: Sandbox, client: RaidiamClient) -> None:
    """The paging layer alone cannot see it (the counts add up): the emulator fault does what it says."""
    fresh_sandbox_counters.set_api_faults(page_shift=True)
    ids = fresh_sandbox_counters.ground_truth()["organisations"]["ids"]

    records = client.paginate("/organisations", page_size=PAGE_SIZE)

    read = [record["OrganisationId"] for record in records]
    assert len(read) == ORGANISATIONS
    assert read.count(ids[PAGE_SIZE - 1]) == 2
    assert ids[-1] not in read


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"table_name": "../escaped"}, "table_name '../escaped' cannot be a file name"),
        ({"output_uri_suffix": "/../escaped"}, "contains a '..' segment"),
        ({"output_uri_suffix": "/%252e%252e/escaped"}, "contains a '..' segment"),
    ],
    ids=["table-name", "output-uri", "output-uri-double-encoded"],
)
def test_an_output_outside_its_folder_is_refused_before_any_request(
    fresh_sandbox_counters: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    arguments: dict[str, Any],
    says: str,
) -> None:
    sandbox = fresh_sandbox_counters
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_PAGING", sandbox.connection_uri_env("tls"))
    output_uri = (tmp_path / "out").as_uri() + arguments.pop("output_uri_suffix", "")
    operator = RaidiamApiOperator(
        task_id="escape",
        endpoint="/organisations",
        raidiam_conn_id="raidiam_paging",
        output_uri=output_uri,
        **arguments,
    )

    with pytest.raises(ConfigurationError) as caught:
        operator.execute(context={})  # type: ignore[arg-type]

    assert says in str(caught.value)
    assert sandbox.api_stats()["requests"] == 0
    assert sandbox.as_stats()["token_requests"] == 0
    assert not list(tmp_path.rglob("*"))
