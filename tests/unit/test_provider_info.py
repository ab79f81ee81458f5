"""Provider metadata: what Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.connection_fields import EXTRA_FIELDS
from airflow_provider_raidiam.exceptions import ConfigurationError
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


def test_conn_fields_are_the_extra_fields_in_form_order(conn_fields: dict[str, Any]) -> None:
    assert list(conn_fields) == [field.name for field in EXTRA_FIELDS]
    for name, entry in conn_fields.items():
        assert set(entry) == {"label", "description", "schema"}, name
        assert entry["label"], name
        assert entry["description"], name
        assert "type" in entry["schema"], name


def test_the_forms_defaults_are_the_settings_of_an_empty_connection(conn_fields: dict[str, Any]) -> None:
    settings = RaidiamSettings.from_fields(
        host="https://auth.example.test",
        login="c",
        extra={"transport_cert": "/t.pem", "transport_private_key": "/t.key"},
    )

    defaults = {name: entry["schema"]["default"] for name, entry in conn_fields.items() if "default" in entry["schema"]}
    assert defaults == {
        "auth_method": "tls_client_auth",
        "scope": "directory:software",
        "signing_alg": "PS256",
        "assertion_audience": "issuer",
        "timeout": 30,
        "page_size": 1000,
        "max_workers": 16,
        "max_pages": 10_000,
        "throttle_timeout": 300,
        "max_response_bytes": 64 * 1024 * 1024,
        "attempt_deadline": 120,
    }
    for name, default in defaults.items():
        assert getattr(settings, name) == default, name


def test_every_drop_down_choice_is_accepted_and_nothing_else(conn_fields: dict[str, Any]) -> None:
    base = {"transport_cert": "/t.pem", "transport_private_key": "/t.key", "signing_private_key": "/s.key"}
    drop_downs = {name: entry["schema"]["enum"] for name, entry in conn_fields.items() if "enum" in entry["schema"]}

    assert set(drop_downs) == {"auth_method", "signing_alg"}
    for name, choices in drop_downs.items():
        for choice in choices:
            settings = RaidiamSettings.from_fields(
                host="https://a.example.test", login="c", extra={**base, name: choice}
            )
            assert getattr(settings, name) == choice
        with pytest.raises(ConfigurationError, match=f"Unknown {name} 'other': use one of {re.escape(str(choices))}"):
            RaidiamSettings.from_fields(host="https://a.example.test", login="c", extra={**base, name: "other"})


def test_the_password_inputs_are_the_private_keys(conn_fields: dict[str, Any]) -> None:
    passwords = {name for name, entry in conn_fields.items() if entry["schema"].get("format") == "password"}

    assert passwords == {"transport_private_key", "signing_private_key"}


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
    assert {name for name, widget in ours.items() if widget.is_sensitive} == {
        "transport_private_key",
        "signing_private_key",
    }
