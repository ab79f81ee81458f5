"""What changed between two snapshots of Directory tables: rows added, removed and changed, by key.

:func:`diff_tables` compares two ``{table: DataFrame}`` mappings table by table. Rows are matched by the
table's key columns (declared in :mod:`airflow_provider_raidiam.directory.schema`). The comparison is
about values, not about how pandas stores them:

* row order and column order never matter;
* a null compares equal to a null (``None``, ``NaN``, ``NaT`` and ``<NA>`` alike);
* dtype drift between snapshots is not a change: ``object`` vs ``string`` vs pandas 3 ``str`` text,
  ``int64`` vs ``Int64`` vs ``float64`` numbers, ``bool`` vs ``boolean``, and timestamps of any unit or
  time zone (compared as instants);
* a column present in only one of the snapshots is not compared (a new provider version may add one).

Rows whose key is not unique (possible only when a key column is null) are matched on their whole
content instead: identical rows are unchanged, the others are removed or added.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from airflow_provider_raidiam.directory.schema import TABLES
from airflow_provider_raidiam.exceptions import SnapshotError

__all__ = [
    "ADDED",
    "CHANGE",
    "CHANGED",
    "CHANGED_COLUMNS",
    "CHANGES_SUFFIX",
    "REMOVED",
    "count_changes",
    "diff_table",
    "diff_tables",
]

CHANGE = "change"
"""Name of the column saying what happened to the row: :data:`ADDED`, :data:`REMOVED` or :data:`CHANGED`."""
CHANGED_COLUMNS = "changed_columns"
"""Name of the column listing, for changed rows, the columns whose value changed (JSON array text)."""
ADDED, REMOVED, CHANGED = "added", "removed", "changed"
CHANGES_SUFFIX = "_changes"
"""Name suffix of a table's changes when written next to it (``organisations_changes.parquet``)."""
_ORDER = {ADDED: 0, REMOVED: 1, CHANGED: 2}


def diff_tables(
    previous: Mapping[str, pd.DataFrame],
    current: Mapping[str, pd.DataFrame],
    *,
    keys: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, pd.DataFrame]:
    """One frame of changes per table present in both ``previous`` and ``current`` (in ``current``'s order).

    Each frame has a ``change`` column (``"added"``, ``"removed"`` or ``"changed"``), a ``changed_columns``
    column (for ``"changed"`` rows, a JSON array of the columns whose value changed, e.g.
    ``'["status"]'``; ``<NA>`` otherwise), then the table's columns: the current values, or the previous
    ones for ``"removed"`` rows. Rows are sorted by change, then key. Nothing changed: an empty frame
    that still has all its columns.

    :param keys: key columns of tables that are not in the catalogue (or to override the catalogue's).
    :raises SnapshotError: a table without a known key, a key column missing, or a frame that is not a
        DataFrame.
    """
    return {
        table: diff_table(previous[table], frame, _key_of(table, keys), table=table)
        for table, frame in current.items()
        if table in previous
    }


def diff_table(
    previous: pd.DataFrame, current: pd.DataFrame, key: Sequence[str], *, table: str = "table"
) -> pd.DataFrame:
    """The changes of one table keyed by ``key``; see :func:`diff_tables`."""
    key = list(key)
    for side, frame in (("previous", previous), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise SnapshotError(f"{side} {table!r} must be a pandas DataFrame, got {type(frame).__name__}.")
        missing = [column for column in key if column not in frame.columns]
        if missing:
            raise SnapshotError(
                f"{side} {table!r} lacks its key column(s) {missing} (it has {list(frame.columns)}): compare "
                "snapshots of the same table, or pass keys={table: [...]} naming columns both snapshots have."
            )
    previous = previous.reset_index(drop=True)
    current = current.reset_index(drop=True)
    compared = [c for c in _column_order(table, current, key) if c in previous.columns and c not in key]
    old, new = _comparable(previous, current, key + compared)

    # Rows whose key is not unique on either side are matched by their whole content.
    old_dup = old.duplicated(subset=key, keep=False)
    new_dup = new.duplicated(subset=key, keep=False)
    ambiguous_keys = pd.concat([old.loc[old_dup, key], new.loc[new_dup, key]]).drop_duplicates()
    old_ambiguous = _isin(old, ambiguous_keys, key)
    new_ambiguous = _isin(new, ambiguous_keys, key)
    added_by_row, removed_by_row = _unmatched_rows(old[old_ambiguous], new[new_ambiguous])

    merged = pd.merge(
        old.loc[~old_ambiguous, key].assign(_old=np.flatnonzero(~old_ambiguous)),
        new.loc[~new_ambiguous, key].assign(_new=np.flatnonzero(~new_ambiguous)),
        on=key,
        how="outer",
        indicator=True,
        sort=False,
    )
    added = np.concatenate(
        [merged.loc[merged["_merge"] == "right_only", "_new"].to_numpy(dtype=np.int64), added_by_row]
    )
    removed = np.concatenate(
        [merged.loc[merged["_merge"] == "left_only", "_old"].to_numpy(dtype=np.int64), removed_by_row]
    )
    both = merged[merged["_merge"] == "both"]
    old_rows, new_rows = both["_old"].to_numpy(dtype=np.int64), both["_new"].to_numpy(dtype=np.int64)
    differs = np.column_stack(
        [~_equal(old[c].iloc[old_rows], new[c].iloc[new_rows]) for c in compared] or [np.zeros(len(both), dtype=bool)]
    )
    is_changed = differs.any(axis=1)
    changed_names = [json.dumps([c for c, d in zip(compared, row, strict=True) if d]) for row in differs[is_changed]]

    columns = _column_order(table, current, key)
    parts = [
        current.iloc[added][columns].assign(**{CHANGE: ADDED, CHANGED_COLUMNS: None}),
        _as_dtypes(previous.iloc[removed].reindex(columns=columns), current[columns].dtypes).assign(
            **{CHANGE: REMOVED, CHANGED_COLUMNS: None}
        ),
        current.iloc[new_rows[is_changed]][columns].assign(**{CHANGE: CHANGED, CHANGED_COLUMNS: changed_names}),
    ]
    keys_in_order = [new[key].iloc[added], old[key].iloc[removed], new[key].iloc[new_rows[is_changed]]]
    order = pd.concat([k for k in keys_in_order if len(k)] or keys_in_order[:1], ignore_index=True)
    result = pd.concat([p.reset_index(drop=True) for p in parts if len(p)] or parts[:1], ignore_index=True)
    order.insert(0, "_rank", result[CHANGE].map(_ORDER))
    result = result.iloc[order.sort_values(list(order.columns), kind="stable", na_position="last").index]
    result = result[[CHANGE, CHANGED_COLUMNS, *columns]].reset_index(drop=True)
    return result.astype({CHANGE: "string", CHANGED_COLUMNS: "string", **_dtypes_of(table, result[columns])})


def count_changes(changes: pd.DataFrame) -> dict[str, int]:
    """``{"added": n, "removed": n, "changed": n}`` of one frame returned by :func:`diff_tables`."""
    counts = changes[CHANGE].value_counts()
    return {kind: int(counts.get(kind, 0)) for kind in (ADDED, REMOVED, CHANGED)}


# ---- helpers ------------------------------------------------------------------------------------------


def _key_of(table: str, keys: Mapping[str, Sequence[str]] | None) -> list[str]:
    if keys and table in keys:
        if isinstance(keys[table], str) or not keys[table]:
            raise SnapshotError(f"keys[{table!r}] must be a non-empty list of column names, got {keys[table]!r}.")
        return list(keys[table])
    if table in TABLES:
        return list(TABLES[table].key)
    raise SnapshotError(
        f"{table!r} is not a Directory table, so its key is unknown: pass keys={{{table!r}: [<key columns>]}}."
    )


def _column_order(table: str, frame: pd.DataFrame, key: list[str]) -> list[str]:
    """Key columns first, then the catalogue's column order (other columns after, in the frame's order)."""
    declared = TABLES[table].column_names if table in TABLES else []
    rest = [c for c in declared if c in frame.columns] + [c for c in frame.columns if c not in declared]
    return key + [c for c in rest if c not in key]


def _dtypes_of(table: str, frame: pd.DataFrame) -> dict[str, str]:
    """The catalogue's dtypes for the columns it declares (so drifted inputs give documented dtypes)."""
    if table not in TABLES:
        return {}
    declared = TABLES[table].dtypes
    return {c: declared[c] for c in frame.columns if c in declared and _castable(frame[c], declared[c])}


def _castable(values: pd.Series, dtype: str) -> bool:
    try:
        values.astype(dtype)
    except (TypeError, ValueError):
        return False
    return True


def _as_dtypes(frame: pd.DataFrame, dtypes: pd.Series) -> pd.DataFrame:
    """``frame`` with each column cast to ``dtypes`` where the values allow it (else left as they are)."""
    return frame.astype({c: d for c, d in dtypes.items() if _castable(frame[c], d)})


def _comparable(previous: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both frames' ``columns`` in one dtype per column, chosen from the pair, so equal values compare equal."""
    old, new = {}, {}
    for column in columns:
        old[column], new[column] = _common_dtype(previous[column], current[column])
    return pd.DataFrame(old), pd.DataFrame(new)


def _common_dtype(a: pd.Series, b: pd.Series) -> tuple[pd.Series, pd.Series]:
    is_datetime = pd.api.types.is_datetime64_any_dtype
    if is_datetime(a.dtype) or is_datetime(b.dtype):
        return _instants(a), _instants(b)
    is_bool = pd.api.types.is_bool_dtype
    if is_bool(a.dtype) and is_bool(b.dtype):
        return a.astype("boolean"), b.astype("boolean")
    is_number = pd.api.types.is_numeric_dtype
    if is_number(a.dtype) and is_number(b.dtype) and not is_bool(a.dtype) and not is_bool(b.dtype):
        return a.astype("Float64"), b.astype("Float64")
    return a.astype("string"), b.astype("string")


def _instants(values: pd.Series) -> pd.Series:
    """Timestamps as UTC instants in nanoseconds (naive ones taken as UTC); anything else parsed first."""
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    elif getattr(values.dtype, "tz", None) is None:
        values = values.dt.tz_localize("UTC")
    return values.dt.tz_convert("UTC").dt.as_unit("ns")


def _equal(a: pd.Series, b: pd.Series) -> npt.NDArray[np.bool_]:
    """Element-wise equality where null equals null (``a`` and ``b`` have the same dtype and length)."""
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    both_null: npt.NDArray[np.bool_] = (a.isna() & b.isna()).to_numpy(dtype=bool)
    same: npt.NDArray[np.bool_] = (a == b).astype("boolean").fillna(False).to_numpy(dtype=bool)
    return same | both_null


def _isin(frame: pd.DataFrame, keys: pd.DataFrame, key: list[str]) -> npt.NDArray[np.bool_]:
    if keys.empty:
        return np.zeros(len(frame), dtype=bool)
    found = frame[key].merge(keys.assign(_hit=True), on=key, how="left")["_hit"]
    hit: npt.NDArray[np.bool_] = found.notna().to_numpy(dtype=bool)
    return hit


def _unmatched_rows(old: pd.DataFrame, new: pd.DataFrame) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Positions (in the full frames) of rows of ``new`` and of ``old`` with no identical row on the other side.

    Identical rows are paired one to one (a row present twice before and once now: one is removed).
    """
    if old.empty and new.empty:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)

    def occurrences(frame: pd.DataFrame, position: str) -> pd.DataFrame:
        digest = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        out = pd.DataFrame({"_row": digest, position: frame.index.to_numpy(dtype=np.int64)})
        out["_nth"] = out.groupby("_row").cumcount()
        return out

    paired = occurrences(old, "_old").merge(occurrences(new, "_new"), on=["_row", "_nth"], how="outer")
    added = paired.loc[paired["_old"].isna(), "_new"].to_numpy(dtype=np.int64)
    removed = paired.loc[paired["_new"].isna(), "_old"].to_numpy(dtype=np.int64)
    return added, removed
