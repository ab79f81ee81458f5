"""The read interface the Directory catalogue and paging need from an HTTP client.

:class:`airflow_provider_raidiam.client.RaidiamClient` implements it; tests may pass any object with
these members.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from airflow_provider_raidiam.concurrency import Logger
    from airflow_provider_raidiam.directory.paging import PageLimits

T = TypeVar("T")
R = TypeVar("R")


class PublicReader(Protocol):
    """Access to Raidiam's public endpoints (the participants list): no token, no client certificate."""

    def get_public_json(self, url: str) -> Any:
        """GET a public URL (no token, no client certificate) and return its parsed JSON body."""
        ...


class DirectoryReader(PublicReader, Protocol):
    """Read-only access to the Directory API, sharing one token and one connection pool."""

    @property
    def log(self) -> Logger:
        """Where paging reports a read it restarts."""
        ...

    @property
    def page_limits(self) -> PageLimits:
        """The page size to ask for and the most pages one read may take."""
        ...

    def url_for(self, endpoint: str) -> str:
        """The absolute URL of ``endpoint`` (for error reports)."""
        ...

    def get_json(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a protected endpoint (relative to ``api_base_url``) and return its parsed JSON body."""
        ...

    def fan_out(self, func: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Call ``func`` on every item with bounded concurrency; results come back in input order."""
        ...
