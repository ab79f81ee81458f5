"""Reading the JSON bodies of the sandbox's control endpoints into their settings dataclasses."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def body_fields(raw: Any, settings: type) -> dict[str, Any]:
    """``raw`` as keyword arguments of the dataclass ``settings``: a JSON object naming only its fields.

    :raises ValueError: with a message the endpoint returns to the caller.
    """
    if not isinstance(raw, dict):
        raise ValueError("body must be a JSON object")
    unknown = set(raw) - {f.name for f in fields(settings)}
    if unknown:
        raise ValueError(f"unknown keys: {sorted(unknown)}")
    return raw
