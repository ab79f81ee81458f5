"""The table catalogue: where each Directory table's records come from, and reading tables into pandas.

A table is one declaration, a :class:`~airflow_provider_raidiam.directory.schema.TableSchema`: its
columns, key and nesting and, for a *root* table, its ``Source`` (the endpoint, paged or not, called once
or once per row of another table). One generic reader here follows every declaration; nested tables
(``api_resources`` inside ``authorisation_servers``) come from their root's records. :func:`read_tables`
fetches each source at most once and flattens it once, whatever tables of its
tree were asked for; the organisation list, when needed, is also read once and shared by every fan-out.
The filters are a :class:`~airflow_provider_raidiam.directory.filters.TableFilters`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast
from urllib.parse import quote

import pandas as pd

from airflow_provider_raidiam.directory.filters import TableFilters
from airflow_provider_raidiam.directory.flatten import check_records, check_unique, empty_frame, flatten
from airflow_provider_raidiam.directory.paging import read_all_pages
from airflow_provider_raidiam.directory.reader import DirectoryReader, PublicReader
from airflow_provider_raidiam.directory.schema import ORGANISATIONS, TABLES, Source, descendants, snake_case
from airflow_provider_raidiam.exceptions import ConfigurationError, ResponseFormatError

__all__ = [
    "PARTICIPANT_TABLES",
    "SNAPSHOT_TABLES",
    "TableFilters",
    "endpoints_of",
    "list_tables",
    "read_table",
    "read_tables",
    "root_tables",
    "source_of",
]

Records = list[dict[str, Any]]
Batch = tuple[Records, dict[str, list[str]]]
"""A source's root records and their inherited parent keys (one value per record)."""


def list_tables() -> list[str]:
    """Every table name, in catalogue order."""
    return list(TABLES)


def read_table(
    reader: DirectoryReader, table: str, filters: TableFilters | Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Read one table (see ``docs/tables.md`` for the tables and :class:`TableFilters` for the filters).

    :raises ConfigurationError: unknown table, or a filter the table needs is missing.
    :raises ResponseFormatError: an endpoint answered with JSON of the wrong shape.
    :raises PaginationError: the pages of a paged endpoint do not add up.
    :raises DataIntegrityError: a record came twice or without its key (nothing is dropped silently).
    """
    return read_tables(reader, [table], filters)[table]


def read_tables(
    reader: DirectoryReader, tables: Sequence[str], filters: TableFilters | Mapping[str, Any] | None = None
) -> dict[str, pd.DataFrame]:
    """Read several tables, fetching each source (and the organisation list) at most once.

    :param filters: a :class:`TableFilters`, or its fields as a mapping.
    :returns: ``{table: DataFrame}`` in the order asked (a name given twice appears once).
    :raises ConfigurationError: unknown table, or a filter the table needs is missing.
    :raises ResponseFormatError: an endpoint answered with JSON of the wrong shape.
    :raises PaginationError: the pages of a paged endpoint do not add up.
    :raises DataIntegrityError: a record came twice or without its key (nothing is dropped silently).
    """
    if isinstance(tables, str):
        raise ConfigurationError("tables must be a list of table names, not a single string")
    names = list(dict.fromkeys(tables))
    for name in names:
        _check_table(name)
    if not isinstance(filters, TableFilters):
        filters = TableFilters.from_mapping(filters or {})
    session = _Session(reader, filters)
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
    name = _check_table(table)
    return next(root for root in root_tables() if name in descendants(root))


def endpoints_of(root: str, *, fanned_out: bool = False) -> tuple[str, ...]:
    """The calls reading ``root`` makes, in order, as ``docs/tables.md`` lists them.

    :param fanned_out: ``root`` is read for another table's fan-out (the organisation list may then be skipped).
    """
    source = _source(root)
    if source.public:
        return ("GET {participants_url} (public, no token; one JSON array)",)
    notes = [
        note for flag, note in ((source.paged, "paged"), (source.sends_filters, "startDate, endDate, status")) if flag
    ]
    if fanned_out and root == ORGANISATIONS:
        notes.append("only when the organisations are not given by organisation_ids")  # see _Session._rows_over
    call = f"GET {source.path}" + (f" ({'; '.join(notes)})" if notes else "")
    if source.over is None:
        return (call,)
    each = source.over.removesuffix("s").replace("_", " ")
    return (*endpoints_of(source.over, fanned_out=True), f"{call} per {each}")


def per_organisation(root: str) -> bool:
    """Whether ``organisation_ids`` applies to ``root``'s records (so ``()`` reads nothing)."""
    source = _source(root)
    return source.organisation_field is not None if source.over is None else per_organisation(source.over)


def _source(root: str) -> Source:
    source = TABLES[root].source
    assert source is not None, f"{root} is not a root table"
    return source


def _check_table(name: str) -> str:
    if name in TABLES:
        return name
    close = difflib.get_close_matches(str(name), TABLES, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigurationError(f"unknown table {name!r}.{hint} Valid tables: {', '.join(TABLES)}")


class _Session:
    """One ``read_tables`` call: the reader, the filters, and the root records already fetched."""

    def __init__(self, reader: DirectoryReader, filters: TableFilters) -> None:
        self.reader = reader
        self.filters = filters
        self._batches: dict[str, Batch] = {}

    def prefetch(self, root: str) -> None:
        """Fetch the root records of ``root`` now, unless the filters make its tables empty."""
        if not self._empty(root):
            self.batch(root)

    def tables(self, root: str, wanted: set[str]) -> dict[str, pd.DataFrame]:
        """The wanted tables of ``root``'s tree, from one fetch and one flatten."""
        if self._empty(root):
            return {t: empty_frame(t) for t in wanted}
        records, inherited = self.batch(root)
        frames = flatten(records, root, inherited=inherited, tables=wanted, source=endpoints_of(root)[-1])
        if not any(source.over == root for source in root_tables().values()):  # no other source reads them:
            self._batches.pop(root, None)  # free their JSON now
        return frames

    def batch(self, root: str) -> Batch:
        """The root records of a source, fetched once per session."""
        if root not in self._batches:
            self._batches[root] = self._fetch(root)
        return self._batches[root]

    def _empty(self, root: str) -> bool:
        return self.filters.organisation_ids == () and per_organisation(root)

    def _fetch(self, root: str) -> Batch:
        source = _source(root)
        if source.over is None:
            kept = [
                record
                for record in self._read(root, self._single_call_path(source))
                if self.filters.keeps(
                    record, status_field=source.status_field, organisation_field=source.organisation_field
                )
            ]
            return kept, {}
        rows = self._rows_over(source)
        placeholders = source.placeholders

        def call(values: tuple[str, ...]) -> Records:
            quoted = {name: quote(value, safe="") for name, value in zip(placeholders, values, strict=True)}
            return self._read(root, source.path.format_map(quoted))

        results = self.reader.fan_out(call, rows) if rows else []
        records: Records = []
        inherited: dict[str, list[str]] = {snake_case(name): [] for name in placeholders}
        for values, found in zip(rows, results, strict=True):
            records += found
            for column, value in zip(inherited.values(), values, strict=True):
                column += [value] * len(found)
        return records, inherited

    def _single_call_path(self, source: Source) -> str:
        if not source.public:
            return source.path
        if not self.filters.participants_url:
            raise ConfigurationError(
                "participants_* tables need participants_url (the public participants list, e.g. "
                "https://data.<directory host>/participants)"
            )
        return self.filters.participants_url

    def _rows_over(self, source: Source) -> list[tuple[str, ...]]:
        """The placeholder values of every call of a fan-out: one tuple per row of ``source.over``."""
        assert source.over is not None
        ids = self.filters.organisation_ids
        if source.over == ORGANISATIONS and ids is not None and self.filters.status is None:
            return [(organisation_id,) for organisation_id in ids]  # no need to list the organisations
        records, inherited = self.batch(source.over)
        if not _source(source.over).paged:  # a paged read checked its keys already
            check_unique(records, source.over, endpoints_of(source.over)[-1])
        return [
            tuple(
                inherited[snake_case(name)][i] if snake_case(name) in inherited else str(record[name])
                for name in source.placeholders
            )
            for i, record in enumerate(records)
        ]

    def _read(self, root: str, endpoint: str) -> Records:
        """The records of one call of ``root``'s source, checked as the source declares."""
        source = _source(root)
        where = f"GET {endpoint}"
        if source.public:
            return check_records(self.reader.get_public_json(endpoint), where)
        if source.paged:
            params = self.filters.query() if source.sends_filters else {}
            records = check_records(read_all_pages(self.reader, endpoint, params, self.filters.page_size), where)
            check_unique(records, root, f"{where} (paged)")  # before any filter: a repeat means a loss
            return records
        body = self.reader.get_json(endpoint)
        member = source.record_member
        if member is None:
            return check_records(body, where)
        if not isinstance(body, dict) or not isinstance(body.get(member), dict):
            raise ResponseFormatError(f"{where}: expected an object with an {member!r} object")
        return [{**body[member], **{k: v for k, v in body.items() if k != member}}]


def root_tables() -> dict[str, Source]:
    """Every root table (a table with a :class:`Source`) and its source, in catalogue order."""
    return {name: schema.source for name, schema in TABLES.items() if schema.source is not None}


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
    return read_tables(cast(DirectoryReader, reader), tables, TableFilters(participants_url=participants_url))
