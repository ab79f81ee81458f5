"""``RaidiamDirectoryChangesOperator``: what changed in the Directory since the previous snapshot."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from airflow_provider_raidiam.directory.changes import CHANGES_SUFFIX, count_changes, diff_tables
from airflow_provider_raidiam.directory.flatten import empty_frame
from airflow_provider_raidiam.exceptions import ConfigurationError
from airflow_provider_raidiam.hooks.raidiam import RaidiamHook
from airflow_provider_raidiam.operators.directory import RaidiamDirectoryOperator, _as_table_list
from airflow_provider_raidiam.operators.output import write_tables
from airflow_provider_raidiam.operators.snapshots import (
    SNAPSHOT_FORMAT,
    latest_snapshot_before,
    read_snapshot,
    snapshot_folder,
    storage_path,
)
from airflow_provider_raidiam.version_compat import AirflowSkipException, Asset, AssetAlias, Context, ObjectStoragePath


def changes_asset(raidiam_conn_id: str, table: str) -> Asset:
    """The Asset that receives an event when ``table`` changed: ``raidiam://<conn-id>/<table>_changes``."""
    return Asset(
        uri=f"raidiam://{raidiam_conn_id.replace('_', '-')}/{table}{CHANGES_SUFFIX}",
        name=f"raidiam/{raidiam_conn_id}/{table}{CHANGES_SUFFIX}",
    )


def changes_alias(raidiam_conn_id: str) -> AssetAlias:
    """The AssetAlias through which the operator emits one :func:`changes_asset` event per changed table."""
    return AssetAlias(name=f"raidiam/{raidiam_conn_id}/changes")


class RaidiamDirectoryChangesOperator(RaidiamDirectoryOperator):
    """Read Directory tables, compare them with the previous snapshot, and write the changes.

    Each run writes ``<snapshot_root>/<snapshot_name>/<table>.parquet`` (the snapshot the next run compares
    with) and ``<table>_changes.parquet`` (see :func:`~airflow_provider_raidiam.directory.changes.diff_tables`:
    rows ``added``, ``removed`` or ``changed`` with the columns that changed), all atomically: either every
    file of the run is written or none is. The previous snapshot is ``previous_uri``, or else the folder
    under ``snapshot_root`` with the greatest name below ``snapshot_name``; without one, every row is
    ``added``. A table that the previous snapshot lacks is compared with an empty table.

    Returns (and logs) a summary: ``{"snapshot_uri", "previous_uri", "changed", "tables": {table: {"rows",
    "added", "removed", "changed", "uri", "changes_uri"}}}``.

    **Nothing changed**: with ``skip_when_unchanged`` (default) the files are still written, the summary is
    pushed to XCom, and the task ends *skipped*: downstream tasks (default trigger rule) are skipped and no
    asset event is emitted. **Something changed**: by default the operator's outlet is the AssetAlias
    :func:`changes_alias`, through which it emits one event per changed table on
    :func:`changes_asset` (extra: the counts and the changes file), so a DAG scheduled on
    ``changes_asset(conn_id, "organisations")`` runs only when organisations changed.

    :param tables: Directory table names (see ``RaidiamHook.list_tables()``). (templated)
    :param snapshot_root: object-storage folder holding one sub-folder per run. (templated)
    :param snapshot_name: this run's folder name; names must sort in time order. (templated)
    :param previous_uri: the previous snapshot's folder, instead of the latest one under the root. (templated)
    :param skip_when_unchanged: end the task skipped when no table changed (see above).
    :param raidiam_conn_id: see :class:`RaidiamDirectoryOperator`, like ``organisation_ids``, ``status``
        and ``filters`` (the previous snapshot should have been read with the same filters).
    """

    template_fields: Sequence[str] = (
        *RaidiamDirectoryOperator.template_fields,
        "snapshot_root",
        "snapshot_name",
        "previous_uri",
    )

    def __init__(
        self,
        *,
        tables: str | Sequence[str],
        snapshot_root: str,
        snapshot_name: str = "{{ ds }}",
        previous_uri: str | None = None,
        skip_when_unchanged: bool = True,
        raidiam_conn_id: str = RaidiamHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        unsupported = sorted({"output_uri", "output_format", "max_xcom_rows"} & set(kwargs))
        if unsupported:
            raise ConfigurationError(
                f"{type(self).__name__} does not take {unsupported}: it always writes parquet files under "
                "snapshot_root/snapshot_name (parquet keeps the dtypes and nulls the comparison needs)."
            )
        kwargs.setdefault("outlets", [changes_alias(raidiam_conn_id)])
        super().__init__(tables=tables, raidiam_conn_id=raidiam_conn_id, **kwargs)
        self.snapshot_root = snapshot_root
        self.snapshot_name = snapshot_name
        self.previous_uri = previous_uri
        self.skip_when_unchanged = skip_when_unchanged

    def execute(self, context: Context) -> dict[str, Any]:
        started = time.monotonic()
        tables = _as_table_list(self.tables)
        folder = snapshot_folder(self.snapshot_root, self.snapshot_name)
        if self.previous_uri:
            previous_folder: ObjectStoragePath | None = storage_path(self.previous_uri, "previous_uri")
        else:
            previous_folder = latest_snapshot_before(folder, tables)
        previous = read_snapshot(previous_folder, tables) if previous_folder is not None else {}
        current, note = self.read_tables()
        changes = diff_tables({t: previous.get(t, empty_frame(t)) for t in current}, current)

        written = write_tables(
            {**current, **{f"{t}{CHANGES_SUFFIX}": frame for t, frame in changes.items()}},
            str(folder),
            SNAPSHOT_FORMAT,
        )
        self.lineage_outputs = {name: info["uri"] for name, info in written.items()}
        summary: dict[str, Any] = {
            "snapshot_uri": str(folder),
            "previous_uri": None if previous_folder is None else str(previous_folder),
            "tables": {
                t: {
                    "rows": len(current[t]),
                    **count_changes(changes[t]),
                    "uri": written[t]["uri"],
                    "changes_uri": written[f"{t}{CHANGES_SUFFIX}"]["uri"],
                }
                for t in current
            },
        }
        changed = [t for t, frame in changes.items() if len(frame)]
        summary["changed"] = bool(changed)
        self._log_summary(summary, time.monotonic() - started, note)
        if not changed and self.skip_when_unchanged:
            context["ti"].xcom_push(key="return_value", value=summary)
            raise AirflowSkipException(
                f"No table changed since {summary['previous_uri']}: skipping downstream tasks and asset events."
            )
        self._record_change_events(context, summary, changed)
        return summary

    def _log_summary(self, summary: dict[str, Any], seconds: float, note: str) -> None:
        lines = [
            f"  {table}: {info['added']} added, {info['removed']} removed, {info['changed']} changed "
            f"({info['rows']} rows)"
            for table, info in summary["tables"].items()
        ]
        self.log.info(
            "Changes since %s, written to %s in %.1fs%s:\n%s",
            summary["previous_uri"] or "the start (no previous snapshot)",
            summary["snapshot_uri"],
            seconds,
            note,
            "\n".join(lines),
        )

    def _record_change_events(self, context: Context, summary: dict[str, Any], changed: list[str]) -> None:
        events = context.get("outlet_events")
        if events is None or self.raidiam_conn_id is None:
            return
        alias = changes_alias(self.raidiam_conn_id)
        for outlet in self.outlets:
            if isinstance(outlet, AssetAlias) and outlet.name == alias.name:
                for table in changed:
                    info = summary["tables"][table]
                    extra = {k: info[k] for k in ("added", "removed", "changed")} | {"uri": info["changes_uri"]}
                    events[outlet].add(changes_asset(self.raidiam_conn_id, table), extra=extra)
