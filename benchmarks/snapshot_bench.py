"""Full Directory snapshot: the provider, a hand-written sequential script and a raw thread-pool floor.

One command (``bash benchmarks/run.sh``, or ``python benchmarks/snapshot_bench.py``) starts the local
sandbox (real oidc-provider authorisation server, Directory emulator over mTLS) with a seeded data set,
then, for each added latency, measures side by side against the same servers:

``provider``
    ``RaidiamHook.get_pandas_dfs(SNAPSHOT_TABLES)``: the tables of the ``raidiam_directory_snapshot`` DAG,
    discovery, token, TLS set-up and DataFrame building included.
``handwritten``
    What a user would otherwise write with ``requests``: one ``Session`` (``cert=``, ``verify=`` the CA),
    discovery, one token, a page loop over ``/organisations``, nested loops over the sub-resources, one
    request after another, then ``pandas.json_normalize``.
``floor``
    A ``requests.Session`` shared by a thread pool of the same size as the provider's, with a token
    fetched before the clock starts, GETting exactly the provider's URL set (computed from the data set and
    checked against the server's per-route counters) as one flat list, and building nothing.

``throttled`` (issue #10)
    The provider alone, with the emulator's gateway limited to R requests per second (``--throttle-rates``,
    at ``--throttle-latency-ms``; one-second windows without ``Retry-After``, as Raidiam's gateway
    documents none; ``--throttle-mode token-bucket`` for a bucket of R/5). The client is not told R: its
    time is compared with the ideal ``requests / R``, and its attempts per successful request are counted
    by the server.

Every measured run is a fresh subprocess (no process-level cache helps any variant; its peak RSS is its
own). Server counters are reset before and read after each run; handshakes are counted by the servers.
Each variant is repeated ``--repeat`` times (the hand-written one ``--handwritten-repeat`` times, it is
slow) and the median is reported. The table-building cost (JSON already in memory, no network) is
measured on its own, per 100k rows.

Writes ``benchmarks/results/latest.json`` and ``benchmarks/results/latest.md``; prints the table and the
targets of issue #5 (PASS/FAIL). ``--check`` makes a failed target exit non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
CONN_ID = "raidiam_bench"
CHILD_TIMEOUT = 3600.0

# Targets of issue #5.
TARGET_LATENCY_MS = 20.0
MAX_PROVIDER_OVER_FLOOR = 1.2
MIN_HANDWRITTEN_OVER_PROVIDER = 8.0
# Targets of issue #10 (throttled gateway, default settings).
MAX_THROTTLED_OVER_IDEAL = 1.15
MAX_ATTEMPTS_PER_SUCCESS = 1.15

ORG = "/organisations/{OrganisationId}"
ROUTE_PAGES = "/organisations"
ROUTE_SERVERS = ORG + "/authorisationservers"
ROUTE_STATEMENTS = ORG + "/softwarestatements"
ROUTE_ORG_CERTS = ORG + "/certificates"
ROUTE_SS_CERTS = ORG + "/softwarestatements/{SoftwareStatementId}/certificates"


def snapshot_tables() -> list[str]:
    """The tables of the snapshot DAG (``SNAPSHOT_TABLES`` of the catalogue, which the DAG uses)."""
    from airflow_provider_raidiam.directory.catalogue import SNAPSHOT_TABLES

    return list(SNAPSHOT_TABLES)


# ---- the fetch plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The API calls of a full snapshot: (path, query) in the provider's order, and counts per route."""

    calls: list[tuple[str, dict[str, Any]]]
    by_route: dict[str, int]

    @property
    def requests(self) -> int:
        return len(self.calls)


def snapshot_plan(dataset: Any, page_size: int) -> Plan:
    """The calls a full snapshot makes, from the sandbox data set (the emulator's ground truth).

    Pages of ``/organisations``, then per organisation its authorisation servers, software statements and
    certificates, then per software statement its certificates (paths quoted as the provider quotes them).
    """
    orgs = [str(o["OrganisationId"]) for o in dataset.organisations]
    pages = max(1, math.ceil(len(orgs) / page_size))
    calls: list[tuple[str, dict[str, Any]]] = [("/organisations", {"page": p, "size": page_size}) for p in range(pages)]
    for suffix in ("authorisationservers", "softwarestatements", "certificates"):
        calls += [(f"/organisations/{quote(o, safe='')}/{suffix}", {}) for o in orgs]
    for org in orgs:
        for statement in dataset.software_statements[org]:
            ss = quote(str(statement["SoftwareStatementId"]), safe="")
            calls.append((f"/organisations/{quote(org, safe='')}/softwarestatements/{ss}/certificates", {}))
    statements = len(calls) - pages - 3 * len(orgs)
    by_route = {
        ROUTE_PAGES: pages,
        ROUTE_SERVERS: len(orgs),
        ROUTE_STATEMENTS: len(orgs),
        ROUTE_ORG_CERTS: len(orgs),
        ROUTE_SS_CERTS: statements,
    }
    return Plan(calls, by_route)


def url_of(base: str, path: str, query: Mapping[str, Any]) -> str:
    return f"{base}{path}" + (f"?{urlencode(query)}" if query else "")


# ---- memory helpers (used in the children) -------------------------------------------------------


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository, so that the results do not record this machine's paths."""
    return os.path.relpath(path.resolve(), ROOT)


def rss_mb() -> float:
    """Current resident set size in MiB (Linux ``/proc``; 0 when unavailable)."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return 0.0


def peak_rss_mb() -> float:
    """High-water mark of this process's RSS in MiB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def frames_mb(frames: Mapping[str, Any]) -> float:
    return sum(float(f.memory_usage(deep=True).sum()) for f in frames.values()) / 2**20


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- the variants (each runs in its own subprocess) -----------------------------------------------


def run_provider(spec: dict[str, Any]) -> dict[str, Any]:
    """The provider, as the snapshot DAG's operator uses it (``RaidiamHook.get_pandas_dfs``)."""
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(spec["connection"])
    import pandas  # noqa: F401  (imported before the clock, like in an Airflow worker)

    from airflow_provider_raidiam.hooks.raidiam import RaidiamHook

    base = rss_mb()
    cpu0, started = cpu_s(), time.perf_counter()
    with RaidiamHook(raidiam_conn_id=CONN_ID) as hook:
        frames = hook.get_pandas_dfs(spec["tables"])
    wall = time.perf_counter() - started
    import airflow_provider_raidiam

    return {
        "wall_s": wall,
        "cpu_s": cpu_s() - cpu0,
        "rss_base_mb": base,
        "rss_peak_mb": peak_rss_mb(),
        "rows": {name: len(frame) for name, frame in frames.items()},
        "tables_mb": frames_mb(frames),
        "package": repo_relative(Path(airflow_provider_raidiam.__file__).parent),
    }


def run_handwritten(spec: dict[str, Any]) -> dict[str, Any]:
    """A reasonable hand-written script: one Session, one token, page and nested loops, json_normalize."""
    import pandas as pd
    import requests

    base = rss_mb()
    cpu0, started = cpu_s(), time.perf_counter()
    cert, ca, api = (spec["cert"], spec["key"]), spec["ca"], spec["api_base_url"]
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the sandbox is on 127.0.0.1

    def get(url: str, **kwargs: Any) -> Any:
        response = session.get(url, cert=cert, verify=ca, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    discovery = get(spec["issuer"] + "/.well-known/openid-configuration")
    token_url = discovery.get("mtls_endpoint_aliases", {}).get("token_endpoint", discovery["token_endpoint"])
    form = {"grant_type": "client_credentials", "client_id": spec["client_id"], "scope": spec["scope"]}
    response = session.post(token_url, data=form, cert=cert, verify=ca, timeout=30)
    response.raise_for_status()
    session.headers["Authorization"] = "Bearer " + response.json()["access_token"]

    organisations: list[dict[str, Any]] = []
    page = 0
    while True:
        body = get(f"{api}/organisations", params={"page": page, "size": spec["page_size"]})
        organisations += body["content"]
        page += 1
        if page >= body["totalPages"]:
            break
    servers: list[dict[str, Any]] = []
    statements: list[dict[str, Any]] = []
    org_certs: list[dict[str, Any]] = []
    ss_certs: list[dict[str, Any]] = []
    for org in organisations:
        org_id = org["OrganisationId"]
        for server in get(f"{api}/organisations/{org_id}/authorisationservers"):
            servers.append({**server, "OrganisationId": org_id})
        for statement in get(f"{api}/organisations/{org_id}/softwarestatements"):
            statements.append({**statement, "OrganisationId": org_id})
        for certificate in get(f"{api}/organisations/{org_id}/certificates"):
            org_certs.append({**certificate, "OrganisationId": org_id})
    for statement in statements:
        org_id, ss_id = statement["OrganisationId"], statement["SoftwareStatementId"]
        for certificate in get(f"{api}/organisations/{org_id}/softwarestatements/{ss_id}/certificates"):
            ss_certs.append({**certificate, "OrganisationId": org_id, "SoftwareStatementId": ss_id})
    fetched = time.perf_counter()
    frames = normalise(pd, organisations, servers, statements, org_certs, ss_certs)
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "fetch_s": fetched - started,
        "build_s": wall - (fetched - started),
        "cpu_s": cpu_s() - cpu0,
        "rss_base_mb": base,
        "rss_peak_mb": peak_rss_mb(),
        "rows": {name: len(frame) for name, frame in frames.items()},
        "tables_mb": frames_mb(frames),
    }


def normalise(
    pd: Any,
    organisations: list[dict[str, Any]],
    servers: list[dict[str, Any]],
    statements: list[dict[str, Any]],
    org_certs: list[dict[str, Any]],
    ss_certs: list[dict[str, Any]],
) -> dict[str, Any]:
    """The hand-written script's tables: ``pandas.json_normalize`` with record paths for nested lists."""

    def normalize(records: list[dict[str, Any]], **kwargs: Any) -> Any:
        if "record_path" in kwargs:
            kwargs["meta_prefix"] = "parent."  # nested records may repeat their parent's id
        return pd.json_normalize(records, **kwargs)

    return {
        "organisations": normalize(organisations),
        "authorisation_servers": normalize(servers),
        "api_resources": normalize(servers, record_path="ApiResources", meta=["AuthorisationServerId"]),
        "api_discovery_endpoints": normalize(
            servers,
            record_path=["ApiResources", "ApiDiscoveryEndpoints"],
            meta=["AuthorisationServerId", ["ApiResources", "ApiResourceId"]],
        ),
        "authorisation_server_certifications": normalize(
            servers, record_path="AuthorisationServerCertifications", meta=["AuthorisationServerId"]
        ),
        "software_statements": normalize(statements),
        "software_statement_certifications": normalize(
            statements, record_path="SoftwareStatementCertifications", meta=["SoftwareStatementId"]
        ),
        "software_statement_certificates": normalize(ss_certs),
        "organisation_certificates": normalize(org_certs),
    }


def run_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """Same URLs, same concurrency, token fetched before the clock starts, nothing parsed or built."""
    from concurrent.futures import ThreadPoolExecutor

    import requests
    from requests.adapters import HTTPAdapter

    workers = spec["workers"]
    session = requests.Session()
    session.trust_env = False
    session.cert, session.verify = (spec["cert"], spec["key"]), spec["ca"]
    session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=workers))
    discovery = session.get(spec["issuer"] + "/.well-known/openid-configuration", timeout=30).json()
    token_url = discovery["mtls_endpoint_aliases"]["token_endpoint"]
    form = {"grant_type": "client_credentials", "client_id": spec["client_id"], "scope": spec["scope"]}
    token = session.post(token_url, data=form, timeout=30).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    urls: list[str] = spec["urls"]

    def fetch(url: str) -> int:
        response = session.get(url, headers=headers, timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} -> {response.status_code}")
        return len(response.content)

    base = rss_mb()
    cpu0, started = cpu_s(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        received = sum(pool.map(fetch, urls))
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "cpu_s": cpu_s() - cpu0,
        "rss_base_mb": base,
        "rss_peak_mb": peak_rss_mb(),
        "bytes": received,
        "rows": {},
        "tables_mb": 0.0,
    }


def run_build(spec: dict[str, Any]) -> dict[str, Any]:
    """Table building alone: the snapshot's JSON already parsed in memory, no network.

    The responses are produced by the emulator's own route handlers and parsed once up front; then the
    provider's ``read_tables`` runs over an in-memory reader (``--build-repeat`` times, median), and the
    hand-written script's ``json_normalize`` over the same records. A last provider run under
    A first, untimed run gives the peak memory allocated while building (``tracemalloc`` for Python and
    numpy, plus the Arrow memory pool's peak for the string columns, which ``tracemalloc`` does not see),
    against the final tables' size.
    """
    import tracemalloc

    import pandas as pd
    import pyarrow

    from airflow_provider_raidiam.directory.catalogue import read_tables
    from raidiam_sandbox.dataset import build_dataset
    from raidiam_sandbox.directory_api import ROUTES, Router, View

    dataset = build_dataset(spec["seed"], spec["organisations"])
    view, router = View(dataset, 100), Router(ROUTES)
    plan = snapshot_plan(dataset, spec["page_size"])
    bodies: dict[tuple[str, str], Any] = {}
    for path, query in plan.calls:
        match = router.match(path)
        assert match is not None, path
        response = match[2](view, match[1], {k: [str(v)] for k, v in query.items()})
        bodies[path, urlencode(query)] = json.loads(response.body)
    del dataset, view

    reader = MemoryReader(bodies, spec["page_size"])
    # Memory first, in a run of its own (not timed): what Python and numpy allocate (tracemalloc) plus
    # what Arrow allocates for the string columns (its memory pool, unused before this run).
    pool = pyarrow.default_memory_pool()
    arrow_before = pool.max_memory() or 0
    gc.collect()
    tracemalloc.start()
    frames = read_tables(reader, spec["tables"])  # type: ignore[arg-type]
    _current, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    arrow_peak = max(0, (pool.max_memory() or 0) - arrow_before)
    size = frames_mb(frames)
    build_peak = (python_peak + arrow_peak) / 2**20
    frames = {}

    runs: list[float] = []
    for _ in range(spec["build_repeat"]):
        frames = {}
        gc.collect()
        started = time.perf_counter()
        frames = read_tables(reader, spec["tables"])  # type: ignore[arg-type]
        runs.append(time.perf_counter() - started)
    rows = sum(len(f) for f in frames.values())

    # The hand-written script's json_normalize over the same records.
    records = reader.records_for_normalise()
    normalise_runs: list[float] = []
    normalised: dict[str, Any] = {}
    for _ in range(spec["build_repeat"]):
        normalised = {}
        gc.collect()
        started = time.perf_counter()
        normalised = normalise(pd, *records)
        normalise_runs.append(time.perf_counter() - started)
    normalised_rows = sum(len(f) for f in normalised.values())
    provider_s, normalise_s = statistics.median(runs), statistics.median(normalise_runs)
    return {
        "rows": rows,
        "rows_by_table": {name: len(frame) for name, frame in frames.items()},
        "provider_s": provider_s,
        "provider_s_per_100k_rows": provider_s / rows * 100_000,
        "provider_runs_s": runs,
        "tables_mb": size,
        "build_peak_mb": build_peak,
        "build_peak_python_mb": python_peak / 2**20,
        "build_peak_arrow_mb": arrow_peak / 2**20,
        "build_peak_over_tables": build_peak / size if size else None,
        "json_normalize_rows": normalised_rows,
        "json_normalize_s": normalise_s,
        "json_normalize_s_per_100k_rows": normalise_s / normalised_rows * 100_000,
        "json_normalize_tables_mb": frames_mb(normalised),
        "responses": len(bodies),
    }


class MemoryReader:
    """A ``DirectoryReader`` over responses held in memory (sequential fan-out, pages from the store)."""

    def __init__(self, bodies: dict[tuple[str, str], Any], page_size: int) -> None:
        from airflow_provider_raidiam.directory.paging import PageLimits

        self.bodies = bodies
        self.page_limits = PageLimits(size=page_size)
        self.log = logging.getLogger(__name__)

    def url_for(self, endpoint: str) -> str:
        return endpoint

    def get_json(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.bodies[endpoint, urlencode(dict(params or {}))]

    def fan_out(self, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return [func(item) for item in items]

    def get_public_json(self, url: str) -> Any:
        raise AssertionError("the snapshot tables need no public endpoint")

    def records_for_normalise(self) -> tuple[list[dict[str, Any]], ...]:
        """The lists the hand-written script collects, from the same responses."""
        from airflow_provider_raidiam.directory.paging import read_all_pages

        organisations = read_all_pages(self, "/organisations")
        servers, statements, org_certs, ss_certs = [], [], [], []
        for org in organisations:
            org_id = org["OrganisationId"]
            base = f"/organisations/{quote(org_id, safe='')}"
            servers += [{**s, "OrganisationId": org_id} for s in self.get_json(base + "/authorisationservers")]
            statements += [{**s, "OrganisationId": org_id} for s in self.get_json(base + "/softwarestatements")]
            org_certs += [{**c, "OrganisationId": org_id} for c in self.get_json(base + "/certificates")]
        for statement in statements:
            org_id, ss_id = statement["OrganisationId"], statement["SoftwareStatementId"]
            path = f"/organisations/{quote(org_id, safe='')}/softwarestatements/{quote(ss_id, safe='')}/certificates"
            ss_certs += [{**c, "OrganisationId": org_id, "SoftwareStatementId": ss_id} for c in self.get_json(path)]
        return organisations, servers, statements, org_certs, ss_certs


VARIANTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "provider": run_provider,
    "handwritten": run_handwritten,
    "floor": run_floor,
    "build": run_build,
}


def child_main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    result = VARIANTS[spec["variant"]](spec)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# ---- the parent: sandbox, counters, repetitions, report ------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    sandbox: Any
    spec_base: dict[str, Any]
    urls: list[str]
    plan: Plan
    workdir: Path

    def set_latency(self, latency_ms: float, gateway: dict[str, Any] | None = None) -> None:
        self.sandbox.reset_stats()
        self.sandbox.set_api_faults(latency_ms=latency_ms)
        self.sandbox.set_as_faults(latency_ms=latency_ms)
        if gateway is not None:
            self.sandbox.set_gateway(**gateway)

    def run(self, variant: str, latency_ms: float, label: str, gateway: dict[str, Any] | None = None) -> dict[str, Any]:
        """One measured run of ``variant`` (``provider``, ``floor``, ``handwritten`` or an extra provider)."""
        kind = "provider" if variant in self.args.provider_paths else variant
        spec = {**self.spec_base, "variant": kind}
        if kind == "floor":
            spec["urls"] = self.urls
        spec_path = self.workdir / f"spec-{kind}.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        self.set_latency(latency_ms, gateway)
        before = self.sandbox.read_counters()
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            env=self.child_env(self.args.provider_paths.get(variant)),
            check=False,
        )
        process_s = time.perf_counter() - started
        after = self.sandbox.read_counters()
        if proc.returncode != 0:
            raise SystemExit(
                f"{variant} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
            )
        line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("RESULT "))
        result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
        result["process_s"] = process_s
        from raidiam_sandbox.runner import counters_since

        result["server"] = counters_since(before, after)
        server = result["server"]
        print(
            f"  {label:<28} {result['wall_s']:8.2f} s  {server['api_requests']:6d} req  "
            f"{server['token_requests']} token  {server['discovery_requests']} disc  "
            f"{server['tls_handshakes_total']:2d} TLS  peak {result['rss_peak_mb']:6.0f} MiB",
            flush=True,
        )
        return result

    def child_env(self, package_dir: str | None = None) -> dict[str, str]:
        """The children's environment: a private AIRFLOW_HOME, this checkout (or ``package_dir``) first."""
        env = dict(os.environ)
        env["AIRFLOW_HOME"] = str(self.workdir / "airflow-home")
        env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_dir, str(ROOT), env.get("PYTHONPATH")) if p)
        return env

    def run_build(self) -> dict[str, Any]:
        spec = {**self.spec_base, "variant": "build"}
        spec_path = self.workdir / "spec-build.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            env=self.child_env(),
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"build failed (exit {proc.returncode}):\n{proc.stderr[-5000:]}")
        line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("RESULT "))
        result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
        return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median wall/CPU/peak RSS over the runs, counts of the first run (and whether they all agree)."""
    walls = [r["wall_s"] for r in runs]
    first = runs[0]["server"]
    keys = ("api_requests", "token_requests", "discovery_requests", "tls_handshakes_total")
    return {
        "runs": len(runs),
        "wall_s": statistics.median(walls),
        "wall_s_min": min(walls),
        "wall_s_max": max(walls),
        "wall_s_all": walls,
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "rss_base_mb": statistics.median(r["rss_base_mb"] for r in runs),
        "rss_peak_mb": statistics.median(r["rss_peak_mb"] for r in runs),
        "rss_growth_mb": statistics.median(r["rss_peak_mb"] - r["rss_base_mb"] for r in runs),
        "tables_mb": runs[0].get("tables_mb", 0.0),
        "rows": runs[0].get("rows", {}),
        "build_s": statistics.median(r["build_s"] for r in runs) if "build_s" in runs[0] else None,
        **{k: first[k] for k in keys},
        "counts_stable": all(all(r["server"][k] == first[k] for k in keys) for r in runs),
        "max_tls_handshakes": max(r["server"]["tls_handshakes_total"] for r in runs),
        "max_token_requests": max(r["server"]["token_requests"] for r in runs),
        "max_discovery_requests": max(r["server"]["discovery_requests"] for r in runs),
        "tls_handshakes": first["tls_handshakes"],
        "requests_by_route": first["requests_by_route"],
        "requests_by_status": first["requests_by_status"],
        "tokens_seen_by_api": first["tokens_seen"],
        "ms_per_request": statistics.median(walls) / first["api_requests"] * 1000 if first["api_requests"] else None,
    }


def run_throttled(bench: Bench, args: argparse.Namespace, plan: Plan) -> list[dict[str, Any]]:
    """The provider against a gateway limited to each of ``--throttle-rates`` requests per second."""
    results: list[dict[str, Any]] = []
    for rate in args.throttle_rates:
        if args.throttle_mode == "token-bucket":
            gateway = {"mode": "token-bucket", "rate": rate, "burst": max(1.0, rate / 5)}
        else:
            gateway = {"mode": "fixed-window", "rate": rate}
        print(f"Throttled to {rate:g} requests/s ({args.throttle_mode}), {args.throttle_latency_ms:g} ms:", flush=True)
        runs = [
            bench.run("provider", args.throttle_latency_ms, f"provider #{i + 1} @{rate:g}/s", gateway)
            for i in range(args.throttle_repeat)
        ]
        ideal = plan.requests / rate
        for run in runs:
            statuses = run["server"]["requests_by_status"]
            run["ok_requests"] = statuses.get("200", 0)
            run["refused"] = statuses.get("429", 0)
            run["attempts_per_success"] = run["server"]["api_requests"] / max(1, run["ok_requests"])
            run["over_ideal"] = run["wall_s"] / ideal
        median = statistics.median(r["over_ideal"] for r in runs)
        worst_attempts = max(r["attempts_per_success"] for r in runs)
        print(f"  -> {median:.3f}x the ideal {ideal:.1f} s, {worst_attempts:.3f} attempts per success", flush=True)
        results.append(
            {
                "rate": rate,
                "mode": args.throttle_mode,
                "latency_ms": args.throttle_latency_ms,
                "ideal_s": ideal,
                "wall_s": statistics.median(r["wall_s"] for r in runs),
                "over_ideal": median,
                "attempts_per_success": worst_attempts,
                "refused": [r["refused"] for r in runs],
                "api_requests": [r["server"]["api_requests"] for r in runs],
                "ok_requests": [r["ok_requests"] for r in runs],
                "token_requests": [r["server"]["token_requests"] for r in runs],
                "raw": runs,
            }
        )
    return results


def paired_ratio(runs: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> float:
    """Median of run-by-run ratios (runs i of both were measured back to back, under the same load)."""
    return statistics.median(r["wall_s"] / b["wall_s"] for r, b in zip(runs, baseline, strict=False))


def check_targets(report: dict[str, Any], workers: int, plan: Plan) -> list[dict[str, Any]]:
    """The targets of issue #5, each with its measured value and PASS/FAIL."""
    checks: list[dict[str, Any]] = []

    def add(name: str, ok: bool, measured: str) -> None:
        checks.append({"target": name, "ok": bool(ok), "measured": measured})

    latencies = report["latencies"]
    target = next((lat for lat in latencies if float(lat["latency_ms"]) == TARGET_LATENCY_MS), None)
    if target is None:
        add(f"wall-time targets at {TARGET_LATENCY_MS:g} ms", False, "latency not measured (add it to --latency-ms)")
    else:
        ratio = target["ratios"]["provider_over_floor"]
        add(
            f"provider wall <= {MAX_PROVIDER_OVER_FLOOR}x floor at {TARGET_LATENCY_MS:g} ms",
            ratio <= MAX_PROVIDER_OVER_FLOOR,
            f"{ratio:.2f}x (run by run: {target['ratios']['provider_over_floor_paired']:.2f}x)",
        )
        speedup = target["ratios"].get("handwritten_over_provider")
        if speedup is None:
            add(f"provider >= {MIN_HANDWRITTEN_OVER_PROVIDER:g}x faster than hand-written", False, "not measured")
        else:
            add(
                f"provider >= {MIN_HANDWRITTEN_OVER_PROVIDER:g}x faster than hand-written at {TARGET_LATENCY_MS:g} ms",
                speedup >= MIN_HANDWRITTEN_OVER_PROVIDER,
                f"{speedup:.1f}x",
            )
    for throttled in report.get("throttled", []):
        tag = f"@{throttled['rate']:g} req/s ({throttled['mode']}, {throttled['latency_ms']:g} ms)"
        add(
            f"throttled wall <= {MAX_THROTTLED_OVER_IDEAL}x ideal {tag}",
            throttled["over_ideal"] <= MAX_THROTTLED_OVER_IDEAL,
            f"{throttled['over_ideal']:.3f}x ({throttled['wall_s']:.1f} s vs {throttled['ideal_s']:.1f} s)",
        )
        add(
            f"attempts per success <= {MAX_ATTEMPTS_PER_SUCCESS} {tag}",
            throttled["attempts_per_success"] <= MAX_ATTEMPTS_PER_SUCCESS,
            f"{throttled['attempts_per_success']:.3f} ({throttled['refused']} refused)",
        )
        add(
            f"every snapshot request succeeded once {tag}",
            all(ok == plan.requests for ok in throttled["ok_requests"]),
            f"{throttled['ok_requests']}",
        )
    for lat in latencies:
        p = lat["variants"]["provider"]
        hs = p["tls_handshakes"]
        tag = f"@{lat['latency_ms']:g} ms"
        add(
            f"exactly 1 token request {tag}",
            p["max_token_requests"] == 1 and p["token_requests"] == 1,
            f"{p['token_requests']} (max {p['max_token_requests']})",
        )
        add(
            f"exactly 1 discovery fetch {tag}",
            p["max_discovery_requests"] == 1 and p["discovery_requests"] == 1,
            f"{p['discovery_requests']} (max {p['max_discovery_requests']})",
        )
        add(
            f"TLS handshakes <= workers + 2 = {workers + 2} {tag}",
            p["max_tls_handshakes"] <= workers + 2,
            f"{p['max_tls_handshakes']} (issuer {hs['as_issuer']}, token mTLS {hs['as_mtls']}, API {hs['api_mtls']})",
        )
        add(
            f"API requests == plan ({plan.requests}) {tag}",
            p["api_requests"] == plan.requests and p["requests_by_route"] == plan.by_route and p["counts_stable"],
            f"{p['api_requests']}",
        )
        f = lat["variants"]["floor"]
        add(
            f"floor fetched the same URL set {tag}",
            f["requests_by_route"] == p["requests_by_route"],
            f"{f['api_requests']}",
        )
    return checks


def fmt_ratio(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}x"


def markdown(report: dict[str, Any]) -> str:
    """The results as markdown tables (also pasted into docs/performance.md)."""
    env = report["environment"]
    lines = [
        f"Run {report['finished_at']} on {env['cpus']} CPUs ({env['machine']}), Python {env['python']}; "
        f"{report['organisations']} organisations (seed {report['seed']}), {report['plan']['requests']} API "
        f"requests per snapshot, {report['workers']} workers, page size {report['page_size']}; median of "
        f"{report['repeat']} runs (hand-written: {report['handwritten_repeat']}).",
        "",
        "| latency | variant | wall s (median) | vs floor | hand-written / this | API requests | ms/request | "
        "token req. | discovery | TLS handshakes | peak RSS MiB (growth) | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lat in report["latencies"]:
        variants = lat["variants"]
        floor, hand = variants["floor"]["wall_s"], variants.get("handwritten", {}).get("wall_s")
        for name in ("provider", *report["provider_variants"], "floor", "handwritten"):
            v = variants.get(name)
            if v is None:
                continue
            spread = f"{v['wall_s']:.2f}"
            if v["runs"] > 1:
                spread += f" ({v['wall_s_min']:.2f} to {v['wall_s_max']:.2f})"
            lines.append(
                f"| {lat['latency_ms']:g} ms | {name} | {spread} | {fmt_ratio(v['wall_s'] / floor)} | "
                f"{fmt_ratio(hand / v['wall_s'] if hand else None, 1)} | {v['api_requests']} | "
                f"{v['ms_per_request']:.2f} | {v['token_requests']} | {v['discovery_requests']} | "
                f"{v['tls_handshakes_total']} | {v['rss_peak_mb']:.0f} ({v['rss_growth_mb']:+.0f}) | {v['cpu_s']:.1f} |"
            )
    lines += ["", "The provider against the floor and the hand-written script, metric by metric:", ""]
    lines += [
        "| latency | metric | provider | floor | hand-written | provider / floor | provider / hand-written |",
        "|---|---|---|---|---|---|---|",
    ]
    metrics = (
        ("wall s", "wall_s", "{:.2f}"),
        ("API requests", "api_requests", "{:d}"),
        ("token requests", "token_requests", "{:d}"),
        ("discovery fetches", "discovery_requests", "{:d}"),
        ("TLS handshakes", "tls_handshakes_total", "{:d}"),
        ("peak RSS MiB", "rss_peak_mb", "{:.0f}"),
        ("RSS growth MiB", "rss_growth_mb", "{:.0f}"),
        ("client CPU s", "cpu_s", "{:.1f}"),
    )
    for lat in report["latencies"]:
        variants = lat["variants"]
        p, f, h = variants["provider"], variants["floor"], variants.get("handwritten")
        for label, key, form in metrics:
            hand = form.format(h[key]) if h else "-"
            lines.append(
                f"| {lat['latency_ms']:g} ms | {label} | {form.format(p[key])} | {form.format(f[key])} | {hand} | "
                f"{fmt_ratio(p[key] / f[key] if f[key] else None)} | "
                f"{fmt_ratio(p[key] / h[key] if h and h[key] else None)} |"
            )
    if report.get("throttled"):
        lines += [
            "",
            "The provider against a rate-limited gateway (default settings; the client is not told the limit):",
            "",
            "| gateway limit | latency | wall s (median) | ideal s (requests / R) | vs ideal | attempts per success "
            "| 429s | token req. |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t in report["throttled"]:
            lines.append(
                f"| {t['rate']:g} req/s ({t['mode']}) | {t['latency_ms']:g} ms | {t['wall_s']:.1f} | "
                f"{t['ideal_s']:.1f} | {t['over_ideal']:.3f}x | {t['attempts_per_success']:.3f} | "
                f"{', '.join(str(n) for n in t['refused'])} | {', '.join(str(n) for n in t['token_requests'])} |"
            )
    build = report["build"]
    lines += [
        "",
        f"Table building alone (JSON already parsed in memory, no network; median of {report['build_repeat']} runs):",
        "",
        "| builder | rows | seconds | per 100k rows | tables MiB | peak allocated while building |",
        "|---|---|---|---|---|---|",
        f"| provider (`read_tables`, typed tidy tables) | {build['rows']} | {build['provider_s']:.2f} | "
        f"{build['provider_s_per_100k_rows']:.2f} s | {build['tables_mb']:.1f} | "
        f"{build['build_peak_mb']:.0f} MiB ({build['build_peak_over_tables']:.1f}x the tables) |",
        f"| hand-written (`pandas.json_normalize`, untyped) | {build['json_normalize_rows']} | "
        f"{build['json_normalize_s']:.2f} | {build['json_normalize_s_per_100k_rows']:.2f} s | "
        f"{build['json_normalize_tables_mb']:.1f} | - |",
        "",
        "Targets:",
        "",
        "| target | measured | result |",
        "|---|---|---|",
    ]
    lines += [f"| {c['target']} | {c['measured']} | {'PASS' if c['ok'] else 'FAIL'} |" for c in report["targets"]]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--organisations", type=int, default=2000, help="organisations in the seeded data set")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", default="0,20", help="comma-separated added latencies per request")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the provider and the floor per latency")
    parser.add_argument("--handwritten-repeat", type=int, default=1, help="runs of the slow sequential script")
    parser.add_argument("--build-repeat", type=int, default=3, help="runs of the in-memory table building")
    parser.add_argument(
        "--workers", type=int, default=16, help="max_workers of the provider's connection = the floor's threads"
    )
    parser.add_argument("--page-size", type=int, default=1000, help="page size of /organisations (all variants)")
    parser.add_argument("--skip-handwritten", action="store_true", help="do not run the sequential script")
    parser.add_argument(
        "--throttle-rates", default="50,100", help="gateway limits (requests/s) of the throttled scenario; '' skips it"
    )
    parser.add_argument("--throttle-latency-ms", type=float, default=20.0, help="latency of the throttled scenario")
    parser.add_argument("--throttle-repeat", type=int, default=1, help="runs per gateway limit")
    parser.add_argument("--throttle-mode", choices=("fixed-window", "token-bucket"), default="fixed-window")
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep the temporary directory (specs, Airflow home, sandbox logs)"
    )
    parser.add_argument("--state-dir", type=Path, default=None, help="sandbox state (default: a temp dir)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--provider-variant",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also measure the provider package found in DIR (e.g. a patched copy), reported as NAME",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.latencies = [float(x) for x in str(args.latency_ms).split(",") if x.strip()]
    args.throttle_rates = [float(x) for x in str(args.throttle_rates).split(",") if x.strip()]
    args.provider_paths = {}
    for item in args.provider_variant:
        name, _, directory = item.partition("=")
        if not name or not directory or name in ("provider", "floor", "handwritten", "build"):
            parser.error(f"--provider-variant wants NAME=DIR with a new NAME, got {item!r}")
        args.provider_paths[name] = str(Path(directory).resolve())
    for name in ("organisations", "repeat", "workers", "page_size", "build_repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)

    from raidiam_sandbox import Sandbox
    from raidiam_sandbox.constants import SCOPES, TLS_CLIENT_ID
    from raidiam_sandbox.dataset import build_dataset

    tables = snapshot_tables()
    workdir = Path(tempfile.mkdtemp(prefix="raidiam-bench-"))
    state_dir = args.state_dir or workdir / "sandbox"
    print(f"Starting the sandbox: {args.organisations} organisations, seed {args.seed} ({state_dir}) ...", flush=True)
    started = time.perf_counter()
    with Sandbox(state_dir, seed=args.seed, organisations=args.organisations, latency_ms=0) as sandbox:
        dataset = build_dataset(args.seed, args.organisations)
        plan = snapshot_plan(dataset, args.page_size)
        truth = sandbox.ground_truth()
        if truth["organisations"]["ids"] != sorted(str(o["OrganisationId"]) for o in dataset.organisations):
            raise SystemExit("the emulator serves another data set than build_dataset(seed, organisations)")
        del dataset
        pki = sandbox.pki
        spec_base = {
            "tables": tables,
            "workers": args.workers,
            "page_size": args.page_size,
            "seed": args.seed,
            "organisations": args.organisations,
            "build_repeat": args.build_repeat,
            "connection": sandbox.connection("tls", max_workers=args.workers, page_size=args.page_size),
            "issuer": sandbox.issuer,
            "api_base_url": sandbox.api_base_url,
            "ca": str(pki.ca_cert),
            "cert": str(pki.cert("tls-client")),
            "key": str(pki.key("tls-client")),
            "client_id": TLS_CLIENT_ID,
            "scope": " ".join(SCOPES),
        }
        bench = Bench(
            args,
            sandbox,
            spec_base,
            [url_of(sandbox.api_base_url, path, query) for path, query in plan.calls],
            plan,
            workdir,
        )
        print(
            f"Plan: {plan.requests} API requests per snapshot {dict(plan.by_route)}; tables {', '.join(tables)}",
            flush=True,
        )
        print("Warm-up (fills the emulator's response caches; not reported) ...", flush=True)
        bench.run("floor", 0, "warm-up floor @0 ms")

        latencies: list[dict[str, Any]] = []
        for latency in args.latencies:
            print(f"Latency {latency:g} ms:", flush=True)
            measured = ["provider", "floor", *args.provider_paths]
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in measured}
            for i in range(args.repeat):
                order = measured if i % 2 == 0 else measured[::-1]
                for variant in order:
                    runs[variant].append(bench.run(variant, latency, f"{variant} #{i + 1}"))
            if not args.skip_handwritten:
                runs["handwritten"] = [
                    bench.run("handwritten", latency, f"handwritten #{i + 1}") for i in range(args.handwritten_repeat)
                ]
            variants = {name: summarise(r) for name, r in runs.items()}
            ratios = {"provider_over_floor": variants["provider"]["wall_s"] / variants["floor"]["wall_s"]}
            ratios["provider_over_floor_paired"] = paired_ratio(runs["provider"], runs["floor"])
            for extra in args.provider_paths:
                ratios[f"{extra}_over_floor"] = variants[extra]["wall_s"] / variants["floor"]["wall_s"]
                ratios[f"{extra}_over_floor_paired"] = paired_ratio(runs[extra], runs["floor"])
            if "handwritten" in variants:
                hand = variants["handwritten"]["wall_s"]
                ratios["handwritten_over_provider"] = hand / variants["provider"]["wall_s"]
                ratios["handwritten_over_floor"] = hand / variants["floor"]["wall_s"]
            latencies.append({"latency_ms": latency, "variants": variants, "ratios": ratios, "raw": runs})
            print(
                f"  -> provider/floor {ratios['provider_over_floor']:.2f}x"
                + (
                    f", hand-written/provider {ratios['handwritten_over_provider']:.1f}x"
                    if "handwritten_over_provider" in ratios
                    else ""
                ),
                flush=True,
            )
        throttled = run_throttled(bench, args, plan)
        print("Table building (in memory, no network) ...", flush=True)
        build = bench.run_build()
    report: dict[str, Any] = {
        "issue": 5,
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": time.perf_counter() - started,
        "organisations": args.organisations,
        "seed": args.seed,
        "workers": args.workers,
        "page_size": args.page_size,
        "repeat": args.repeat,
        "handwritten_repeat": 0 if args.skip_handwritten else args.handwritten_repeat,
        "build_repeat": args.build_repeat,
        "tables": tables,
        "provider_variants": {name: repo_relative(Path(path)) for name, path in args.provider_paths.items()},
        "plan": {"requests": plan.requests, "by_route": plan.by_route},
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "latencies": latencies,
        "throttled": throttled,
        "build": build,
    }
    report["targets"] = check_targets(report, args.workers, plan)
    text = markdown(report)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "latest.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.results_dir / "latest.md").write_text(text, encoding="utf-8")
    print()
    print(text)
    failed = [c for c in report["targets"] if not c["ok"]]
    print(
        f"{len(report['targets']) - len(failed)}/{len(report['targets'])} targets PASS; results in "
        f"{args.results_dir / 'latest.json'} and latest.md ({report['duration_s']:.0f} s)"
    )
    if args.keep_workdir:
        print(f"Work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
