"""Write DataFrames to Airflow object storage atomically: every table is complete, or none is written."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import unquote

import pandas as pd

from airflow_provider_raidiam.exceptions import ConfigurationError
from airflow_provider_raidiam.version_compat import ObjectStoragePath

OutputFormat = Literal["parquet", "csv"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("parquet", "csv")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_output_format(output_format: str) -> OutputFormat:
    """Validate an ``output_format`` argument."""
    for known in OUTPUT_FORMATS:
        if output_format == known:
            return known
    raise ConfigurationError(f"output_format must be one of {list(OUTPUT_FORMATS)}, got {output_format!r}.")


def check_table_file_name(name: object) -> str:
    """Validate a table name that becomes a file name (``<name>.<format>``) under ``output_uri``.

    :raises ConfigurationError: anything but 1 to 100 letters, digits, ``_`` and ``-`` (so no separator,
        ``..``, encoded character or absolute path can place the file outside ``output_uri``).
    """
    if isinstance(name, str) and _FILE_NAME.fullmatch(name):
        return name
    raise ConfigurationError(
        f"table_name {str(name)[:100]!r} cannot be a file name: use 1 to 100 letters, digits, '_' or '-', "
        "starting with a letter or digit (no '/', '\\', '..', '%' or absolute path), e.g. 'records'."
    )


def check_output_uri(output_uri: object) -> str:
    """Validate an ``output_uri`` (often templated) before anything is read or written.

    :raises ConfigurationError: not text; control characters or backslashes; a query or fragment; or a
        ``..`` segment in any part of the URI. Percent-encoding (even repeated) hides none of them.
    """
    if not isinstance(output_uri, str) or not output_uri.strip():
        raise ConfigurationError(f"output_uri must be a folder URI such as s3://bucket/raidiam, got {output_uri!r}.")
    decoded = output_uri
    for _ in range(5):  # %252e%252e is %2e%2e is ..
        decoded, before = unquote(decoded), decoded
        if decoded == before:
            break
    problem = ""
    if _CONTROL.search(decoded) or "\\" in decoded:
        problem = "control characters or backslashes"
    elif "?" in output_uri or "#" in output_uri:
        problem = "a query or fragment ('?' or '#')"
    elif ".." in re.split(r"[/@:?#]", decoded):
        problem = "a '..' segment"
    if problem:
        raise ConfigurationError(
            f"output_uri {output_uri[:200]!r} contains {problem} (percent-encoded or not): it could write outside "
            "its folder. Give the folder itself, e.g. s3://aws_default@bucket/raidiam/{{ ds }} or file:///data/raidiam."
        )
    return output_uri


def write_tables(
    frames: Mapping[str, pd.DataFrame], output_uri: str, output_format: OutputFormat
) -> dict[str, dict[str, Any]]:
    """Write each frame to ``<output_uri>/<table>.<format>`` and return ``{table: {"uri", "rows"}}``.

    Every table is first written under a hidden temporary name, then all are renamed into place; if
    anything fails, the temporary files are removed, and so are the tables of this run already renamed
    into place (object stores rename by copying, which can fail half-way through the tables): a failed run
    leaves no half-written file and no mix of this run's tables with older ones.

    :raises ConfigurationError: an ``output_uri`` or table name that could lead outside the folder (checked
        before anything is written), or a folder that cannot be created.
    """
    check_output_uri(output_uri)
    for table in frames:
        check_table_file_name(table)
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
