"""``diff_tables``: properties that must hold for every catalogue table, on seeded random data.

Each property is checked against an independent expectation (the edits the test itself made), never
against the function's own output: shuffling rows and columns, dtype drift (``object`` vs ``string``,
``Int64`` vs ``int64``/``float64``, ``ns`` vs ``us`` timestamps, ``boolean`` vs ``object`` booleans),
and the different spellings of null must not show up as changes; real edits must, exactly.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from airflow_provider_raidiam.directory.changes import CHANGE, CHANGED_COLUMNS, count_changes, diff_table, diff_tables
from airflow_provider_raidiam.directory.schema import TABLES, Kind
from airflow_provider_raidiam.exceptions import SnapshotError

SEEDS = range(6)
WORDS = ["alpha", "beta", "Conceição", "", "δ", '{"a":1}']
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def random_table(table: str, rows: int, rng: random.Random) -> pd.DataFrame:
    """A frame of ``table`` with its catalogue columns and dtypes, unique keys, and some nulls."""
    schema = TABLES[table]
    data: dict[str, list[object]] = {}
    for column in schema.all_columns:
        if column.name in schema.key:
            position = schema.key.index(column.name)
            # composite keys: the first part repeats, the last part makes the whole key unique
            values: list[object] = [i // 3 if position < len(schema.key) - 1 else i for i in range(rows)]
            data[column.name] = values if column.kind is Kind.POSITION else [f"{column.name}-{v}" for v in values]
        else:
            data[column.name] = [random_value(column.kind, rng) for _ in range(rows)]
    return pd.DataFrame({name: pd.Series(values, dtype=TABLES[table].dtypes[name]) for name, values in data.items()})


def random_value(kind: Kind, rng: random.Random) -> object:
    if rng.random() < 0.2:
        return None
    if kind is Kind.BOOLEAN:
        return rng.random() < 0.5
    if kind is Kind.DATETIME:
        return EPOCH + timedelta(seconds=rng.randrange(10**8), microseconds=rng.randrange(10**6))
    if kind is Kind.POSITION:
        return rng.randrange(5)
    return rng.choice(WORDS)


def other_value(kind: Kind, value: object, rng: random.Random) -> object:
    """A value of ``kind`` that differs from ``value`` (a null becomes a value and a value may become null)."""
    while True:
        candidate = random_value(kind, rng)
        if pd.isna(value) and candidate is None:
            continue
        if candidate is None or pd.isna(value) or candidate != value:
            return candidate


def shuffled(frame: pd.DataFrame, rng: random.Random) -> pd.DataFrame:
    columns = list(frame.columns)
    rng.shuffle(columns)
    rows = list(range(len(frame)))
    rng.shuffle(rows)
    out = frame.iloc[rows][columns]
    out.index = pd.RangeIndex(100, 100 + len(out))  # a different index must not matter either
    return out


def drifted(frame: pd.DataFrame) -> pd.DataFrame:
    """The same values in the dtypes another pandas version or a parquet round trip may give."""
    out = {}
    for name in frame.columns:
        values = frame[name]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out[name] = values.dt.as_unit("us").dt.tz_convert("America/Sao_Paulo")
        elif values.dtype == "Int64":
            out[name] = values.astype("float64") if values.isna().any() else values.astype("int64")
        elif values.dtype == "boolean":
            out[name] = values.astype(object).where(values.notna(), np.nan)
        else:  # string -> object, nulls as None / NaN alternately
            objects = values.astype(object)
            nulls = [None if i % 2 else np.nan for i in range(len(values))]
            out[name] = objects.where(values.notna(), pd.Series(nulls, index=values.index, dtype=object))
    return pd.DataFrame(out)


def keys(frame: pd.DataFrame, table: str) -> set[tuple[object, ...]]:
    return set(frame[list(TABLES[table].key)].itertuples(index=False, name=None))


@pytest.mark.parametrize("table", list(TABLES))
def test_a_table_compared_with_itself_in_any_order_and_dtype_has_no_changes(table: str) -> None:
    rng = random.Random(table)
    frame = random_table(table, 40, rng)
    result = diff_tables({table: frame}, {table: drifted(shuffled(frame, rng))})
    changes = result[table]
    assert changes.empty
    assert list(changes.columns) == [CHANGE, CHANGED_COLUMNS, *TABLES[table].key] + [
        c for c in TABLES[table].column_names if c not in TABLES[table].key
    ]
    assert changes.dtypes[CHANGE] == "string"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("table", ["organisations", "api_resources", "authority_claim_authorisations", "clients"])
def test_edits_are_reported_exactly_whatever_the_row_and_column_order(table: str, seed: int) -> None:
    rng = random.Random(seed)
    schema = TABLES[table]
    before = random_table(table, 60, rng)
    after = before.copy()
    # remove 5 rows, add 4 new ones, edit 6 cells of 4 rows (never a key column)
    removed = rng.sample(range(60), 5)
    kept = [i for i in range(60) if i not in removed]
    edited_rows = rng.sample(kept, 4)
    editable = [c for c in schema.all_columns if c.name not in schema.key]
    expected_changed: dict[tuple[object, ...], set[str]] = {}
    for row in edited_rows:
        for column in rng.sample(editable, rng.choice([1, 2])):
            after.at[row, column.name] = other_value(column.kind, after.at[row, column.name], rng)
            key = tuple(after.loc[row, list(schema.key)])
            expected_changed.setdefault(key, set()).add(column.name)
    new_rows = random_table(table, 64, rng).iloc[60:]
    after = pd.concat([after.drop(index=removed), new_rows], ignore_index=True)

    changes = diff_tables({table: shuffled(before, rng)}, {table: drifted(shuffled(after, rng))})[table]

    assert count_changes(changes) == {"added": 4, "removed": 5, "changed": len(expected_changed)}
    assert keys(changes[changes[CHANGE] == "added"], table) == keys(new_rows, table)
    assert keys(changes[changes[CHANGE] == "removed"], table) == keys(before.iloc[removed], table)
    changed = changes[changes[CHANGE] == "changed"]
    reported = {tuple(row[list(schema.key)]): set(json.loads(row[CHANGED_COLUMNS])) for _, row in changed.iterrows()}
    assert reported == expected_changed
    assert changes.loc[changes[CHANGE] != "changed", CHANGED_COLUMNS].isna().all()


def test_changed_and_added_rows_carry_current_values_removed_rows_previous_ones() -> None:
    before = pd.DataFrame({"organisation_id": ["a", "b", "c"], "status": ["Active", "Active", "Active"]})
    after = pd.DataFrame({"organisation_id": ["b", "c", "d"], "status": ["Active", "Inactive", "Pending"]})
    changes = diff_tables({"organisations": before}, {"organisations": after})["organisations"]
    rows = {r.organisation_id: (r.change, r.status, r.changed_columns) for r in changes.itertuples()}
    assert rows == {
        "a": ("removed", "Active", pd.NA),
        "c": ("changed", "Inactive", '["status"]'),
        "d": ("added", "Pending", pd.NA),
    }
    assert list(changes.organisation_id) == ["d", "a", "c"], "sorted by change (added, removed, changed), then key"


def test_null_spellings_are_equal_and_null_to_value_is_a_change() -> None:
    key = ["k"]
    before = pd.DataFrame({"k": ["1", "2", "3", "4"], "v": pd.Series([None, np.nan, pd.NA, "x"], dtype=object)})
    after = pd.DataFrame({"k": ["1", "2", "3", "4"], "v": pd.Series([pd.NA, None, "now set", pd.NA], dtype="string")})
    changes = diff_table(before, after, key)
    assert list(changes.k) == ["3", "4"]
    assert list(changes.changed_columns) == ['["v"]', '["v"]']


def test_instants_compare_across_time_zones_units_and_text() -> None:
    moment = pd.Timestamp("2025-06-30T12:00:00.123456Z")
    before = pd.DataFrame({"k": ["a", "b"], "t": pd.Series([moment, pd.NaT]).dt.as_unit("ns")})
    after = pd.DataFrame({"k": ["a", "b"], "t": ["2025-06-30T09:00:00.123456-03:00", None]})
    assert diff_table(before, after, ["k"]).empty
    later = after.assign(t=["2025-06-30T09:00:00.123457-03:00", None])
    assert list(diff_table(before, later, ["k"]).changed_columns) == ['["t"]']


def test_numbers_compare_by_value_not_by_dtype() -> None:
    before = pd.DataFrame({"k": [1, 2, 3], "n": pd.Series([1, None, 3], dtype="Int64")})
    after = pd.DataFrame({"k": [1.0, 2.0, 3.0], "n": [1.0, np.nan, 4.0]})
    changes = diff_table(before, after, ["k"])
    assert changes.k.tolist() == [3.0]


def test_columns_in_only_one_snapshot_are_not_compared() -> None:
    before = pd.DataFrame({"organisation_id": ["a"], "status": ["Active"], "dropped": ["x"]})
    after = pd.DataFrame({"organisation_id": ["a"], "status": ["Active"], "city": ["Recife"]})
    assert diff_tables({"organisations": before}, {"organisations": after})["organisations"].empty


def test_rows_with_an_ambiguous_key_are_matched_by_content() -> None:
    # two claims of one organisation without ids (null key part): identical rows are unchanged
    before = pd.DataFrame({"a": ["o1", "o1", "o1", "o2"], "b": [None, None, None, "x"], "v": ["p", "q", "q", "r"]})
    after = pd.DataFrame({"a": ["o1", "o1", "o2"], "b": [None, None, "x"], "v": ["q", "s", "r"]})
    changes = diff_table(before, after, ["a", "b"])
    assert sorted(zip(changes.change, changes.v, strict=True)) == [("added", "s"), ("removed", "p"), ("removed", "q")]


def test_only_tables_present_in_both_snapshots_are_compared() -> None:
    frame = random_table("organisations", 3, random.Random(0))
    other = random_table("contacts", 3, random.Random(0))
    result = diff_tables({"organisations": frame, "authorities": other}, {"contacts": other, "organisations": frame})
    assert list(result) == ["organisations"]


def test_unknown_table_needs_keys() -> None:
    frame = pd.DataFrame({"id": ["a"], "v": [1]})
    with pytest.raises(SnapshotError, match=r"keys=\{'records'"):
        diff_tables({"records": frame}, {"records": frame})
    changed = frame.assign(v=[2])
    assert count_changes(
        diff_tables({"records": frame}, {"records": changed}, keys={"records": ["id"]})["records"]
    ) == {
        "added": 0,
        "removed": 0,
        "changed": 1,
    }


@pytest.mark.parametrize(
    ("previous", "current", "message"),
    [
        (pd.DataFrame({"status": ["x"]}), pd.DataFrame({"organisation_id": ["a"]}), "previous 'organisations' lacks"),
        (pd.DataFrame({"organisation_id": ["a"]}), [{"organisation_id": "a"}], "must be a pandas DataFrame"),
    ],
)
def test_bad_input_is_a_typed_error(previous: object, current: object, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        diff_tables({"organisations": previous}, {"organisations": current})  # type: ignore[dict-item]


def test_keys_override_must_be_a_list() -> None:
    frame = pd.DataFrame({"id": ["a"]})
    with pytest.raises(SnapshotError, match="non-empty list"):
        diff_tables({"records": frame}, {"records": frame}, keys={"records": "id"})
