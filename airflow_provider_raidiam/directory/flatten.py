"""Nested Directory JSON -> one typed DataFrame per entity, like a relational schema.

One generic path serves every table: the records of a root table become an object DataFrame
(``pandas.DataFrame(records)``), each nested list field is exploded (``Series.explode``) into the records
of a child table that carries its parent's key columns, and every column is converted with vectorised
pandas operations according to :mod:`airflow_provider_raidiam.directory.schema`. Python-level loops run
only over the cells that need them (mixed-type values, unknown fields, values that fail conversion).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from airflow_provider_raidiam.directory.schema import (
    DROPPED_FIELDS,
    EXTRA_COLUMN,
    TABLES,
    Kind,
    TableSchema,
    descendants,
)
from airflow_provider_raidiam.exceptions import ConfigurationError, DataIntegrityError, ResponseFormatError

__all__ = ["check_records", "check_unique", "empty_frame", "flatten", "schema_of", "to_text"]

log = logging.getLogger(__name__)

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)
_DATE_FORMATS = ("ISO8601", "%d/%m/%Y")
_NS_MIN = pd.Timestamp.min.tz_localize("UTC")
_NS_MAX = pd.Timestamp.max.tz_localize("UTC")
_DATETIME = Kind.DATETIME.dtype
_BOOLS = {"true": True, "false": False}


def schema_of(table: str) -> TableSchema:
    """The schema of ``table``; :class:`ConfigurationError` if there is no such table."""
    try:
        return TABLES[table]
    except KeyError:
        raise ConfigurationError(f"unknown table {table!r}") from None


def empty_frame(table: str) -> pd.DataFrame:
    """A table with no rows but all its columns and dtypes."""
    schema = schema_of(table)
    return pd.DataFrame({c.name: pd.Series([], dtype=c.dtype) for c in schema.all_columns})


def flatten(
    records: Sequence[Any],
    root: str,
    *,
    inherited: Mapping[str, Sequence[Any]] | None = None,
    tables: Collection[str] | None = None,
    source: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Build ``root`` and the tables nested in its records.

    :param records: the root table's JSON objects, e.g. the authorisation servers of some organisations.
    :param root: the table the records belong to (a name from ``schema.TABLES``).
    :param inherited: parent key values for each record, one sequence per column, each as long as
        ``records`` (e.g. ``{"organisation_id": [...]}`` for records read under ``/organisations/{id}``).
    :param tables: the tables to return (default: ``root`` and all its descendants).
    :param source: where the records came from, for error messages (default: ``root``).
    :returns: ``{table: DataFrame}``; every frame has its schema's columns and dtypes, and rows sorted by
        key, every row with its whole key, and no key twice.
    :raises ResponseFormatError: a record or a nested list is not the JSON the schema expects.
    :raises DataIntegrityError: a row has no key, or a key is on several rows (nothing is dropped).
    """
    tree = descendants(schema_of(root).name)
    wanted = set(tree) if tables is None else set(tables)
    if not wanted <= set(tree):
        raise ConfigurationError(f"tables {sorted(wanted - set(tree))} are not nested in {root!r}")
    where = source or root
    raw = _objects(records, where)
    inh = pd.DataFrame({k: pd.Series(v, dtype="string") for k, v in (inherited or {}).items()})
    if len(inh.columns) and len(inh) != len(raw):
        raise ValueError("every inherited column must have one value per record")
    out: dict[str, pd.DataFrame] = {}
    _build(schema_of(root), raw, inh, np.arange(len(raw)), wanted, out, where)
    return {t: _finish(out[t], schema_of(t)) if t in out else empty_frame(t) for t in tree if t in wanted}


def check_records(body: Any, where: str, what: str = "a JSON array of objects") -> list[dict[str, Any]]:
    """``body`` if it is a list of JSON objects, else :class:`ResponseFormatError` naming ``where``."""
    if not isinstance(body, list | tuple):
        raise ResponseFormatError(f"{where}: expected {what}, got {_json_type(body)}")
    bad = [v for v in body if type(v) is not dict]
    if bad:
        raise ResponseFormatError(f"{where}: expected {what}, got an item that is {_json_type(bad[0])}")
    return list(body)


def _objects(values: Any, where: str, what: str = "a JSON array of objects") -> pd.DataFrame:
    """Object DataFrame of JSON objects (absent fields NaN, JSON nulls None), positions as index."""
    values = check_records(values, where, what)
    if not values:
        return pd.DataFrame(index=pd.RangeIndex(0))
    return pd.DataFrame(values, dtype=object)


def _json_type(value: Any) -> str:
    """JSON name of a parsed value's type, for error messages."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


def _build(
    schema: TableSchema,
    raw: pd.DataFrame,
    inh: pd.DataFrame,
    positions: np.ndarray[Any, Any],
    wanted: set[str],
    out: dict[str, pd.DataFrame],
    where: str,
) -> None:
    """Convert one table and recurse into the children that lead to a wanted table.

    ``inh`` holds the values passed down by the parent row of each record, ``positions`` the position of
    each record in its parent's list.
    """
    frame = _convert(schema, raw, inh, positions)
    _check_keys(frame, schema, where)
    if schema.name in wanted:
        out[schema.name] = frame
    passed = list(dict.fromkeys([c.name for c in schema.columns if c.inherited] + list(schema.key)))
    for field, child in schema.children:
        if not wanted & set(descendants(child)):
            continue
        values = raw[field] if field in raw else pd.Series([], dtype=object)
        values = values[values.notna().to_numpy(dtype=bool)]
        bad = [v for v in values if type(v) is not list]
        if bad:
            raise ResponseFormatError(f"{where}: expected {field} to be an array, got {_json_type(bad[0])}")
        items = values.explode()
        index = items.groupby(level=0, sort=False).cumcount().to_numpy()
        present = items.notna().to_numpy(dtype=bool)
        items = items[present]
        child_raw = _objects(items.tolist(), where, f"{field} to hold JSON objects")
        child_inh = frame[passed].take(items.index.to_numpy()).reset_index(drop=True)
        _build(schema_of(child), child_raw, child_inh, index[present], wanted, out, where)


def _convert(
    schema: TableSchema, raw: pd.DataFrame, inh: pd.DataFrame, positions: np.ndarray[Any, Any]
) -> pd.DataFrame:
    """Typed columns of one table, ``extra`` included, rows in record order."""
    n = len(raw)
    cols: dict[str, Any] = {}
    failures: list[tuple[str, np.ndarray[Any, np.dtype[np.bool_]], np.ndarray[Any, Any]]] = []
    for col in schema.columns:
        parent = inh[col.name] if col.inherited and col.name in inh else None
        if col.source is None:
            typed = parent if parent is not None else pd.Series(positions, dtype=col.dtype)
            cols[col.name] = typed.reset_index(drop=True)
            continue
        values = raw[col.source] if col.source in raw else pd.Series([None] * n, dtype=object)
        typed, failed = _CONVERTERS[col.kind](values)
        if parent is not None:
            failed = failed | (typed.notna() & parent.notna() & typed.ne(parent)).fillna(False).to_numpy(bool)
            typed = parent.fillna(typed)
        if failed.any():
            failures.append((col.source, failed, values.to_numpy()))
        cols[col.name] = typed.reset_index(drop=True)
    cols[EXTRA_COLUMN] = _extra(raw, schema, failures)
    return pd.DataFrame(cols, index=pd.RangeIndex(n))


def _extra(
    raw: pd.DataFrame,
    schema: TableSchema,
    failures: list[tuple[str, np.ndarray[Any, np.dtype[np.bool_]], np.ndarray[Any, Any]]],
) -> pd.Series:
    """JSON object text of unknown fields and unconvertible values per row (NA when there are none)."""
    known = schema.sources | DROPPED_FIELDS
    unknown = [c for c in raw.columns if c not in known]
    parts: dict[int, dict[str, Any]] = {}
    if unknown:
        present = raw[unknown].notna().to_numpy(dtype=bool)
        cells = raw[unknown].to_numpy()
        for row in np.flatnonzero(present.any(axis=1)):
            parts[int(row)] = {k: cells[row, j] for j, k in enumerate(unknown) if present[row, j]}
    for field, failed, values in failures:
        for row in np.flatnonzero(failed):
            parts.setdefault(int(row), {})[field] = values[row]
    out = np.full(len(raw), None, dtype=object)
    for pos, fields in parts.items():
        out[pos] = _JSON.encode(fields)
    return pd.Series(out, dtype="string")


def _finish(frame: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """Sort by key (``_check_keys`` made sure every row has a whole, unique key)."""
    return frame.sort_values(list(schema.key), kind="stable").reset_index(drop=True)


def check_unique(records: Sequence[Mapping[str, Any]], table: str, where: str) -> None:
    """Check the key of ``table`` on its raw records, e.g. a complete paged read before any filter.

    Key columns are read from each record's own fields (parent keys passed down by a fan-out are not).

    :raises DataIntegrityError: a record without its key, or a key on several records.
    """
    schema = schema_of(table)
    sources = {c.name: c.source for c in schema.columns if c.name in schema.key and c.source is not None}
    if len(sources) != len(schema.key):  # pragma: no cover - a programming error, not a server's
        raise ValueError(f"{table}: key {schema.key} is not made of record fields")
    keys = {
        name: pd.Series([None if r.get(field) is None else to_text(r.get(field)) for r in records], dtype="string")
        for name, field in sources.items()
    }
    _check_keys(pd.DataFrame(keys, columns=list(schema.key)), schema, where)


def _check_keys(frame: pd.DataFrame, schema: TableSchema, where: str) -> None:
    """Raise unless every row has its whole key and no key is on two rows (nothing is ever dropped)."""
    key = list(schema.key)
    incomplete = frame[key].isna().any(axis=1).to_numpy(dtype=bool)
    if incomplete.any():
        raise _integrity_error(
            frame[incomplete],
            schema,
            where,
            f"{incomplete.sum()} record(s) without a value for the key ({', '.join(key)})",
            "The server sent records that cannot be told apart; nothing was kept. Report the endpoint and these "
            "records to the Directory operator.",
        )
    repeated = frame.duplicated(subset=key, keep=False).to_numpy(dtype=bool)
    if repeated.any():
        raise _integrity_error(
            frame[repeated],
            schema,
            where,
            f"{repeated.sum()} rows share their key ({', '.join(key)}) with another row",
            "The server sent the same record more than once: when the count still matched totalSize, another "
            "record was lost (the data moved between pages, or the server's paging is broken). Nothing was "
            "kept. Run the task again; if it persists, report the endpoint and these keys to the Directory "
            "operator.",
        )


def _integrity_error(rows: pd.DataFrame, schema: TableSchema, where: str, what: str, fix: str) -> DataIntegrityError:
    examples = [
        ", ".join(f"{column}={_shorten(value)}" for column, value in zip(schema.key, values, strict=True))
        for values in rows[list(schema.key)].drop_duplicates().head(3).itertuples(index=False)
    ]
    return DataIntegrityError(
        f"{where}: table {schema.name}: {what}, e.g. {'; '.join(examples)}. {fix}",
        table=schema.name,
        key=schema.key,
        examples=examples,
    )


def _shorten(value: Any) -> str:
    """A key value as an escaped, bounded literal for an error message (the server chose it)."""
    text = "<missing>" if pd.isna(value) else repr(str(value))
    return text if len(text) <= 80 else text[:77] + "..."


# ---- converters: object Series -> (typed Series, bool mask of values that could not be converted) ----


def to_text(value: Any) -> str:
    """Text form of one JSON value: numbers without ``.0`` noise, booleans ``true``/``false``, JSON else."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return _JSON.encode(value)


def _no_failures(values: pd.Series) -> np.ndarray[Any, np.dtype[np.bool_]]:
    return np.zeros(len(values), dtype=bool)


def _string(values: pd.Series) -> tuple[pd.Series, np.ndarray[Any, np.dtype[np.bool_]]]:
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        values = values.map(to_text, na_action="ignore")
    return values.astype("string"), _no_failures(values)


def _json(values: pd.Series) -> tuple[pd.Series, np.ndarray[Any, np.dtype[np.bool_]]]:
    return values.map(_JSON.encode, na_action="ignore").astype("string"), _no_failures(values)


def _boolean(values: pd.Series) -> tuple[pd.Series, np.ndarray[Any, np.dtype[np.bool_]]]:
    if pd.api.types.infer_dtype(values, skipna=True) in ("boolean", "empty"):
        return values.astype("boolean"), _no_failures(values)
    typed = values.map(_bool, na_action="ignore").astype("boolean")
    return typed, (values.notna() & typed.isna()).to_numpy(dtype=bool)


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else _BOOLS.get(str(value).strip().lower())


def _datetime(values: pd.Series) -> tuple[pd.Series, np.ndarray[Any, np.dtype[np.bool_]]]:
    original = values.to_numpy()
    not_text = _no_failures(values)
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        is_text = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
        not_text = values.notna().to_numpy(dtype=bool) & ~is_text
        values = values.where(is_text)
    text = values.astype("string").str.strip()
    todo = text.str.len().gt(0).fillna(False).to_numpy(dtype=bool)
    pieces = [pd.Series([], dtype=_DATETIME)]
    for fmt in _DATE_FORMATS:
        if not todo.any():
            break
        got = pd.to_datetime(text[todo], format=fmt, errors="coerce", utc=True)
        ok = (got.notna() & got.ge(_NS_MIN) & got.le(_NS_MAX)).to_numpy(dtype=bool)
        pieces.append(got[ok].astype(_DATETIME))
        todo[np.flatnonzero(todo)[ok]] = False
    parsed = pd.concat(pieces).reindex(values.index)
    failed = todo | not_text
    if failed.any():
        example = original[np.flatnonzero(failed)[0]]
        log.warning("%d date value(s) could not be parsed, e.g. %r; kept in 'extra'", failed.sum(), example)
    return parsed, failed


_CONVERTERS = {Kind.STRING: _string, Kind.JSON: _json, Kind.BOOLEAN: _boolean, Kind.DATETIME: _datetime}
