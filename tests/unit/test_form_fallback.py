"""The hook's connection form (Airflow 3.0/3.1) is the declarative one (3.2+), field for field.

The matrix (``tests/matrix``) checks what the UI endpoint of each Airflow line returns; these tests check
the conversion with the real wtforms.
"""

from __future__ import annotations

from typing import Any

import pytest
from wtforms import BooleanField, IntegerField, PasswordField, StringField
from wtforms.validators import AnyOf, Optional

from airflow_provider_raidiam.form_fallback import connection_form_widgets, ui_field_behaviour
from airflow_provider_raidiam.get_provider_info import get_provider_info
from airflow_provider_raidiam.hooks.raidiam import RaidiamHook

CONNECTION_TYPE: dict[str, Any] = get_provider_info()["connection-types"][0]
CONN_FIELDS: dict[str, Any] = CONNECTION_TYPE["conn-fields"]


def test_hook_widgets_are_the_declared_fields_in_order_with_their_labels_and_help() -> None:
    widgets = RaidiamHook.get_connection_form_widgets()

    assert list(widgets) == list(CONN_FIELDS)
    for name, widget in widgets.items():
        assert widget.args[0] == CONN_FIELDS[name]["label"]
        assert widget.kwargs["description"] == (CONN_FIELDS[name].get("description") or "")
        assert widget.kwargs["default"] == CONN_FIELDS[name]["schema"].get("default")


def test_password_fields_stay_password_fields() -> None:
    widgets = RaidiamHook.get_connection_form_widgets()
    declared = {name for name, spec in CONN_FIELDS.items() if spec["schema"].get("format") == "password"}

    assert declared, "the raidiam form declares no password field: update this test"
    assert {name for name, widget in widgets.items() if widget.field_class is PasswordField} == declared


def test_choices_become_any_of_and_nullable_fields_optional() -> None:
    widgets = RaidiamHook.get_connection_form_widgets()

    for name, spec in CONN_FIELDS.items():
        validators = widgets[name].kwargs["validators"]
        choices = [v.values for v in validators if isinstance(v, AnyOf)]
        assert choices == ([spec["schema"]["enum"]] if "enum" in spec["schema"] else []), name
        nullable = "null" in spec["schema"]["type"]
        assert any(isinstance(v, Optional) for v in validators) == nullable, name


@pytest.mark.parametrize(
    ("schema", "field_class"),
    [
        ({"type": ["integer", "null"]}, IntegerField),
        ({"type": "boolean"}, BooleanField),
        ({"type": ["number", "null"]}, StringField),  # the hook parses numbers from text
        ({"type": ["string", "null"], "format": "multiline"}, StringField),
        ({"type": ["string", "null"], "format": "password"}, PasswordField),
    ],
)
def test_field_class_follows_the_schema(schema: dict[str, Any], field_class: type) -> None:
    widget = connection_form_widgets({"f": {"label": "F", "schema": schema}})["f"]

    assert widget.field_class is field_class


def test_field_behaviour_is_the_declared_one_in_the_hook_methods_spelling() -> None:
    declared = CONNECTION_TYPE["ui-field-behaviour"]

    assert RaidiamHook.get_ui_field_behaviour() == {
        "hidden_fields": declared["hidden-fields"],
        "relabeling": declared["relabeling"],
        "placeholders": declared["placeholders"],
    }
    assert ui_field_behaviour({"relabeling": {"host": "H"}, "unknown-key": 1}) == {"relabeling": {"host": "H"}}
