"""``TableFilters``: which records a table read keeps, as one validated, immutable value.

Every filter is optional, and a filter that does not apply to a table is ignored by it: ``organisation_ids``
(``()`` reads nothing and gives empty tables), ``status`` (compared with the root records' status, ignoring
case; ``""`` is no filter), ``participants_url`` (the public list the ``participants_*`` tables need),
``start_date``/``end_date`` (sent to ``/clients``) and ``page_size``. How each table applies them is
documented once, in ``docs/tables.md`` ("Filters").
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from airflow_provider_raidiam.directory.paging import check_page_size
from airflow_provider_raidiam.exceptions import ConfigurationError

__all__ = ["TableFilters"]


@dataclass(frozen=True)
class TableFilters:
    """The filters of a table read (see the module docstring and ``docs/tables.md``); checked when built.

    :raises ConfigurationError: a filter of the wrong type or out of range.
    """

    organisation_ids: Collection[str] | None = None
    """Any collection of IDs (a list, a pandas Series); kept as a tuple of unique IDs in order."""
    status: str | None = None
    participants_url: str | None = None
    start_date: datetime | date | str | None = None
    end_date: datetime | date | str | None = None
    page_size: int | None = None
    _id_set: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)

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
            unique = tuple(dict.fromkeys(map(str, ids)))
            object.__setattr__(self, "organisation_ids", unique)
            object.__setattr__(self, "_id_set", frozenset(unique))
        if self.status is not None and not isinstance(self.status, str):
            raise ConfigurationError(f"status must be text such as 'Active', got {type(self.status).__name__}")
        if self.status == "":  # e.g. a template that rendered nothing: no filter, as for None
            object.__setattr__(self, "status", None)
        if self.page_size is not None:
            check_page_size(self.page_size)
        _rfc3339(self.start_date, "start_date")
        _rfc3339(self.end_date, "end_date")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TableFilters:
        """Filters from ``{name: value}`` (an operator's ``filters``, a hook's keyword arguments).

        :raises ConfigurationError: an unknown filter name (with the closest valid one), or a bad value.
        """
        names = [f.name for f in dataclasses.fields(cls) if f.init]
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
        ids = self._id_set
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
