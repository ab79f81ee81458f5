"""Finding and reading the previous snapshot, and the changes operator's argument checks (real files)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_raidiam.exceptions import ConfigurationError, SnapshotError
from airflow_provider_raidiam.operators.changes import RaidiamDirectoryChangesOperator, changes_alias
from airflow_provider_raidiam.operators.snapshots import latest_snapshot_before, read_snapshot, snapshot_folder


def write(folder: Path, table: str, rows: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"organisation_id": [f"o{i}" for i in range(rows)]}).to_parquet(folder / f"{table}.parquet")


def test_the_previous_snapshot_is_the_latest_earlier_folder_holding_a_table(tmp_path: Path) -> None:
    for day in ("2025-06-28", "2025-06-29"):
        write(tmp_path / day, "organisations")
    (tmp_path / "2025-06-30").mkdir()  # empty: a failed run leaves no files, so it is not a snapshot
    write(tmp_path / ".2025-06-30.tmp", "organisations")  # hidden: never a snapshot
    write(tmp_path / "2025-07-02", "organisations")  # later than the run: never its previous
    write(tmp_path / "2025-06-29b", "contacts")  # another table only
    folder = snapshot_folder(tmp_path.as_uri(), "2025-07-01")
    previous = latest_snapshot_before(folder, ["organisations"])
    assert previous is not None
    assert previous.name == "2025-06-29"
    assert latest_snapshot_before(snapshot_folder(tmp_path.as_uri(), "2025-06-28"), ["organisations"]) is None
    assert latest_snapshot_before(snapshot_folder((tmp_path / "absent").as_uri(), "x"), ["organisations"]) is None


def test_read_snapshot_reads_the_tables_it_has(tmp_path: Path) -> None:
    write(tmp_path / "day", "organisations", rows=3)
    frames = read_snapshot(snapshot_folder(tmp_path.as_uri(), "day"), ["organisations", "contacts"])
    assert list(frames) == ["organisations"]
    assert len(frames["organisations"]) == 3


def test_a_missing_or_unreadable_previous_snapshot_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="does not exist"):
        read_snapshot(snapshot_folder(tmp_path.as_uri(), "nope"), ["organisations"])
    (tmp_path / "day").mkdir()
    (tmp_path / "day" / "organisations.parquet").write_bytes(b"not parquet")
    with pytest.raises(SnapshotError, match=r"Cannot read .*organisations\.parquet"):
        read_snapshot(snapshot_folder(tmp_path.as_uri(), "day"), ["organisations"])


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", ".hidden", "a\\b"])
def test_snapshot_name_must_be_one_folder_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigurationError, match="snapshot_name must be one folder name"):
        snapshot_folder(tmp_path.as_uri(), name)


def test_the_operator_refuses_output_arguments_and_declares_its_alias() -> None:
    with pytest.raises(ConfigurationError, match=r"does not take \['output_format', 'output_uri'\]"):
        RaidiamDirectoryChangesOperator(
            task_id="c",
            tables=["organisations"],
            snapshot_root="file:///x",
            output_uri="file:///y",
            output_format="csv",
        )
    operator = RaidiamDirectoryChangesOperator(task_id="c", tables=["organisations"], snapshot_root="file:///x")
    assert operator.outlets == [changes_alias("raidiam_default")]
    assert {"snapshot_root", "snapshot_name", "previous_uri", "tables"} <= set(operator.template_fields)
