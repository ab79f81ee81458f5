"""Provider metadata: what Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_raidiam import connection
from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.get_provider_info import get_provider_info

DISTRIBUTION = "airflow-provider-raidiam"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def info() -> dict[str, Any]:
    return get_provider_info()


@pytest.fixture(scope="module")
def connection_type(info: dict[str, Any]) -> dict[str, Any]:
    types = info["connection-types"]
    assert len(types) == 1
    entry: dict[str, Any] = types[0]
    return entry


@pytest.fixture(scope="module")
def conn_fields(connection_type: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = connection_type["conn-fields"]
    return fields


def extras_read_by_settings() -> set[str]:
    """Every extra name ``RaidiamSettings.from_fields`` reads, found in its source (calls ``f(extra, "name")``)."""
    tree = ast.parse(inspect.getsource(connection))
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and len(node.args) >= 2
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == "extra"
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            names.add(node.args[1].value)
    return names


def test_package_name_is_the_installed_distribution(info: dict[str, Any]) -> None:
    distribution = importlib.metadata.distribution(DISTRIBUTION)

    assert info["package-name"] == canonical(distribution.metadata["Name"])
    assert info["versions"][0] == distribution.version


def test_entry_point_returns_this_provider_info() -> None:
    entry_points = importlib.metadata.distribution(DISTRIBUTION).entry_points
    providers = [ep for ep in entry_points if ep.group == "apache_airflow_provider"]

    assert len(providers) == 1
    assert providers[0].load()() == get_provider_info()


def test_provider_info_matches_airflow_schema(info: dict[str, Any]) -> None:
    import airflow
    import jsonschema

    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    if not schema_path.exists():  # pragma: no cover - depends on the Airflow build
        pytest.skip("this Airflow has no provider_info.schema.json")

    jsonschema.validate(info, json.loads(schema_path.read_text()))


def test_hook_class_and_conn_type_match_the_hook(connection_type: dict[str, Any]) -> None:
    module_name, _, class_name = connection_type["hook-class-name"].rpartition(".")
    hook = getattr(importlib.import_module(module_name), class_name)

    assert class_name == "RaidiamHook"
    assert connection_type["connection-type"] == hook.conn_type == "raidiam"
    assert connection_type["hook-name"] == hook.hook_name


def test_listed_modules_import(info: dict[str, Any]) -> None:
    sections = [item for section in ("hooks", "operators") for item in info.get(section, [])]
    modules = [module for item in sections for module in item["python-modules"]]

    assert "airflow_provider_raidiam.hooks.raidiam" in modules
    for module in modules:
        importlib.import_module(module)


def test_conn_fields_are_exactly_the_extras_settings_read(conn_fields: dict[str, Any]) -> None:
    read = extras_read_by_settings()

    assert read, "found no extras in connection.py: the source scan is broken"
    assert set(conn_fields) == read, (
        f"in the form but never read: {sorted(set(conn_fields) - read)}; "
        f"read but not in the form: {sorted(read - set(conn_fields))}"
    )


# One non-default value per form field, to show that each one changes the settings.
NON_DEFAULTS: dict[str, Any] = {
    "auth_method": "private_key_jwt",
    "api_base_url": "https://matls-api.example.test",
    "scope": "directory:website",
    "transport_cert": "/other/transport.pem",
    "transport_key": "/other/transport.key",
    "ca_bundle": "/other/ca.pem",
    "signing_key": "/other/signing.key",
    "signing_key_id": "kid-9",
    "signing_alg": "ES256",
    "assertion_audience": "token_endpoint",
    "discovery_url": "https://conf.example.test/.well-known/openid-configuration",
    "participants_url": "https://data.example.test/participants",
    "timeout": 7,
    "page_size": 20,
    "max_workers": 2,
    "max_pages": 50,
    "max_response_bytes": 4096,
    "attempt_deadline": 9,
    "max_requests_per_second": 5,
    "throttle_timeout": 60,
}


def test_every_conn_field_changes_the_settings(conn_fields: dict[str, Any]) -> None:
    assert set(NON_DEFAULTS) == set(conn_fields)
    base_extra = {"transport_cert": "/t.pem", "transport_key": "/t.key", "signing_key": "/s.key"}
    baseline = RaidiamSettings.from_fields(host="https://auth.example.test", login="c", extra=base_extra)

    for name, value in NON_DEFAULTS.items():
        changed = RaidiamSettings.from_fields(
            host="https://auth.example.test", login="c", extra={**base_extra, name: value}
        )
        assert changed != baseline, f"extra {name!r} did not change the settings"


def test_schema_defaults_match_the_settings_defaults(conn_fields: dict[str, Any]) -> None:
    settings = RaidiamSettings.from_fields(
        host="https://auth.example.test", login="c", extra={"transport_cert": "/t.pem", "transport_key": "/t.key"}
    )

    for name, field in conn_fields.items():
        if "default" in field["schema"]:
            assert getattr(settings, name) == field["schema"]["default"], name


def test_enums_match_what_settings_accept(conn_fields: dict[str, Any]) -> None:
    assert conn_fields["auth_method"]["schema"]["enum"] == [m.value for m in connection.AuthMethod]
    assert conn_fields["signing_alg"]["schema"]["enum"] == list(connection.SIGNING_ALGORITHMS)


@pytest.mark.parametrize("name", ["transport_key", "signing_key"])
def test_key_material_fields_are_passwords(conn_fields: dict[str, Any], name: str) -> None:
    assert conn_fields[name]["schema"]["format"] == "password"


def test_every_field_has_label_description_and_schema(conn_fields: dict[str, Any]) -> None:
    for name, field in conn_fields.items():
        assert field["label"], name
        assert field["description"], name
        assert "type" in field["schema"], name


def test_field_behaviour(connection_type: dict[str, Any], conn_fields: dict[str, Any]) -> None:
    behaviour = connection_type["ui-field-behaviour"]

    assert set(behaviour["hidden-fields"]) == {"port", "schema", "extra"}
    assert behaviour["relabeling"]["host"] == "Issuer URL"
    assert behaviour["relabeling"]["login"] == "Client ID"
    assert set(behaviour["placeholders"]) <= {"host", "login", "password"} | set(conn_fields)


def test_airflow_providers_manager_registers_the_hook(conn_fields: dict[str, Any]) -> None:
    providers_manager = pytest.importorskip("airflow.providers_manager")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manager = providers_manager.ProvidersManager()
        hook = manager.hooks["raidiam"]
        widgets = manager.connection_form_widgets

    assert hook is not None
    assert hook.hook_class_name == "airflow_provider_raidiam.hooks.raidiam.RaidiamHook"
    assert hook.package_name == DISTRIBUTION
    assert hook.connection_id_attribute_name == "raidiam_conn_id"
    assert hook.connection_testable is True
    ours = {key.removeprefix("extra__raidiam__"): value for key, value in widgets.items() if "__raidiam__" in key}
    assert set(ours) == set(conn_fields)
    assert ours["transport_key"].is_sensitive
    assert ours["signing_key"].is_sensitive
