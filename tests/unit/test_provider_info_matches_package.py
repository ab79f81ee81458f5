"""``get_provider_info()`` against what the package really contains, checked from the package's side.

``test_provider_info.py`` checks the listed names (modules import, the hook class, extras found in
``connection.py``'s source). This module checks the other way round and by behaviour: every hook and
operator module of the package is listed, the hook's ``conn_name_attr`` is what its ``__init__`` and the
operators take, and the form's password fields are exactly the values the hook registers as secrets.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import warnings
from types import ModuleType
from typing import Any

import pytest
from airflow.sdk import BaseHook, BaseOperator

import airflow_provider_raidiam
from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.exceptions import RaidiamDeprecationWarning
from airflow_provider_raidiam.get_provider_info import get_provider_info

PACKAGE = airflow_provider_raidiam.__name__
INFO = get_provider_info()
CONNECTION_TYPE: dict[str, Any] = INFO["connection-types"][0]
CONN_FIELDS: dict[str, dict[str, Any]] = CONNECTION_TYPE["conn-fields"]
PASSWORD_FIELDS = {name for name, spec in CONN_FIELDS.items() if spec["schema"].get("format") == "password"}


def listed_modules(section: str) -> set[str]:
    return {module for item in INFO.get(section, []) for module in item["python-modules"]}


def package_modules(subpackage: str) -> list[ModuleType]:
    """Every module of ``airflow_provider_raidiam.<subpackage>``, imported."""
    package = importlib.import_module(f"{PACKAGE}.{subpackage}")
    return [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + ".")
        if not info.ispkg
    ]


def classes_defined(module: ModuleType, base: type) -> list[type]:
    """Classes that ``module`` itself defines (not imports) and that derive from ``base``."""
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and issubclass(cls, base) and cls is not base
    ]


def hook_class() -> type[Any]:
    module_name, _, class_name = CONNECTION_TYPE["hook-class-name"].rpartition(".")
    cls: type[Any] = getattr(importlib.import_module(module_name), class_name)
    return cls


# ---- modules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "subpackage", "base"), [("hooks", "hooks", BaseHook), ("operators", "operators", BaseOperator)]
)
def test_every_module_defining_one_is_listed_and_every_listed_module_defines_one(
    section: str, subpackage: str, base: type
) -> None:
    defining = {module.__name__ for module in package_modules(subpackage) if classes_defined(module, base)}

    assert defining, f"found no {base.__name__} subclass under {PACKAGE}.{subpackage}: the scan is broken"
    assert listed_modules(section) == defining, (
        f"{section}: listed but defines no {base.__name__}: {sorted(listed_modules(section) - defining)}; "
        f"defines one but not listed: {sorted(defining - listed_modules(section))}"
    )


def test_hook_class_is_a_base_hook_in_a_listed_module() -> None:
    cls = hook_class()

    assert cls.__module__ in listed_modules("hooks")
    assert cls.conn_type == CONNECTION_TYPE["connection-type"]
    assert cls.hook_name == CONNECTION_TYPE["hook-name"]
    assert issubclass(cls, BaseHook)


def test_conn_name_attr_is_the_hooks_init_parameter_and_default() -> None:
    cls = hook_class()
    parameters = inspect.signature(cls.__init__).parameters

    assert cls.conn_name_attr in parameters, f"{cls.__name__}.__init__ has no {cls.conn_name_attr!r} parameter"
    assert parameters[cls.conn_name_attr].default == cls.default_conn_name
    assert cls.default_conn_name == f"{cls.conn_type}_default"
    assert getattr(cls(), cls.conn_name_attr) == cls.default_conn_name


def test_every_public_operator_takes_the_hooks_conn_name_attr() -> None:
    conn_name_attr = hook_class().conn_name_attr
    operators: list[type[Any]] = [
        cls
        for module in map(importlib.import_module, sorted(listed_modules("operators")))
        for cls in classes_defined(module, BaseOperator)
        if not cls.__name__.startswith("_")
    ]

    assert operators
    for operator in operators:
        assert conn_name_attr in inspect.signature(operator.__init__).parameters, operator.__name__


# ---- password fields against the secrets ----------------------------------------------------------


@pytest.mark.parametrize("key_names", ["current", "deprecated"])
def test_the_hook_masks_exactly_the_password_fields_and_the_passphrase(
    monkeypatch: pytest.MonkeyPatch, key_names: str
) -> None:
    """Reading a connection registers its key material with Airflow's real secret masker, and nothing else.

    Airflow itself masks extras with a sensitive name when a connection is read; under the deprecated
    names (not sensitive to Airflow) the keys are masked by the hook alone.
    """
    from airflow.sdk._shared.secrets_masker import redact

    from airflow_provider_raidiam.hooks.raidiam import RaidiamHook

    def pem(name: str) -> str:
        return f"-----BEGIN PRIVATE KEY-----\n{name}-{key_names}-material\n-----END PRIVATE KEY-----"

    values = {
        "auth_method": "private_key_jwt",
        "transport_cert": pem("transport_cert"),
        "transport_private_key": pem("transport_private_key"),
        "ca_bundle": pem("ca_bundle"),
        "signing_private_key": pem("signing_private_key"),
        "signing_key_id": f"kid-of-the-{key_names}-probe",
    }
    old_names = {"transport_private_key": "transport_key", "signing_private_key": "signing_key"}
    extra = {old_names.get(name, name) if key_names == "deprecated" else name: v for name, v in values.items()}
    passphrase = f"pass-phrase-{key_names}"
    conn = {"conn_type": "raidiam", "host": "https://auth.example.test", "login": "client", "password": passphrase}
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_SECRETS_PROBE", json.dumps({**conn, "extra": extra}))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RaidiamDeprecationWarning)
        RaidiamHook(raidiam_conn_id="raidiam_secrets_probe").settings  # noqa: B018 - registers the secrets

    masked = {name for name, value in values.items() if redact(f"x {value} y") == "x *** y"}
    assert masked == PASSWORD_FIELDS
    assert redact(f"x {passphrase} y") == "x *** y"


def test_the_password_standard_field_is_the_key_passphrase() -> None:
    relabeling = CONNECTION_TYPE["ui-field-behaviour"]["relabeling"]
    settings = RaidiamSettings.from_fields(
        host="https://auth.example.test",
        login="client",
        password="pass-phrase-123",
        extra={"transport_cert": "/t.pem", "transport_private_key": "/t.key"},
    )

    assert settings.key_passphrase == "pass-phrase-123"
    assert "passphrase" in relabeling["password"].lower()
    assert "password" not in CONNECTION_TYPE["ui-field-behaviour"]["hidden-fields"]
