"""``TableFilters``: which records a table read keeps, as one validated, immutable value.

Every filter is optional; a filter that does not apply to a table is ignored by it:

* ``organisation_ids``: only these organisations. Per-organisation fan-outs call only these; the
  ``organisations``, ``clients`` and ``participants_*`` tables keep only their rows. ``()`` gives empty
  tables (with their columns) and makes no request. Reference tables ignore it.
* ``status``: keep only the *root records* whose status matches (case-insensitive): organisations for
  the ``/organisations`` tree, its fan-outs and the participants tables (so ``status="Active"`` reads
  the software statements of active organisations, whatever the statements' own status), clients for
  ``clients`` (also sent to the API as ``status``), the reference rows for reference tables.
* ``participants_url``: the public participants list (required by ``participants_*`` tables).
* ``start_date`` / ``end_date``: ``clients`` only, sent as ``startDate``/``endDate`` (RFC 3339; a naive
  ``datetime`` is taken as UTC, a ``date`` as its midnight UTC, text is sent as given).
* ``page_size``: the ``size`` of each page of paged endpoints (default: the connection's).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from airflow_provider_raidiam.directory.paging import check_page_size
from airflow_provider_raidiam.exceptions import ConfigurationError

__all__ = ["TableFilters"]


@dataclass(frozen=True)
class TableFilters:
    """The filters of a table read (see the module docstring); checked when built, before any request.

    :raises ConfigurationError: a filter of the wrong type or out of range.
    """

    organisation_ids: Sequence[str] | None = None
    """Any iterable of IDs (a list, a pandas Series); kept as a tuple of unique IDs in order."""
    status: str | None = None
    participants_url: str | None = None
    start_date: datetime | date | str | None = None
    end_date: datetime | date | str | None = None
    page_size: int | None = None

    def __post_init__(self) -> None:
        ids: Any = self.organisation_ids
        if isinstance(ids, str):
            raise ConfigurationError(
                "organisation_ids must be a list of IDs, not a single string (a template renders to text: pass a "
                "list, or set render_template_as_native_obj=True on the DAG)."
            )
        if ids is not None and not isinstance(ids, Iterable):
            raise ConfigurationError(f"organisation_ids must be a list of IDs, got {type(ids).__name__}")
        if ids is not None:  # any iterable (a list, a pandas Series) becomes a tuple of unique IDs in order
            object.__setattr__(self, "organisation_ids", tuple(dict.fromkeys(map(str, ids))))
        if self.status is not None and not isinstance(self.status, str):
            raise ConfigurationError(f"status must be text such as 'Active', got {type(self.status).__name__}")
        if self.page_size is not None:
            check_page_size(self.page_size)
        _rfc3339(self.start_date, "start_date")
        _rfc3339(self.end_date, "end_date")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TableFilters:
        """Filters from ``{name: value}`` (an operator's ``filters``, a hook's keyword arguments).

        :raises ConfigurationError: an unknown filter name (with the closest valid one), or a bad value.
        """
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigurationError(f"Unknown filter(s) {unknown}{hint}: use {sorted(names)}.")
        return cls(**values)

    def merged(self, **values: Any) -> TableFilters:
        """These filters with ``values`` set (checked again)."""
        return dataclasses.replace(self, **values)

    def keeps(self, record: Mapping[str, Any], *, status_field: str, organisation_field: str | None) -> bool:
        """Whether a root record passes ``status`` and (unless ``organisation_field`` is ``None``) the IDs."""
        if self.status is not None and str(record.get(status_field, "")).casefold() != self.status.casefold():
            return False
        ids = self.organisation_ids
        return ids is None or organisation_field is None or str(record.get(organisation_field)) in ids

    def query(self) -> dict[str, str]:
        """The filters an endpoint that filters itself is sent (``startDate``, ``endDate``, ``status``)."""
        params = {
            "startDate": _rfc3339(self.start_date, "start_date"),
            "endDate": _rfc3339(self.end_date, "end_date"),
            "status": self.status or "",
        }
        return {name: value for name, value in params.items() if value}


def _rfc3339(value: object, what: str) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        stamp = datetime.combine(value, time(), tzinfo=UTC)
    else:
        raise ConfigurationError(f"{what} must be a datetime, a date or RFC 3339 text, got {type(value).__name__}")
    return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")
