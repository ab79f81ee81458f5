"""The table catalogue: which Directory endpoints feed which table, and reading tables into pandas.

Each *source* is one fetch plan (an endpoint, or a fan-out of an endpoint over organisations or software
statements) whose records are the root of a tree of tables (see ``schema.TableSchema.children``):
``authorisation_servers``, ``api_resources``, ``api_discovery_endpoints`` and
``authorisation_server_certifications`` all come from the same ``/authorisationservers`` responses.
:func:`read_tables` fetches each source at most once and flattens it once, whatever tables of its tree
were asked for; the organisation list, when needed, is also read once and shared by every fan-out.

Filters (every one optional; a filter that does not apply to a table is ignored):

* ``organisation_ids``: only these organisations. Per-organisation fan-outs call only these; the
  ``organisations``, ``clients`` and ``participants_*`` tables keep only their rows. ``[]`` gives empty
  tables (with their columns) and makes no request. Reference tables ignore it.
* ``status``: keep only the *root records* whose ``Status`` matches (case-insensitive): organisations for
  the ``/organisations`` tree, its fan-outs and the participants tables (so ``status="Active"`` reads
  the software statements of active organisations, whatever the statements' own status), clients for
  ``clients`` (also sent to the API as ``status``), the reference rows for reference tables.
* ``participants_url``: the public participants list (required by ``participants_*`` tables).
* ``start_date`` / ``end_date``: ``clients`` only, sent as ``startDate``/``endDate`` (RFC 3339; a naive
  ``datetime`` is taken as UTC, a ``date`` as its midnight UTC, text is sent as given).
* ``page_size``: the ``size`` of each page of paged endpoints.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, cast
from urllib.parse import quote

import pandas as pd

from airflow_provider_raidiam.directory.flatten import check_records, check_unique, descendants, empty_frame, flatten
from airflow_provider_raidiam.directory.paging import check_page_size
from airflow_provider_raidiam.directory.reader import DirectoryReader, PublicReader
from airflow_provider_raidiam.directory.schema import TABLES
from airflow_provider_raidiam.exceptions import ConfigurationError, ResponseFormatError

__all__ = ["PARTICIPANT_TABLES", "SOURCES", "list_tables", "read_table", "read_tables", "source_of"]

Records = list[dict[str, Any]]
Batch = tuple[Records, dict[str, list[str]]]
"""A source's root records and their inherited parent keys (one value per record)."""


@dataclass(frozen=True)
class Source:
    """One fetch plan.

    :param endpoints: the calls it makes, as documented in ``docs/tables.md``.
    :param fetch: reads the root records.
    :param per_organisation: ``organisation_ids=[]`` makes it empty without any request.
    """

    endpoints: tuple[str, ...]
    fetch: Callable[[_Session], Batch]
    per_organisation: bool = True


def list_tables() -> list[str]:
    """Every table name, in catalogue order."""
    return list(TABLES)


def read_table(
    reader: DirectoryReader,
    table: str,
    *,
    organisation_ids: Sequence[str] | None = None,
    status: str | None = None,
    participants_url: str | None = None,
    start_date: datetime | date | str | None = None,
    end_date: datetime | date | str | None = None,
    page_size: int | None = None,
) -> pd.DataFrame:
    """Read one table (see the module docstring for the filters and ``docs/tables.md`` for the tables).

    :raises ConfigurationError: unknown table or invalid filter.
    :raises ResponseFormatError: an endpoint answered with JSON of the wrong shape.
    :raises PaginationError: the pages of a paged endpoint do not add up.
    :raises DataIntegrityError: a record came twice or without its key (nothing is dropped silently).
    """
    return read_tables(
        reader,
        [table],
        organisation_ids=organisation_ids,
        status=status,
        participants_url=participants_url,
        start_date=start_date,
        end_date=end_date,
        page_size=page_size,
    )[table]


def read_tables(
    reader: DirectoryReader,
    tables: Sequence[str],
    *,
    organisation_ids: Sequence[str] | None = None,
    status: str | None = None,
    participants_url: str | None = None,
    start_date: datetime | date | str | None = None,
    end_date: datetime | date | str | None = None,
    page_size: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Read several tables, fetching each source (and the organisation list) at most once.

    :returns: ``{table: DataFrame}`` in the order asked (a name given twice appears once).
    :raises ConfigurationError: unknown table or invalid filter.
    :raises ResponseFormatError: an endpoint answered with JSON of the wrong shape.
    :raises PaginationError: the pages of a paged endpoint do not add up.
    :raises DataIntegrityError: a record came twice or without its key (nothing is dropped silently).
    """
    if isinstance(tables, str):
        raise ConfigurationError("tables must be a list of table names, not a single string")
    names = list(dict.fromkeys(tables))
    for name in names:
        _check_table(name)
    if isinstance(organisation_ids, str):
        raise ConfigurationError("organisation_ids must be a list of IDs, not a single string")
    if status is not None and not isinstance(status, str):
        raise ConfigurationError(f"status must be text such as 'Active', got {type(status).__name__}")
    if page_size is not None:
        check_page_size(page_size)
    session = _Session(
        reader,
        organisation_ids=None if organisation_ids is None else list(dict.fromkeys(map(str, organisation_ids))),
        status=status.casefold() if status else None,
        participants_url=participants_url,
        params=_client_params(start_date, end_date, status),
        page_size=page_size,
    )
    roots: dict[str, set[str]] = {}
    for name in names:
        roots.setdefault(source_of(name), set()).add(name)
    # Sources are fetched one after another on this thread (each fans out on the reader's workers) while
    # one more thread builds the tables of the sources already fetched: the network never waits for pandas.
    out: dict[str, pd.DataFrame] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="raidiam-tables") as builder:
        built: list[Future[dict[str, pd.DataFrame]]] = []
        for root, wanted in roots.items():
            if any(f.done() and f.exception() is not None for f in built):
                break  # a table could not be built: stop fetching, raise its error below
            session.prefetch(root)
            built.append(builder.submit(session.tables, root, wanted))
        for future in built:
            out.update(future.result())
    return {name: out[name] for name in names}


def source_of(table: str) -> str:
    """The root table whose source feeds ``table`` (``api_resources`` -> ``authorisation_servers``)."""
    return _ROOT_OF[_check_table(table)]


def _check_table(name: str) -> str:
    if name in TABLES:
        return name
    close = difflib.get_close_matches(str(name), TABLES, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigurationError(f"unknown table {name!r}.{hint} Valid tables: {', '.join(TABLES)}")


def _client_params(start: Any, end: Any, status: str | None) -> dict[str, str]:
    params = {"startDate": _rfc3339(start, "start_date"), "endDate": _rfc3339(end, "end_date")}
    params["status"] = status or ""
    return {k: v for k, v in params.items() if v}


def _rfc3339(value: Any, what: str) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        stamp = datetime.combine(value, time(), tzinfo=UTC)
    else:
        raise ConfigurationError(f"{what} must be a datetime, a date or RFC 3339 text, got {type(value).__name__}")
    return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _Session:
    """One ``read_tables`` call: the reader, the filters, and what was already fetched."""

    def __init__(
        self,
        reader: DirectoryReader,
        *,
        organisation_ids: list[str] | None,
        status: str | None,
        participants_url: str | None,
        params: dict[str, str],
        page_size: int | None,
    ) -> None:
        self.reader = reader
        self.organisation_ids = organisation_ids
        self.status = status
        self.participants_url = participants_url
        self.params = params
        self.page_size = page_size
        self._batches: dict[str, Batch] = {}

    # ---- tables ----------------------------------------------------------------------------------

    def prefetch(self, root: str) -> None:
        """Fetch the root records of ``root`` now, unless the filters make its tables empty."""
        if not (self.organisation_ids == [] and SOURCES[root].per_organisation):
            self.batch(root)

    def tables(self, root: str, wanted: set[str]) -> dict[str, pd.DataFrame]:
        """The wanted tables of ``root``'s tree, from one fetch and one flatten."""
        source = SOURCES[root]
        if self.organisation_ids == [] and source.per_organisation:
            return {t: empty_frame(t) for t in wanted}
        records, inherited = self.batch(root)
        frames = flatten(records, root, inherited=inherited, tables=wanted, source=source.endpoints[-1])
        if root not in _SHARED_BATCHES:  # no other source reads these records: free their JSON now
            self._batches.pop(root, None)
        return frames

    def batch(self, root: str) -> Batch:
        """The root records of a source, fetched once per session."""
        if root not in self._batches:
            self._batches[root] = SOURCES[root].fetch(self)
        return self._batches[root]

    # ---- filters -----------------------------------------------------------------------------------

    def keep(self, records: Records, status: str = "Status", org: str | None = "OrganisationId") -> Records:
        """Records whose status and (unless ``org`` is ``None``) organisation pass the filters."""
        ids = None if self.organisation_ids is None or org is None else set(self.organisation_ids)
        return [
            r
            for r in records
            if (self.status is None or str(r.get(status, "")).casefold() == self.status)
            and (ids is None or str(r.get(org or "")) in ids)
        ]

    def organisation_list(self) -> Batch:
        """``/organisations`` filtered by ``status`` and ``organisation_ids``."""
        return self.keep(self.paged("/organisations", "organisations")), {}

    def organisations_to_read(self) -> list[str]:
        """The organisation IDs a fan-out visits, in Directory order (or the order given)."""
        if self.organisation_ids is not None and self.status is None:
            return self.organisation_ids
        return [str(r["OrganisationId"]) for r in self.batch("organisations")[0]]  # unique: see paged()

    # ---- fetching ------------------------------------------------------------------------------------

    def paged(self, endpoint: str, table: str, params: Mapping[str, Any] | None = None) -> Records:
        """Every record of a paged endpoint, once ``table``'s key is whole and unique on all of them.

        Checked before any filter: a record sent twice while the pages add up to ``totalSize`` means
        another was lost, whatever the filters would keep.
        """
        rows = self.reader.paginate(endpoint, params=params, page_size=self.page_size)
        records = check_records(list(rows), f"GET {endpoint}")
        check_unique(records, table, f"GET {endpoint} (paged)")
        return records

    def array(self, endpoint: str) -> Records:
        """A plain JSON array endpoint."""
        return check_records(self.reader.get_json(endpoint), f"GET {endpoint}")

    def fan_out(self, items: Sequence[tuple[str, ...]], fetch: Callable[[tuple[str, ...]], Records]) -> Batch:
        """``fetch`` every item through ``reader.fan_out`` (concurrent, results in item order).

        Items are ``(organisation_id,)`` or ``(organisation_id, software_statement_id)``; each record
        inherits its item's IDs.
        """
        results = self.reader.fan_out(fetch, items) if items else []
        records: Records = []
        inherited: dict[str, list[str]] = {n: [] for n in _FAN_OUT_KEYS[: len(items[0]) if items else 1]}
        for item, rows in zip(items, results, strict=True):
            records += rows
            for name, value in zip(inherited, item, strict=True):
                inherited[name] += [value] * len(rows)
        return records, inherited

    def per_organisation(self, path: str, paged_table: str | None = None) -> Batch:
        """Fan ``path`` (with ``{org}``) out over the organisations to read.

        :param paged_table: for a paged endpoint, the table whose key every organisation's read must keep.
        """

        def get(item: tuple[str, ...]) -> Records:
            endpoint = path.format(org=quote(item[0], safe=""))
            return self.array(endpoint) if paged_table is None else self.paged(endpoint, paged_table)

        return self.fan_out([(o,) for o in self.organisations_to_read()], get)

    def organisation_details(self) -> Batch:
        """``/organisations/{org}`` per organisation, ``OrgDetails`` unwrapped (other members kept)."""

        def detail(item: tuple[str, ...]) -> Records:
            endpoint = f"/organisations/{quote(item[0], safe='')}"
            body = self.reader.get_json(endpoint)
            if not isinstance(body, dict) or not isinstance(body.get("OrgDetails"), dict):
                raise ResponseFormatError(f"GET {endpoint}: expected an object with an 'OrgDetails' object")
            return [{**body["OrgDetails"], **{k: v for k, v in body.items() if k != "OrgDetails"}}]

        return self.fan_out([(o,) for o in self.organisations_to_read()], detail)

    def software_statement_certificates(self) -> Batch:
        """``.../softwarestatements/{ss}/certificates`` for every software statement read."""
        statements, inherited = self.batch("software_statements")
        check_unique(statements, "software_statements", SOURCES["software_statements"].endpoints[-1])
        pairs = [
            (org, str(r["SoftwareStatementId"]))
            for r, org in zip(statements, inherited["organisation_id"], strict=True)
        ]
        return self.fan_out(
            pairs,
            lambda p: self.array(
                f"/organisations/{quote(p[0], safe='')}/softwarestatements/{quote(p[1], safe='')}/certificates"
            ),
        )

    def clients(self) -> Batch:
        """``/clients`` with ``startDate``/``endDate``/``status``, kept by status and organisation."""
        records = self.paged("/clients", "clients", self.params)
        return self.keep(records, status="status", org="organisation_id"), {}

    def participants(self) -> Batch:
        """The public participants list, kept by status and organisation."""
        if not self.participants_url:
            raise ConfigurationError(
                "participants_* tables need participants_url (the public participants list, e.g. "
                "https://data.<directory host>/participants)"
            )
        body = self.reader.get_public_json(self.participants_url)
        return self.keep(check_records(body, f"GET {self.participants_url}")), {}

    def reference(self, endpoint: str, table: str) -> Batch:
        """A reference-data endpoint, kept by status only."""
        return self.keep(self.paged(endpoint, table), org=None), {}


_FAN_OUT_KEYS = ("organisation_id", "software_statement_id")
_SHARED_BATCHES = frozenset({"organisations", "software_statements"})
"""Sources whose records other sources read (the organisation list; the software statements' IDs)."""
_ORGS = "GET /organisations (paged; only when the organisations are not given by organisation_ids)"


def _per_org(path: str, paged_table: str | None = None) -> Source:
    note = " (paged)" if paged_table else ""
    return Source(
        (_ORGS, f"GET {path.replace('{org}', '{OrganisationId}')}{note} per organisation"),
        lambda s: s.per_organisation(path, paged_table),
    )


def _reference(table: str, path: str) -> Source:
    return Source((f"GET {path} (paged or plain array)",), lambda s: s.reference(path, table), per_organisation=False)


SOURCES: dict[str, Source] = {
    "organisations": Source(("GET /organisations (paged)",), _Session.organisation_list),
    "organisation_details": Source(
        (_ORGS, "GET /organisations/{OrganisationId} per organisation"), _Session.organisation_details
    ),
    "authorisation_servers": _per_org("/organisations/{org}/authorisationservers"),
    "software_statements": _per_org("/organisations/{org}/softwarestatements"),
    "software_statement_certificates": Source(
        (
            _ORGS,
            "GET /organisations/{OrganisationId}/softwarestatements per organisation",
            "GET /organisations/{OrganisationId}/softwarestatements/{SoftwareStatementId}/certificates "
            "per software statement",
        ),
        _Session.software_statement_certificates,
    ),
    "organisation_certificates": _per_org("/organisations/{org}/certificates"),
    "contacts": _per_org("/organisations/{org}/contacts", paged_table="contacts"),
    "authority_claims": _per_org("/organisations/{org}/authorityclaims"),
    "authority_domain_claims": _per_org(
        "/organisations/{org}/authoritydomainclaims", paged_table="authority_domain_claims"
    ),
    "authorities": _reference("authorities", "/references/authorities"),
    "authorisation_domains": _reference("authorisation_domains", "/references/authorisationdomains"),
    "authorisation_domain_roles": _reference("authorisation_domain_roles", "/references/authorisationdomainroles"),
    "clients": Source(("GET /clients (paged; startDate, endDate, status)",), _Session.clients),
    "participants_organisations": Source(
        ("GET {participants_url} (public, no token; one JSON array)",), _Session.participants
    ),
}
"""Fetch plan of every root table, by root table name."""

PARTICIPANT_TABLES: tuple[str, ...] = tuple(descendants("participants_organisations"))
"""The tables read from the public participants list (no token needed)."""

SNAPSHOT_TABLES: tuple[str, ...] = (
    "organisations",
    "authorisation_servers",
    "api_resources",
    "api_discovery_endpoints",
    "authorisation_server_certifications",
    "software_statements",
    "software_statement_certifications",
    "software_statement_certificates",
    "organisation_certificates",
)
"""The tables of the example ``raidiam_directory_snapshot`` DAG (also read by its tests and benchmark)."""

_ROOT_OF = {table: root for root in SOURCES for table in descendants(root)}
if set(_ROOT_OF) != set(TABLES):  # pragma: no cover - a schema/catalogue mismatch is a programming error
    raise RuntimeError(f"tables without a source: {sorted(set(TABLES) - set(_ROOT_OF))}")


def read_participant_tables(
    reader: PublicReader, participants_url: str, tables: Sequence[str] = PARTICIPANT_TABLES
) -> dict[str, pd.DataFrame]:
    """Read ``participants_*`` tables from the public participants list; needs no credentials.

    :raises ConfigurationError: a name that is not a participants table.
    """
    unknown = [name for name in tables if name not in PARTICIPANT_TABLES]
    if unknown:
        raise ConfigurationError(f"Not participants tables: {unknown}; choose from {list(PARTICIPANT_TABLES)}.")
    # Participants tables only ever call get_public_json, which every PublicReader has.
    return read_tables(cast(DirectoryReader, reader), tables, participants_url=participants_url)
