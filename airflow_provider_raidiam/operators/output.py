"""Write DataFrames to Airflow object storage atomically: every table is complete, or none is written."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import pandas as pd

from airflow_provider_raidiam.exceptions import ConfigurationError
from airflow_provider_raidiam.version_compat import ObjectStoragePath

OutputFormat = Literal["parquet", "csv"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("parquet", "csv")


def check_output_format(output_format: str) -> OutputFormat:
    """Validate an ``output_format`` argument."""
    for known in OUTPUT_FORMATS:
        if output_format == known:
            return known
    raise ConfigurationError(f"output_format must be one of {list(OUTPUT_FORMATS)}, got {output_format!r}.")


def write_tables(
    frames: Mapping[str, pd.DataFrame], output_uri: str, output_format: OutputFormat
) -> dict[str, dict[str, Any]]:
    """Write each frame to ``<output_uri>/<table>.<format>`` and return ``{table: {"uri", "rows"}}``.

    Every table is first written under a hidden temporary name, then all are renamed into place; if
    anything fails, the temporary files are removed, and so are the tables of this run already renamed
    into place (object stores rename by copying, which can fail half-way through the tables): a failed run
    leaves no half-written file and no mix of this run's tables with older ones.
    """
    try:
        base = ObjectStoragePath(output_uri)
        base.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError, ImportError) as error:
        raise ConfigurationError(
            f"output_uri {output_uri!r} cannot be used as an output folder ({type(error).__name__}: {error}). "
            "Give a folder URI this worker can create and write to (for object storage, with the filesystem "
            "package and connection it needs, e.g. s3://aws_default@bucket/path)."
        ) from None
    run_tag = uuid.uuid4().hex[:12]
    staged: list[tuple[ObjectStoragePath, ObjectStoragePath]] = []
    published: list[ObjectStoragePath] = []
    try:
        for table, frame in frames.items():
            final = base / f"{table}.{output_format}"
            temporary = base / f".{table}.{output_format}.{run_tag}.tmp"
            staged.append((temporary, final))
            with temporary.open("wb") as handle:  # type: ignore[no-untyped-call]
                if output_format == "parquet":
                    frame.to_parquet(handle, index=False)
                else:
                    frame.to_csv(handle, index=False)
        for temporary, final in staged:
            temporary.rename(final)
            published.append(final)
    except BaseException:
        for path in [temporary for temporary, _final in staged] + published:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        raise
    return {
        table: {"uri": str(final), "rows": len(frames[table])}
        for table, (_tmp, final) in zip(frames, staged, strict=True)
    }
