"""The table of connection fields: every extra parses as declared, old key names still work, keys are hidden.

These tests need no Airflow except the two that ask Airflow's own redaction rules.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.connection_fields import (
    EXTRA_FIELDS,
    EXTRAS,
    HIDDEN_STANDARD_FIELDS,
    STANDARD_FIELDS,
    ExtraField,
    Kind,
    read_extras,
)
from airflow_provider_raidiam.exceptions import ConfigurationError, RaidiamDeprecationWarning

ISSUER = "https://auth.example.test"
MTLS = {"transport_cert": "/t.pem", "transport_private_key": "/t.key"}


def settings(**extra: Any) -> RaidiamSettings:
    return RaidiamSettings.from_fields(host=ISSUER, login="client-1", extra=extra)


# -- the table and the settings -------------------------------------------------------------------


def test_every_extra_is_a_settings_attribute_and_every_attribute_a_field() -> None:
    attributes = [f.name for f in dataclasses.fields(RaidiamSettings)]
    from_standard_fields = ["issuer", "client_id", "key_passphrase"]

    assert sorted(attributes) == sorted(from_standard_fields + list(EXTRAS))


# One value per extra that is not its default, to show that each extra reaches the settings.
NON_DEFAULTS: dict[str, Any] = {
    "auth_method": "private_key_jwt",
    "api_base_url": "https://matls-api.example.test",
    "scope": "directory:website",
    "transport_cert": "/other/transport.pem",
    "transport_private_key": "/other/transport.key",
    "ca_bundle": "/other/ca.pem",
    "signing_private_key": "/other/signing.key",
    "signing_key_id": "kid-9",
    "signing_alg": "ES256",
    "assertion_audience": "token_endpoint",
    "discovery_url": "https://conf.example.test/.well-known/openid-configuration",
    "participants_url": "https://data.example.test/participants",
    "timeout": 7.5,
    "page_size": 20,
    "max_workers": 2,
    "max_pages": 7,
    "max_requests_per_second": 5.0,
    "throttle_timeout": 60.0,
    "max_response_bytes": 4096,
    "attempt_deadline": 9.5,
}


def test_every_extra_reaches_its_settings_attribute() -> None:
    assert set(NON_DEFAULTS) == set(EXTRAS), "give every extra a non-default value here"
    base = {**MTLS, "signing_private_key": "/s.key"}
    baseline = settings(**base)

    for name, value in NON_DEFAULTS.items():
        changed = settings(**{**base, name: value})
        assert getattr(changed, name) == value, name
        assert getattr(baseline, name) != value, name


def test_an_unset_extra_gets_its_declared_default_through_the_same_parser() -> None:
    parsed = read_extras({})

    assert parsed == {field.name: field.parse(field.default) for field in EXTRA_FIELDS}
    assert parsed["timeout"] == 30.0
    assert isinstance(parsed["page_size"], int)
    assert read_extras({"timeout": None, "scope": "", "signing_alg": "   "}) == parsed


def test_kinds_parse_as_declared() -> None:
    number = ExtraField("n", "N", "a number", Kind.NUMBER)
    whole = ExtraField("w", "W", "a whole number", Kind.INTEGER)
    url = ExtraField("u", "U", "a URL", Kind.URL)
    choice = ExtraField("c", "C", "a choice", Kind.CHOICE, choices=("Alpha", "Beta"))

    assert number.parse("2.5") == 2.5
    assert whole.parse("3") == 3
    assert whole.parse(3.0) == 3
    assert url.parse(" https://x.example.test/a/ ") == "https://x.example.test/a"
    assert choice.parse("beta") == "Beta"
    with pytest.raises(ConfigurationError, match=r"Connection extra 'w' must be a whole number, got '2.5'"):
        whole.parse("2.5")
    with pytest.raises(ConfigurationError, match=r"u must be an https:// URL, got 'http://x.example.test'"):
        url.parse("http://x.example.test")
    with pytest.raises(ConfigurationError, match=r"Unknown c 'gamma': use one of \['Alpha', 'Beta'\]\.$"):
        choice.parse("gamma")
    with pytest.raises(ConfigurationError, match=r"Unknown c 'Betta': .* \(did you mean 'Beta'\?\)\.$"):
        choice.parse("Betta")


def test_bounds_are_one_declaration_and_reach_the_form() -> None:
    bounded = ExtraField("workers", "Workers", "parallel calls", Kind.INTEGER, default=4, maximum=64)
    ranged = ExtraField("deadline", "Deadline", "seconds", Kind.NUMBER, default=120, minimum=1, maximum=3600)

    assert bounded.parse(64) == 64
    with pytest.raises(ConfigurationError, match=r"Connection extra 'workers' must be at most 64, got 65"):
        bounded.parse(65)
    assert bounded.schema == {"type": ["integer", "null"], "minimum": 1, "maximum": 64, "default": 4}
    assert ranged.parse("1") == 1.0
    with pytest.raises(ConfigurationError, match=r"Connection extra 'deadline' must be between 1 and 3,600, got '0.5'"):
        ranged.parse("0.5")
    floor = ExtraField("bytes", "Bytes", "a size", Kind.INTEGER, minimum=1024)
    with pytest.raises(ConfigurationError, match=r"Connection extra 'bytes' must be at least 1,024, got 1000"):
        floor.parse(1000)
    assert floor.parse(None) is None
    assert ranged.schema == {"type": ["number", "null"], "minimum": 1, "maximum": 3600, "default": 120}


# -- unknown and renamed extras -------------------------------------------------------------------


def test_an_unknown_extra_is_ignored_with_a_warning_naming_the_closest_field(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="airflow_provider_raidiam.connection_fields"):
        result = settings(**MTLS, page_szie="10", completely_different="x")

    assert result.page_size == 1000
    assert "Ignoring unknown connection extra 'page_szie' (did you mean 'page_size'?)." in caplog.messages
    assert "Ignoring unknown connection extra 'completely_different'." in caplog.messages


@pytest.mark.parametrize(
    ("old", "new", "extra"),
    [
        ("transport_key", "transport_private_key", {"transport_cert": "/t.pem"}),
        ("signing_key", "signing_private_key", {**MTLS, "auth_method": "private_key_jwt"}),
    ],
)
def test_an_old_key_name_still_works_and_the_warning_says_how_to_rename(
    old: str, new: str, extra: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.warns(RaidiamDeprecationWarning) as caught, caplog.at_level(logging.WARNING):
        result = settings(**extra, **{old: "/keys/old-name.key"})

    assert getattr(result, new) == "/keys/old-name.key"
    (warning,) = caught
    message = str(warning.message)
    assert message.startswith(f"Connection extra {old!r} is deprecated: rename it to {new!r}, with the same value")
    assert f"shows {old!r} in clear in its UI and REST API, {new!r} as '***'" in message
    assert EXTRAS[new].label in message  # the form field to use
    assert not [m for m in caplog.messages if "unknown connection extra" in m]


def test_a_deprecation_is_a_future_warning_that_python_shows_by_default() -> None:
    assert issubclass(RaidiamDeprecationWarning, FutureWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()  # Python's own filters, not pytest's
        settings(transport_cert="/t.pem", transport_key="/t.key")

    assert [w.category for w in caught] == [RaidiamDeprecationWarning]


@pytest.mark.parametrize(
    ("old", "new"), [("transport_key", "transport_private_key"), ("signing_key", "signing_private_key")]
)
def test_an_extra_set_under_both_names_is_refused(old: str, new: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings(**{**MTLS, new: "/keys/new.key", old: "/keys/old.key"})

    assert str(caught.value) == (
        f"The connection sets both {new!r} and its deprecated name {old!r}: "
        f"remove {old!r} and keep the value in {new!r}."
    )


def test_an_empty_old_name_next_to_the_new_one_is_no_conflict() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = settings(**MTLS, transport_key="")

    assert result.transport_private_key == "/t.key"


# -- what Airflow hides ---------------------------------------------------------------------------


def airflow_hides_by_default(name: str) -> bool:
    """Whether Airflow's default rules (no ``sensitive_var_conn_names``) hide the extra ``name``."""
    from airflow.sdk._shared.secrets_masker import DEFAULT_SENSITIVE_FIELDS, SecretsMasker

    masker = SecretsMasker()  # type: ignore[no-untyped-call]  # unannotated in Airflow
    masker.sensitive_variables_fields = list(DEFAULT_SENSITIVE_FIELDS)
    hides = masker.should_hide_value_for_key
    assert hides("password"), "the check itself is broken"  # type: ignore[no-untyped-call]
    hidden: bool = hides(name)  # type: ignore[no-untyped-call]
    return hidden


def test_airflow_hides_exactly_the_secret_extras_by_default() -> None:
    secret = {field.name for field in EXTRA_FIELDS if field.secret}

    assert secret == {"transport_private_key", "signing_private_key"}
    assert {field.name for field in EXTRA_FIELDS if airflow_hides_by_default(field.name)} == secret


def test_the_old_key_names_are_what_airflow_shows_in_clear() -> None:
    aliases = [alias for field in EXTRA_FIELDS for alias in field.aliases]

    assert aliases == ["transport_key", "signing_key"]
    assert not [alias for alias in aliases if airflow_hides_by_default(alias)]


# -- the standard fields --------------------------------------------------------------------------


def test_standard_fields_are_the_columns_settings_read() -> None:
    assert [field.name for field in STANDARD_FIELDS] == ["host", "login", "password"]
    assert HIDDEN_STANDARD_FIELDS == ("port", "schema")
    result = RaidiamSettings.from_fields(host="auth.example.test", login=" c-1 ", password="pw", extra=MTLS)

    assert (result.issuer, result.client_id, result.key_passphrase) == ("https://auth.example.test", "c-1", "pw")


# -- the docs -------------------------------------------------------------------------------------


def test_the_connection_doc_is_generated_from_the_table() -> None:
    root = Path(__file__).resolve().parents[2]
    check = subprocess.run(
        [sys.executable, str(root / "scripts" / "gen_connection_doc.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert check.returncode == 0, check.stderr
    doc = (root / "docs" / "connection.md").read_text(encoding="utf-8")
    for field in EXTRA_FIELDS:
        assert f"| `{field.name}` | {field.label} |" in doc
    assert "| `transport_key` | `transport_private_key` |" in doc
