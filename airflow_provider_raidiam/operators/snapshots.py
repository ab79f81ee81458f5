"""Snapshots kept on Airflow object storage: one folder per run under a root, one parquet file per table.

Folder names sort in time order (``{{ ds }}`` gives ``2025-06-30``); the previous snapshot of a run is
the folder with the greatest name below the run's own that holds at least one of the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import pandas as pd

from airflow_provider_raidiam.exceptions import ConfigurationError, SnapshotError
from airflow_provider_raidiam.version_compat import ObjectStoragePath

SNAPSHOT_FORMAT: Final = "parquet"


def snapshot_folder(root: str, name: str) -> ObjectStoragePath:
    """``<root>/<name>``, refusing a ``name`` that is not one plain folder name."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise ConfigurationError(
            f"snapshot_name must be one folder name that sorts in time order, such as '{{{{ ds }}}}', got {name!r}."
        )
    return storage_path(root, "snapshot_root") / name


def storage_path(uri: str, what: str) -> ObjectStoragePath:
    """``uri`` as an :class:`ObjectStoragePath`; a :class:`ConfigurationError` naming ``what`` if it cannot be."""
    try:
        return ObjectStoragePath(uri)
    except (ValueError, ImportError, TypeError) as error:
        raise ConfigurationError(
            f"{what} {uri!r} is not a usable object-storage URI ({type(error).__name__}: {error}): give a folder "
            "URI such as file:///data/raidiam or s3://aws_default@bucket/raidiam."
        ) from None


def latest_snapshot_before(folder: ObjectStoragePath, tables: Sequence[str]) -> ObjectStoragePath | None:
    """The latest sibling of ``folder`` whose name sorts before it and that holds one of ``tables``."""
    root = folder.parent
    if not root.exists():
        return None
    earlier = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name < folder.name),
        key=lambda p: p.name,
        reverse=True,
    )
    for candidate in earlier:
        if any((candidate / f"{table}.{SNAPSHOT_FORMAT}").exists() for table in tables):
            return candidate
    return None


def read_snapshot(folder: ObjectStoragePath, tables: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The tables of ``folder`` that exist there (a table added to the list since has no file yet).

    :raises SnapshotError: the folder does not exist, or a file cannot be read as parquet.
    """
    if not folder.exists():
        raise SnapshotError(
            f"Previous snapshot {str(folder)!r} does not exist: give the folder of an earlier run as "
            "previous_uri, or leave previous_uri unset to use the latest one under snapshot_root."
        )
    frames = {}
    for table in tables:
        path = folder / f"{table}.{SNAPSHOT_FORMAT}"
        if not path.exists():
            continue
        try:
            with path.open("rb") as handle:  # type: ignore[no-untyped-call]
                frames[table] = pd.read_parquet(handle)
        except (OSError, ValueError) as error:
            raise SnapshotError(
                f"Cannot read {str(path)!r} as the previous snapshot of {table!r} ({type(error).__name__}: "
                f"{error}). Remove or replace that file, or point previous_uri at another snapshot."
            ) from None
    return frames
