"""The read interface the Directory catalogue needs from an HTTP client.

:class:`airflow_provider_raidiam.client.RaidiamClient` implements it; tests may pass any object with
these methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class PublicReader(Protocol):
    """Access to Raidiam's public endpoints (the participants list): no token, no client certificate."""

    def get_public_json(self, url: str) -> Any:
        """GET a public URL (no token, no client certificate) and return its parsed JSON body."""
        ...


class DirectoryReader(PublicReader, Protocol):
    """Read-only access to the Directory API, sharing one token and one connection pool."""

    def get_json(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a protected endpoint (relative to ``api_base_url``) and return its parsed JSON body."""
        ...

    def paginate(
        self, endpoint: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield every record of a paged endpoint (a plain JSON array passes through)."""
        ...

    def fan_out(self, func: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Call ``func`` on every item with bounded concurrency; results come back in input order."""
        ...
