"""Paging faults of the Directory emulator: page envelopes that lie, and pages that shift under a read.

Two settings of ``PUT /__sandbox/faults``, applied to every paged response (``200`` with a page envelope):

* ``page_totals``: ``{"totalPages": n, "totalSize": m}`` (either or both) replaces the envelope's counts,
  e.g. ``{"totalPages": 20000, "totalSize": 1}``; the records stay the real ones.
* ``page_shift``: pages after the first are served one record back, as if a record had been added in
  front after page 0 was read and the last one removed: page ``p`` starts with the last record of page
  ``p - 1``. One record is repeated, the last is never served, and every count still adds up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Query = dict[str, list[str]]
PageOf = Callable[[Query], bytes]
"""Serves one page of the same request: the query in, the response body out."""

_COUNTS = ("totalPages", "totalSize")


def check(page_totals: Any, page_shift: Any) -> None:
    """Validate the two settings; raises ``ValueError`` with a readable message."""
    if page_totals is not None and (
        not isinstance(page_totals, dict)
        or not page_totals
        or set(page_totals) - set(_COUNTS)
        or not all(type(v) is int and v >= 0 for v in page_totals.values())
    ):
        raise ValueError('page_totals must be null or {"totalPages": int >= 0, "totalSize": int >= 0} (either or both)')
    if not isinstance(page_shift, bool):
        raise ValueError("page_shift must be true or false")


def apply(body: bytes, query: Query, page_of: PageOf, page_totals: dict[str, int] | None, page_shift: bool) -> bytes:
    """The body of a paged response with the faults applied (other bodies are returned as they are)."""
    if not (page_totals or page_shift) or not body.startswith(b'{"content":'):
        return body
    envelope = json.loads(body)
    page = envelope["pageNumber"]
    if page_shift and page > 0 and envelope["content"]:
        previous = json.loads(page_of({**query, "page": [str(page - 1)]}))["content"]
        envelope["content"] = previous[-1:] + envelope["content"][:-1]
    envelope.update(page_totals or {})
    return json.dumps(envelope, separators=(",", ":")).encode()
