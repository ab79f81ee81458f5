"""Raidiam page-number paging: ``page`` from 0 and ``size``; envelope ``content``/``totalPages``/``totalSize``.

Nothing a server says about paging is trusted: page 0's ``totalPages`` must be ``ceil(totalSize / size)``
(``size`` as the server reports it, else as we asked; an empty result may say 0 or 1 pages) and at most
``max_pages``; every page must repeat page 0's counts and hold exactly the records its position calls for.
Pages are requested a few at a time (see :class:`~airflow_provider_raidiam.concurrency.FanOut`), so a lie
is found after a bounded number of requests, and all pages are read and checked before any record is
handed out: a caller never sees a short or half-consistent result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from airflow_provider_raidiam.directory.reader import DirectoryReader
from airflow_provider_raidiam.exceptions import ConfigurationError, PaginationError, ResponseFormatError

MAX_RESTARTS = 2
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 50_000
"""The largest ``size`` the Directory API accepts (OpenAPI 1.3.7 ``PageableRequest``)."""
DEFAULT_MAX_PAGES = 10_000
"""Pages one read may take unless the connection says otherwise: 10 million records at the default
page size, several hundred times the largest real Directory list."""


@dataclass(frozen=True)
class PageLimits:
    """How a reader pages: the ``size`` it asks for unless told otherwise, and the most pages one read may take."""

    size: int = DEFAULT_PAGE_SIZE
    max_pages: int = DEFAULT_MAX_PAGES


class _TotalSizeMoved(Exception):
    """A page reported another ``totalSize`` than page 0: the data changed during the read."""


@dataclass(frozen=True)
class _Plan:
    """What page 0 promised: ``total_pages`` pages of ``size`` records, ``total_size`` in all."""

    endpoint: str
    url: str
    total_pages: int
    total_size: int
    size: int

    def expected_records(self, page: int) -> int:
        return max(0, min(self.size, self.total_size - page * self.size))

    def check(self, page: int, content: list[dict[str, Any]], total_pages: int, total_size: int) -> None:
        """Raise unless a page agrees with page 0 and holds the records its position calls for."""
        if total_size != self.total_size:
            raise _TotalSizeMoved
        expected = self.expected_records(page)
        if total_pages != self.total_pages or len(content) != expected:
            raise PaginationError(
                f"{self.endpoint} page {page}: {len(content)} records (totalPages {total_pages}), but page 0 "
                f"promised {self.total_pages} pages of {self.size} for totalSize {self.total_size}, so "
                f"{expected} here. The server's paging is inconsistent; nothing was kept. Run the task again; "
                "if it persists, report the endpoint to the Directory operator.",
                url=self.url,
            )


def check_page_size(page_size: object) -> int:
    """Validate a page size (``size``) before any request.

    :raises ConfigurationError: not a whole number from 1 to :data:`MAX_PAGE_SIZE`.
    """
    if type(page_size) is int and 1 <= page_size <= MAX_PAGE_SIZE:
        return page_size
    raise ConfigurationError(
        f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE} (the Directory's limit), got {page_size!r}."
    )


def read_all_pages(
    reader: DirectoryReader,
    endpoint: str,
    params: Mapping[str, Any] | None = None,
    page_size: int | None = None,
) -> list[dict[str, Any]]:
    """Every record of ``endpoint``; pages after the first are fetched concurrently, a few at a time.

    :param page_size: the page size to ask for (default: the reader's ``page_limits.size``).

    A read of more than the reader's ``page_limits.max_pages`` pages is refused before any page after the
    first is requested. A ``totalSize`` that moves during the read restarts it (``MAX_RESTARTS`` times at
    most). A plain JSON array passes through as the records.

    :raises ConfigurationError: ``page_size`` is not from 1 to :data:`MAX_PAGE_SIZE`.
    :raises PaginationError: the counts do not add up, are more than ``max_pages`` pages, or the data kept
        changing.
    :raises ResponseFormatError: a page is not an envelope (or an array) of objects.
    """
    limits = reader.page_limits
    size = check_page_size(limits.size if page_size is None else page_size)
    where = reader.url_for(endpoint)
    for _attempt in range(MAX_RESTARTS + 1):
        try:
            return _read_once(reader, endpoint, dict(params or {}), size, where, limits.max_pages)
        except _TotalSizeMoved:
            reader.log.warning("totalSize of %s changed during the read; reading it again from page 0", endpoint)
    raise PaginationError(
        f"{endpoint}: totalSize kept changing while the pages were read ({MAX_RESTARTS + 1} attempts). "
        "The Directory data is being modified; run the task again later.",
        url=where,
    )


def _read_once(
    reader: DirectoryReader, endpoint: str, params: dict[str, Any], size: int, url: str, max_pages: int
) -> list[dict[str, Any]]:
    first = reader.get_json(endpoint, {**params, "page": 0, "size": size})
    if isinstance(first, list):
        return _records(first, endpoint, page=0)
    content, total_pages, total_size, reported_size = _envelope(first, endpoint, page=0)
    plan = _plan(endpoint, url, total_pages, total_size, reported_size or size, max_pages)
    plan.check(0, content, total_pages, total_size)

    def fetch(page: int) -> list[dict[str, Any]]:
        body = reader.get_json(endpoint, {**params, "page": page, "size": size})
        page_content, page_total_pages, page_total_size, _size = _envelope(body, endpoint, page=page)
        plan.check(page, page_content, page_total_pages, page_total_size)
        return page_content

    records = list(content)
    for page_content in reader.fan_out(fetch, range(1, total_pages)):
        records.extend(page_content)
    return records


def _plan(endpoint: str, url: str, total_pages: int, total_size: int, size: int, max_pages: int) -> _Plan:
    """Page 0's counts, once they are consistent with each other and within ``max_pages``."""
    expected = -(-total_size // size)
    if total_pages != expected and not (total_size == 0 and total_pages == 1):
        raise PaginationError(
            f"{endpoint}: page 0 says totalPages {total_pages} for totalSize {total_size} in pages of {size}, "
            f"which makes {expected}. The server's paging is inconsistent; no further page was requested. "
            "Run the task again; if it persists, report the endpoint to the Directory operator.",
            url=url,
        )
    if total_pages > max_pages:
        raise PaginationError(
            f"{endpoint}: {total_pages} pages of {size} (totalSize {total_size}) are more than max_pages "
            f"{max_pages}; no further page was requested. Filter the read, raise page_size, or raise the "
            "connection extra 'max_pages' if the Directory really is this large.",
            url=url,
        )
    return _Plan(endpoint, url, total_pages, total_size, size)


def _records(body: list[Any], endpoint: str, *, page: int) -> list[dict[str, Any]]:
    if not all(isinstance(item, dict) for item in body):
        raise ResponseFormatError(f"{endpoint} page {page}: expected a JSON array of objects.")
    return body


def _envelope(body: Any, endpoint: str, *, page: int) -> tuple[list[dict[str, Any]], int, int, int | None]:
    """Validate a Raidiam page envelope and return (content, totalPages, totalSize, size or None)."""
    if not isinstance(body, dict):
        raise ResponseFormatError(
            f"{endpoint} page {page}: expected a page envelope object or an array, got {type(body).__name__}."
        )
    content, total_pages, total_size = body.get("content"), body.get("totalPages"), body.get("totalSize")
    size = body.get("size")
    if (
        not isinstance(content, list)
        or not _count(total_pages)
        or not _count(total_size)
        or not (size is None or (_count(size) and size > 0))
    ):
        raise ResponseFormatError(
            f"{endpoint} page {page}: malformed page envelope; expected 'content' (array), 'totalPages' and "
            f"'totalSize' (non-negative integers) and, if present, 'size' (a positive integer), got keys "
            f"{sorted(body)[:10]}."
        )
    return _records(content, endpoint, page=page), total_pages, total_size, size


def _count(value: Any) -> TypeGuard[int]:
    return type(value) is int and value >= 0
