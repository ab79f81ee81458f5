"""``get_provider_info()`` against what the package really contains, checked from the package's side.

``test_provider_info.py`` checks the listed names (modules import, the hook class, extras found in
``connection.py``'s source). This module checks the other way round and by behaviour: every hook and
operator module of the package is listed, the hook's ``conn_name_attr`` is what its ``__init__`` and the
operators take, the extras ``RaidiamSettings.from_fields`` reads *at run time* are the form's fields, and
the form's password fields are exactly the values the hook treats as secrets.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import pkgutil
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from airflow.sdk import BaseHook, BaseOperator

import airflow_provider_raidiam
from airflow_provider_raidiam import connection
from airflow_provider_raidiam.connection import RaidiamSettings
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


# ---- the form's fields against what the settings read ---------------------------------------------


def extras_read_at_run_time(monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any]) -> set[str]:
    """Names ``from_fields`` looks up in ``extra``, recorded by wrapping every ``f(extra, name, ...)`` reader."""
    seen: set[str] = set()
    readers = [
        (name, function)
        for name, function in vars(connection).items()
        if inspect.isfunction(function)
        and function.__module__ == connection.__name__
        and list(inspect.signature(function).parameters)[:2] == ["extra", "name"]
    ]
    assert readers, "connection.py has no reader f(extra, name, ...): update this test"

    def recording(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(extra: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            seen.add(name)
            return function(extra, name, *args, **kwargs)

        return wrapper

    for name, function in readers:
        monkeypatch.setattr(connection, name, recording(function))
    RaidiamSettings.from_fields(host="https://auth.example.test", login="client", extra=extra)
    return seen


def test_the_extras_settings_read_are_exactly_the_form_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    read = extras_read_at_run_time(monkeypatch, {"transport_cert": "/t.pem", "transport_key": "/t.key"})

    assert read == set(CONN_FIELDS), (
        f"read but not in the form: {sorted(read - set(CONN_FIELDS))}; "
        f"in the form but never read: {sorted(set(CONN_FIELDS) - read)}"
    )


def test_known_extras_list_is_the_form_fields() -> None:
    known = getattr(connection, "KNOWN_EXTRAS", None)
    if known is None:
        pytest.skip("connection.py keeps no list of known extras")

    assert set(known) == set(CONN_FIELDS)


def test_unknown_extras_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"transport_cert": "/t.pem", "transport_key": "/t.key", "not_a_field": "x"}

    assert "not_a_field" not in extras_read_at_run_time(monkeypatch, extra)


# ---- password fields against the secrets ----------------------------------------------------------

# One distinct value per form field, every text one in PEM form, so that the hook masks whatever it
# considers secret key material. URLs, enums and numbers must stay valid for from_fields.
DISTINCT_VALUES: dict[str, Any] = {
    "auth_method": "private_key_jwt",
    "api_base_url": "https://matls-api.example.test",
    "scope": "-----BEGIN-scope",
    "transport_cert": "-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----",
    "transport_key": "-----BEGIN PRIVATE KEY-----\ntransport\n-----END PRIVATE KEY-----",
    "ca_bundle": "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----",
    "signing_key": "-----BEGIN PRIVATE KEY-----\nsigning\n-----END PRIVATE KEY-----",
    "signing_key_id": "-----BEGIN-kid",
    "signing_alg": "ES256",
    "assertion_audience": "https://audience.example.test",
    "discovery_url": "https://auth.example.test/.well-known/openid-configuration",
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


def test_password_fields_are_exactly_what_the_hook_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_raidiam.hooks import raidiam

    assert set(DISTINCT_VALUES) == set(CONN_FIELDS), "give every form field a value here"
    masked: list[str] = []
    monkeypatch.setattr(raidiam, "mask_secret", masked.append)
    conn = {
        "conn_type": "raidiam",
        "host": "https://auth.example.test",
        "login": "client",
        "password": "pass-phrase-123",
        "extra": DISTINCT_VALUES,
    }
    monkeypatch.setenv("AIRFLOW_CONN_RAIDIAM_SECRETS_PROBE", json.dumps(conn))

    hook = raidiam.RaidiamHook(raidiam_conn_id="raidiam_secrets_probe")
    hook.settings  # noqa: B018 - reading it registers the secrets

    masked_fields = {name for name, value in DISTINCT_VALUES.items() if value in masked}
    assert "pass-phrase-123" in masked, "the passphrase (Password field) is not masked"
    assert masked_fields == PASSWORD_FIELDS, (
        f"masked but shown in clear in the form: {sorted(masked_fields - PASSWORD_FIELDS)}; "
        f"password inputs the hook does not mask: {sorted(PASSWORD_FIELDS - masked_fields)}"
    )


def test_the_password_standard_field_is_the_key_passphrase() -> None:
    relabeling = CONNECTION_TYPE["ui-field-behaviour"]["relabeling"]
    settings = RaidiamSettings.from_fields(
        host="https://auth.example.test",
        login="client",
        password="pass-phrase-123",
        extra={"transport_cert": "/t.pem", "transport_key": "/t.key"},
    )

    assert settings.key_passphrase == "pass-phrase-123"
    assert "passphrase" in relabeling["password"].lower()
    assert "password" not in CONNECTION_TYPE["ui-field-behaviour"]["hidden-fields"]


@pytest.mark.xfail(
    strict=True,
    reason="Airflow redacts extras by key name (DEFAULT_SENSITIVE_FIELDS, substring match): 'transport_key' and "
    "'signing_key' match none, so PEM text stored in them is shown in clear by the REST API and the UI's edit "
    "form unless [core] sensitive_var_conn_names lists them. Renaming them to '*_private_key' would fix it.",
)
def test_airflow_redacts_every_password_field_by_default() -> None:
    from airflow._shared.secrets_masker.secrets_masker import DEFAULT_SENSITIVE_FIELDS

    def redacted(name: str) -> bool:
        return any(word in name.lower() for word in DEFAULT_SENSITIVE_FIELDS)

    assert redacted("password"), "the check itself is broken"
    assert {name for name in PASSWORD_FIELDS if not redacted(name)} == set()
