"""Raidiam page-number paging: ``page`` from 0 and ``size``; envelope ``content``/``totalPages``/``totalSize``.

All pages are read and checked before any record is handed out, so a caller never sees a short,
duplicated or half-consistent result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_raidiam.concurrency import Logger
from airflow_provider_raidiam.directory.reader import DirectoryReader
from airflow_provider_raidiam.exceptions import PaginationError, ResponseFormatError

MAX_RESTARTS = 2


def read_all_pages(
    reader: DirectoryReader,
    endpoint: str,
    params: Mapping[str, Any] | None,
    size: int,
    *,
    log: Logger,
    url: str | None = None,
) -> list[dict[str, Any]]:
    """Every record of ``endpoint``; pages after the first are fetched concurrently.

    :param url: the endpoint's absolute URL, for error reports.

    The record count must equal ``totalSize``; a ``totalSize`` that moves during the read restarts it
    (``MAX_RESTARTS`` times at most). A plain JSON array passes through as the records.

    :raises PaginationError: the count does not add up, or the data kept changing.
    :raises ResponseFormatError: a page is not an envelope (or an array) of objects.
    """
    for _attempt in range(MAX_RESTARTS + 1):
        records = _read_once(reader, endpoint, dict(params or {}), size, url or endpoint)
        if records is not None:
            return records
        log.warning("totalSize of %s changed during the read; reading it again from page 0", endpoint)
    raise PaginationError(
        f"{endpoint}: totalSize kept changing while the pages were read ({MAX_RESTARTS + 1} attempts). "
        "The Directory data is being modified; run the task again later.",
        url=url or endpoint,
    )


def _read_once(
    reader: DirectoryReader, endpoint: str, params: dict[str, Any], size: int, url: str
) -> list[dict[str, Any]] | None:
    first = reader.get_json(endpoint, {**params, "page": 0, "size": size})
    if isinstance(first, list):
        return _records(first, endpoint, page=0)
    content, total_pages, total_size = _envelope(first, endpoint, page=0)
    pages = reader.fan_out(
        lambda page: (page, reader.get_json(endpoint, {**params, "page": page, "size": size})),
        range(1, total_pages),
    )
    records = list(content)
    for page, body in pages:
        page_content, _pages, page_total = _envelope(body, endpoint, page=page)
        if page_total != total_size:
            return None
        records.extend(page_content)
    if len(records) != total_size:
        raise PaginationError(
            f"{endpoint}: read {len(records)} records in {total_pages} pages of {size}, but the server "
            f"reported totalSize {total_size}. The server's paging is inconsistent; nothing was kept.",
            url=url,
        )
    return records


def _records(body: list[Any], endpoint: str, *, page: int) -> list[dict[str, Any]]:
    if not all(isinstance(item, dict) for item in body):
        raise ResponseFormatError(f"{endpoint} page {page}: expected a JSON array of objects.")
    return body


def _envelope(body: Any, endpoint: str, *, page: int) -> tuple[list[dict[str, Any]], int, int]:
    """Validate a Raidiam page envelope and return (content, totalPages, totalSize)."""
    if not isinstance(body, dict):
        raise ResponseFormatError(
            f"{endpoint} page {page}: expected a page envelope object or an array, got {type(body).__name__}."
        )
    content, total_pages, total_size = body.get("content"), body.get("totalPages"), body.get("totalSize")
    if (
        not isinstance(content, list)
        or not isinstance(total_pages, int)
        or not isinstance(total_size, int)
        or total_pages < 0
        or total_size < 0
    ):
        raise ResponseFormatError(
            f"{endpoint} page {page}: malformed page envelope; expected 'content' (array), 'totalPages' and "
            f"'totalSize' (non-negative integers), got keys {sorted(body)[:10]}."
        )
    return _records(content, endpoint, page=page), total_pages, total_size
