"""The connection form for Airflow 3.0 and 3.1, derived from the declarative one.

Airflow 3.2 and later draw the ``raidiam`` form from ``conn-fields`` and ``ui-field-behaviour`` in
``get_provider_info()``. Airflow 3.0 and 3.1 read only the hook's ``get_connection_form_widgets()`` and
``get_ui_field_behaviour()`` (wtforms fields, which the API server converts to the same JSON-schema
form). This module turns the declarative entries into that shape, so the form has one source of truth.

Importable without Airflow; ``wtforms`` is imported only when the widgets are asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BEHAVIOUR_KEYS = {"hidden-fields": "hidden_fields", "relabeling": "relabeling", "placeholders": "placeholders"}


def _types(schema: Mapping[str, Any]) -> list[str]:
    declared = schema.get("type", "string")
    return [declared] if isinstance(declared, str) else list(declared)


def connection_form_widgets(conn_fields: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """wtforms fields for ``conn_fields`` (the ``conn-fields`` entry of a connection type).

    Password-format fields become ``PasswordField`` (Airflow masks them), integers ``IntegerField``,
    booleans ``BooleanField``, everything else ``StringField`` (numbers are parsed from text by the hook);
    nullable fields get ``Optional()`` and enumerations ``any_of(...)`` (the form's drop-down).
    """
    from wtforms import BooleanField, IntegerField, PasswordField, StringField
    from wtforms.validators import Optional, any_of

    widgets: dict[str, Any] = {}
    for name, spec in conn_fields.items():
        schema = spec["schema"]
        types = _types(schema)
        field_class: Any = StringField
        if schema.get("format") == "password":
            field_class = PasswordField
        elif "integer" in types:
            field_class = IntegerField
        elif "boolean" in types:
            field_class = BooleanField
        validators: list[Any] = [Optional()] if "null" in types else []
        if "enum" in schema:
            validators.append(any_of(list(schema["enum"])))
        widgets[name] = field_class(
            spec["label"],
            validators=validators,
            description=spec.get("description") or "",
            default=schema.get("default"),
        )
    return widgets


def ui_field_behaviour(declared: Mapping[str, Any]) -> dict[str, Any]:
    """The hook-method form of a ``ui-field-behaviour`` entry (kebab-case keys to snake case)."""
    return {BEHAVIOUR_KEYS[key]: value for key, value in declared.items() if key in BEHAVIOUR_KEYS}
