"""Operators that turn Raidiam Directory data into tidy pandas DataFrames.

Each returns its DataFrames through XCom (small results), or writes them to ``output_uri`` on any
Airflow object storage (``file://``, ``s3://``, ``gs://``, ...) and returns the paths and row counts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import pandas as pd

from airflow_provider_raidiam.directory.catalogue import PARTICIPANT_TABLES
from airflow_provider_raidiam.exceptions import ConfigurationError
from airflow_provider_raidiam.hooks.raidiam import RaidiamHook
from airflow_provider_raidiam.lineage import directory_namespace, operator_lineage
from airflow_provider_raidiam.operators.output import (
    check_output_format,
    check_output_uri,
    check_table_file_name,
    write_tables,
)
from airflow_provider_raidiam.version_compat import Asset, BaseOperator, Context

DEFAULT_MAX_XCOM_ROWS = 100_000


def table_asset(raidiam_conn_id: str, table: str) -> Asset:
    """The Asset a Raidiam operator declares for ``table``: ``raidiam://<conn_id>/<table>``."""
    return Asset(
        uri=f"raidiam://{raidiam_conn_id.replace('_', '-')}/{table}", name=f"raidiam/{raidiam_conn_id}/{table}"
    )


class _TablesOperator(BaseOperator):
    """Shared delivery of DataFrames: XCom for small results, or atomic files at ``output_uri``."""

    ui_color = "#e6f0ff"

    def __init__(
        self,
        *,
        raidiam_conn_id: str | None,
        output_uri: str | None = None,
        output_format: str = "parquet",
        max_xcom_rows: int = DEFAULT_MAX_XCOM_ROWS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.raidiam_conn_id = raidiam_conn_id
        self.output_uri = output_uri
        self.output_format = output_format
        self.max_xcom_rows = max_xcom_rows
        self.lineage_inputs: dict[str, str] = {}
        """``{table: OpenLineage namespace}`` of the tables read, set by ``execute``."""
        self.lineage_outputs: dict[str, str] = {}
        """``{name: URI}`` of the files written, set by ``execute``."""

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage inputs (the Directory tables read) and outputs (the files written), with schemas."""
        return operator_lineage(self.lineage_inputs, self.lineage_outputs)

    def check_delivery(self) -> None:
        """Refuse a bad ``output_format`` or ``output_uri`` before anything is read or written."""
        check_output_format(self.output_format)
        if self.output_uri:
            check_output_uri(self.output_uri)

    def deliver(
        self, frames: dict[str, pd.DataFrame], context: Context, *, single: bool, started: float, calls: str = ""
    ) -> Any:
        """Write or return ``frames`` and log one summary line; ``single`` returns a bare DataFrame via XCom.

        :param started: ``time.monotonic()`` when the task began reading, for the summary's duration.
        :param calls: a note on the API calls made, for the summary.
        """
        rows = {table: len(frame) for table, frame in frames.items()}
        total = sum(rows.values())
        detail = ", ".join(f"{table}={count}" for table, count in rows.items())
        if self.output_uri:
            written = write_tables(frames, self.output_uri, check_output_format(self.output_format))
            self.lineage_outputs = {table: info["uri"] for table, info in written.items()}
            self._record_outlet_events(context, written)
            result: Any = {"output_uri": self.output_uri, "format": self.output_format, "tables": written}
            action = f"Wrote {len(written)} table(s) as {self.output_format} to {self.output_uri}"
        else:
            if total > self.max_xcom_rows:
                raise ConfigurationError(
                    f"{total} rows are too many for XCom (max_xcom_rows={self.max_xcom_rows}): set output_uri "
                    "to write the tables to object storage instead, or raise max_xcom_rows."
                )
            result = next(iter(frames.values())) if single else frames
            action = f"Returning {len(frames)} table(s) through XCom"
        self.log.info("%s: %d rows in %.1fs%s (%s)", action, total, time.monotonic() - started, calls, detail)
        return result

    def _record_outlet_events(self, context: Context, written: Mapping[str, Mapping[str, Any]]) -> None:
        events = context.get("outlet_events")
        if events is None or self.raidiam_conn_id is None:
            return
        for outlet in self.outlets:
            for table, info in written.items():
                if isinstance(outlet, Asset) and outlet.uri == table_asset(self.raidiam_conn_id, table).uri:
                    events[outlet].extra = {"uri": info["uri"], "rows": info["rows"]}


def _as_table_list(tables: str | Sequence[str]) -> list[str]:
    return [tables] if isinstance(tables, str) else list(tables)


class RaidiamDirectoryOperator(_TablesOperator):
    """Read Directory tables (organisations, authorisation servers, software statements, ...) into pandas.

    :param tables: one table name or a list (see ``RaidiamHook.list_tables()``). (templated)
    :param raidiam_conn_id: the ``raidiam`` connection. (templated)
    :param organisation_ids: restrict per-organisation reads to these organisations. (templated)
    :param status: keep only records with this ``Status`` (e.g. ``"Active"``). (templated)
    :param filters: further fields of :class:`~airflow_provider_raidiam.directory.filters.TableFilters`, e.g.
        ``{"start_date": ...}`` for ``clients``. (templated)
    :param output_uri: write ``<table>.<format>`` files under this object-storage URI instead of returning
        DataFrames through XCom; returns ``{"tables": {table: {"uri", "rows"}}}``. (templated)
    :param output_format: ``"parquet"`` (default) or ``"csv"``.
    :param max_xcom_rows: refuse to push more rows than this through XCom (use ``output_uri``).

    Returns a DataFrame when ``tables`` is a single name, a ``{table: DataFrame}`` dict for a list.
    Declares one Asset per table, ``raidiam://<conn-id>/<table>``, unless ``outlets`` are given.
    """

    template_fields: Sequence[str] = (
        "tables",
        "raidiam_conn_id",
        "organisation_ids",
        "status",
        "filters",
        "output_uri",
    )
    template_fields_renderers = {"filters": "json"}

    def __init__(
        self,
        *,
        tables: str | Sequence[str],
        raidiam_conn_id: str = RaidiamHook.default_conn_name,
        organisation_ids: Sequence[str] | None = None,
        status: str | None = None,
        filters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and isinstance(tables, (str, list, tuple)) and "{{" not in str(tables):
            kwargs["outlets"] = [table_asset(raidiam_conn_id, table) for table in _as_table_list(tables)]
        super().__init__(raidiam_conn_id=raidiam_conn_id, **kwargs)
        self.tables = tables
        self.organisation_ids = organisation_ids
        self.status = status
        self.filters = filters

    @cached_property
    def hook(self) -> RaidiamHook:
        """The hook of ``raidiam_conn_id`` (created on first use, never at DAG parse time)."""
        assert self.raidiam_conn_id is not None
        return RaidiamHook(raidiam_conn_id=self.raidiam_conn_id)

    def execute(self, context: Context) -> Any:
        self.check_delivery()
        started = time.monotonic()
        frames, note = self.read_tables()
        return self.deliver(frames, context, single=isinstance(self.tables, str), started=started, calls=note)

    def read_tables(self) -> tuple[dict[str, pd.DataFrame], str]:
        """Validate the arguments and read the tables: ``({table: DataFrame}, note on the API calls made)``."""
        tables = _as_table_list(self.tables)
        if not tables:
            raise ConfigurationError(f"{type(self).__name__} needs at least one table name in 'tables'.")
        filters = dict(self.filters or {})
        if self.organisation_ids is not None:
            filters["organisation_ids"] = self.organisation_ids
        if self.status is not None:
            filters["status"] = self.status
        try:
            frames = self.hook.get_pandas_dfs(tables, **filters)  # checked before any connection is made
            calls, attempts, throttled = self.hook.call_stats()
        finally:
            self.hook.close()
        settings = self.hook.settings
        self.lineage_inputs = {
            table: directory_namespace(
                settings.participants_url
                if table in PARTICIPANT_TABLES and settings.participants_url
                else str(settings.api_base_url)
            )
            for table in frames
        }
        return frames, f", {calls} API calls ({attempts - calls} retries, {throttled} throttled with HTTP 429)"


class RaidiamParticipantsOperator(_TablesOperator):
    """Read the public participants list (no token, no client certificate) into the tidy tables.

    :param participants_url: e.g. ``https://data.directory.openbankingbrasil.org.br/participants``;
        defaults to the connection's ``participants_url``. (templated)
    :param raidiam_conn_id: optional ``raidiam`` connection, for ``participants_url`` and ``ca_bundle``.
    :param ca_bundle: CA file path or PEM text to trust instead of the system store (without a connection).
    :param tables: which ``participants_*`` tables (default: all of them). (templated)
    :param output_uri: see :class:`RaidiamDirectoryOperator`. (templated)
    """

    template_fields: Sequence[str] = ("participants_url", "raidiam_conn_id", "tables", "output_uri")

    def __init__(
        self,
        *,
        participants_url: str | None = None,
        raidiam_conn_id: str | None = None,
        ca_bundle: str | None = None,
        tables: str | Sequence[str] = PARTICIPANT_TABLES,
        **kwargs: Any,
    ) -> None:
        super().__init__(raidiam_conn_id=raidiam_conn_id, **kwargs)
        self.participants_url = participants_url
        self.ca_bundle = ca_bundle
        self.tables = tables

    def execute(self, context: Context) -> Any:
        tables = _as_table_list(self.tables)
        self.check_delivery()
        started = time.monotonic()
        if self.raidiam_conn_id is not None:
            with RaidiamHook(raidiam_conn_id=self.raidiam_conn_id) as hook:
                frames = hook.get_participant_dfs(tables, participants_url=self.participants_url)
                url = str(self.participants_url or hook.settings.participants_url)
        else:
            if self.participants_url is None:
                raise ConfigurationError("RaidiamParticipantsOperator needs participants_url (or raidiam_conn_id).")
            frames = RaidiamHook.get_public_participant_dfs(
                self.participants_url, tables, ca_bundle=self.ca_bundle, logger=self.log
            )
            url = self.participants_url
        self.lineage_inputs = {table: directory_namespace(url) for table in frames}
        return self.deliver(frames, context, single=isinstance(self.tables, str), started=started)


class RaidiamApiOperator(_TablesOperator):
    """Call any Directory endpoint, page through it, and flatten the JSON into a DataFrame.

    For endpoints the table catalogue does not cover yet.

    :param endpoint: path relative to the connection's ``api_base_url``. (templated)
    :param query_params: query parameters. (templated)
    :param paginate: read every page of a paged endpoint (``True``, default) or make one GET.
    :param record_path: passed to ``pandas.json_normalize`` (nested list of records to expand).
    :param meta: passed to ``pandas.json_normalize`` (parent fields to repeat on each record).
    :param table_name: the file name used with ``output_uri`` (default ``"records"``): letters, digits,
        ``_`` and ``-`` only.
    """

    template_fields: Sequence[str] = ("endpoint", "query_params", "raidiam_conn_id", "output_uri")
    template_fields_renderers = {"query_params": "json"}

    def __init__(
        self,
        *,
        endpoint: str,
        raidiam_conn_id: str = RaidiamHook.default_conn_name,
        query_params: Mapping[str, Any] | None = None,
        paginate: bool = True,
        record_path: str | list[str] | None = None,
        meta: list[str | list[str]] | None = None,
        table_name: str = "records",
        **kwargs: Any,
    ) -> None:
        super().__init__(raidiam_conn_id=raidiam_conn_id, **kwargs)
        self.endpoint = endpoint
        self.query_params = query_params
        self.paginate = paginate
        self.record_path = record_path
        self.meta = meta
        self.table_name = table_name

    def execute(self, context: Context) -> Any:
        assert self.raidiam_conn_id is not None
        self.check_delivery()
        check_table_file_name(self.table_name)
        started = time.monotonic()
        with RaidiamHook(raidiam_conn_id=self.raidiam_conn_id) as hook:
            if self.paginate:
                body: Any = hook.paginate(self.endpoint, params=self.query_params)
            else:
                body = hook.get_json(self.endpoint, params=self.query_params)
            self.lineage_inputs = {self.endpoint: directory_namespace(str(hook.settings.api_base_url))}
        records = body if isinstance(body, list) else [body]
        frame = pd.json_normalize(records, record_path=self.record_path, meta=self.meta, sep="_")
        return self.deliver({self.table_name: frame}, context, single=True, started=started)
