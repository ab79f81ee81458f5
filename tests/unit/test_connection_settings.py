"""``RaidiamSettings.from_fields``: what a connection's fields become, and what is refused (and how)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.connection_fields import DEFAULT_MAX_WORKERS, DEFAULT_SCOPE, DEFAULT_TIMEOUT
from airflow_provider_raidiam.directory.paging import DEFAULT_PAGE_SIZE
from airflow_provider_raidiam.exceptions import ConfigurationError, RaidiamError
from airflow_provider_raidiam.limits import ResponseLimits

CERT = "/etc/raidiam/transport.pem"
KEY = "/etc/raidiam/transport.key"
MTLS = {"transport_cert": CERT, "transport_private_key": KEY}


def settings(host: str | None = "https://auth.example.test", login: str | None = "client-1", **extra: Any) -> Any:
    return RaidiamSettings.from_fields(host=host, login=login, password=extra.pop("password", None), extra=extra)


def refused(host: str | None = "https://auth.example.test", login: str | None = "client-1", **extra: Any) -> str:
    with pytest.raises(ConfigurationError) as caught:
        settings(host, login, **extra)
    assert isinstance(caught.value, RaidiamError)
    return str(caught.value)


# -- defaults and normalisation --------------------------------------------------------------------


def test_defaults_of_a_minimal_tls_client_auth_connection() -> None:
    result = settings(**MTLS)

    assert result.issuer == "https://auth.example.test"
    assert result.discovery_url == "https://auth.example.test/.well-known/openid-configuration"
    assert result.client_id == "client-1"
    assert result.auth_method == "tls_client_auth"
    assert result.scope == DEFAULT_SCOPE == "directory:software"
    assert result.timeout == DEFAULT_TIMEOUT == 30.0
    assert result.page_size == DEFAULT_PAGE_SIZE == 1000
    assert result.max_workers == DEFAULT_MAX_WORKERS == 16
    assert result.max_requests_per_second is None
    assert result.throttle_timeout == 300.0
    assert result.signing_alg == "PS256"
    assert result.assertion_audience == "issuer"
    assert result.api_base_url is None
    assert result.participants_url is None
    assert result.ca_bundle is None
    assert result.key_passphrase is None
    assert result.uses_mtls is True
    assert result.max_response_bytes == 64 * 1024 * 1024
    assert result.attempt_deadline == 120.0
    assert result.response_limits == ResponseLimits(max_bytes=64 * 1024 * 1024, attempt_deadline=120.0)


def test_bare_hostname_becomes_https_and_trailing_slash_is_dropped() -> None:
    result = settings(host="  auth.sandbox.raidiam.io/  ", **MTLS)

    assert result.issuer == "https://auth.sandbox.raidiam.io"
    assert result.discovery_url == "https://auth.sandbox.raidiam.io/.well-known/openid-configuration"


def test_issuer_is_derived_from_discovery_url_when_host_is_empty() -> None:
    result = settings(host=None, discovery_url="https://auth.example.test/.well-known/openid-configuration", **MTLS)

    assert result.issuer == "https://auth.example.test"


def test_explicit_discovery_url_is_kept() -> None:
    url = "https://config.example.test/tenant/.well-known/openid-configuration"
    result = settings(discovery_url=url, **MTLS)

    assert result.discovery_url == url
    assert result.issuer == "https://auth.example.test"


def test_empty_strings_and_none_extras_mean_default() -> None:
    result = settings(scope="", timeout=None, page_size="", api_base_url="", auth_method="", **MTLS)

    assert result.scope == DEFAULT_SCOPE
    assert result.timeout == DEFAULT_TIMEOUT
    assert result.page_size == DEFAULT_PAGE_SIZE
    assert result.api_base_url is None
    assert result.auth_method == "tls_client_auth"


def test_values_are_parsed_and_normalised() -> None:
    result = settings(
        scope="  directory:software \n directory:website ",
        timeout="12.5",
        page_size="250",
        max_workers=3,
        signing_alg="rs256",
        api_base_url="https://matls-api.example.test/",
        participants_url="https://data.example.test/participants",
        password="s3cret",
        **MTLS,
    )

    assert result.scope == "directory:software directory:website"
    assert result.timeout == 12.5
    assert result.page_size == 250
    assert isinstance(result.page_size, int)
    assert result.max_workers == 3
    assert result.signing_alg == "RS256"
    assert result.api_base_url == "https://matls-api.example.test"
    assert result.participants_url == "https://data.example.test/participants"
    assert result.key_passphrase == "s3cret"


def test_private_key_jwt_without_transport_certificate_is_allowed() -> None:
    result = settings(auth_method="private_key_jwt", signing_private_key="/keys/signing.key", signing_key_id="kid-1")

    assert result.auth_method == "private_key_jwt"
    assert result.uses_mtls is False
    assert result.signing_key_id == "kid-1"


@pytest.mark.parametrize("audience", ["issuer", "token_endpoint", "https://auth.example.test/token"])
def test_assertion_audience_accepts_keywords_and_https_urls(audience: str) -> None:
    assert settings(assertion_audience=audience, **MTLS).assertion_audience == audience


def test_from_connection_reads_an_airflow_shaped_connection() -> None:
    conn = SimpleNamespace(
        host="auth.example.test", login="client-9", password="pw", extra_dejson={**MTLS, "scope": "directory:website"}
    )

    result = RaidiamSettings.from_connection(conn)

    assert (result.issuer, result.client_id, result.key_passphrase, result.scope) == (
        "https://auth.example.test",
        "client-9",
        "pw",
        "directory:website",
    )


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["http://auth.example.test", "ftp://auth.example.test", "https://"])
def test_issuer_must_be_https(host: str) -> None:
    message = refused(host=host, **MTLS)

    assert "Issuer URL (host) must be an https:// URL" in message
    assert repr(host.rstrip("/")) in message


def test_http_discovery_url_is_refused() -> None:
    message = refused(discovery_url="http://auth.example.test/.well-known/openid-configuration", **MTLS)

    assert "discovery_url must be an https:// URL" in message


@pytest.mark.parametrize("name", ["api_base_url", "participants_url", "assertion_audience"])
def test_other_urls_must_be_https(name: str) -> None:
    message = refused(**{name: "http://api.example.test"}, **MTLS)

    assert f"{name} must be an https:// URL" in message


URL_FIELDS = ["host", "discovery_url", "api_base_url", "participants_url", "assertion_audience"]
BAD_URLS = {
    "userinfo": ("https://admin:s3cr3t-pw@api.example.test/x", "without userinfo"),
    "user-only": ("https://s3cr3t-pw@api.example.test", "without userinfo"),
    "query": ("https://api.example.test/x?s3cr3t-pw=1", "without a query or fragment"),
    "empty-query": ("https://api.example.test/x?", "without a query or fragment"),
    "fragment": ("https://api.example.test/x#s3cr3t-pw", "without a query or fragment"),
    "fragment-at": ("https://evil.test#@api.example.test", "without a query or fragment"),
    "backslash": ("https://evil.test\\@api.example.test", "without backslashes"),
    "space": ("https://api.example.test/a b", "without backslashes, spaces"),
    "bad-port": ("https://api.example.test:99999", "with a valid host and port"),
}


@pytest.mark.parametrize("field", URL_FIELDS)
@pytest.mark.parametrize("case", list(BAD_URLS))
def test_configured_urls_with_userinfo_query_or_fragment_are_refused_without_echoing_secrets(
    field: str, case: str
) -> None:
    url, reason = BAD_URLS[case]
    fields: dict[str, Any] = {field: url} if field != "host" else {}
    message = refused(host=url if field == "host" else "https://auth.example.test", **fields, **MTLS)

    assert reason in message
    assert "s3cr3t-pw" not in message
    assert "must be an https:// URL" in message


@pytest.mark.parametrize("host", [None, "", "   "])
def test_missing_issuer_says_which_field_to_set(host: str | None) -> None:
    message = refused(host=host, **MTLS)

    assert "no issuer" in message
    assert "'Issuer URL' (host)" in message


def test_discovery_url_without_well_known_suffix_needs_the_issuer() -> None:
    message = refused(host=None, discovery_url="https://auth.example.test/config", **MTLS)

    assert "Cannot derive the issuer" in message
    assert "set 'Issuer URL' (host)" in message


@pytest.mark.parametrize("login", [None, "", "  "])
def test_missing_client_id_says_which_field_to_set(login: str | None) -> None:
    message = refused(login=login, **MTLS)

    assert "no client_id" in message
    assert "'Client ID' (login)" in message


def test_unknown_auth_method_lists_the_valid_ones() -> None:
    message = refused(auth_method="client_secret_basic", **MTLS)

    assert "Unknown auth_method 'client_secret_basic'" in message
    assert "tls_client_auth" in message
    assert "private_key_jwt" in message
    assert "did you mean" not in message


def test_a_mistyped_auth_method_names_the_closest_one() -> None:
    message = refused(auth_method="private_key_jtw", **MTLS)

    assert message == (
        "Unknown auth_method 'private_key_jtw': use one of ['tls_client_auth', 'private_key_jwt'] "
        "(did you mean 'private_key_jwt'?)."
    )


def test_unknown_signing_alg_lists_the_valid_ones() -> None:
    message = refused(signing_alg="HS256", **MTLS)

    assert "Unknown signing_alg 'HS256'" in message
    assert "PS256" in message
    assert "ES256" in message


def test_tls_client_auth_without_certificate_names_the_extras() -> None:
    message = refused()

    assert "tls_client_auth" in message
    assert "'transport_cert'" in message
    assert "'transport_private_key'" in message


def test_private_key_jwt_without_signing_key_names_the_extra() -> None:
    message = refused(auth_method="private_key_jwt", **MTLS)

    assert "private_key_jwt" in message
    assert "'signing_private_key'" in message


@pytest.mark.parametrize(
    ("given", "missing"),
    [("transport_cert", "transport_private_key"), ("transport_private_key", "transport_cert")],
)
def test_only_one_of_certificate_and_key_names_the_missing_one(given: str, missing: str) -> None:
    message = refused(auth_method="private_key_jwt", signing_private_key="/k", **{given: "/x.pem"})

    assert "only one of transport_cert/transport_private_key" in message
    assert f"set {missing} too" in message


NUMBERS = [
    "timeout",
    "page_size",
    "max_workers",
    "max_response_bytes",
    "attempt_deadline",
    "max_requests_per_second",
    "throttle_timeout",
]


@pytest.mark.parametrize("name", NUMBERS)
@pytest.mark.parametrize("value", ["abc", "10s", [], {"a": 1}])
def test_non_numbers_are_refused(name: str, value: Any) -> None:
    message = refused(**{name: value}, **MTLS)

    assert f"Connection extra {name!r} must be a number" in message


@pytest.mark.parametrize("name", NUMBERS)
@pytest.mark.parametrize("value", [0, "0", -1, "-2.5"])
def test_zero_and_negative_numbers_are_refused(name: str, value: Any) -> None:
    extra: dict[str, Any] = {name: value}
    message = refused(**extra, **MTLS)

    assert f"Connection extra {name!r} must be greater than 0" in message


@pytest.mark.parametrize("name", ["scope", "transport_cert", "signing_private_key", "api_base_url"])
def test_non_string_text_extras_are_refused(name: str) -> None:
    extra: dict[str, Any] = {**MTLS, name: 42}
    message = refused(**extra)

    assert f"Connection extra {name!r} must be a string, got int" in message


@pytest.mark.parametrize("value", ["inf", "nan", "1e400"])
@pytest.mark.parametrize("name", ["page_size", "max_workers", "max_response_bytes"])
def test_non_finite_integer_extras_raise_configuration_error(name: str, value: str) -> None:
    refused(**{name: value}, **MTLS)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_timeout_is_refused(value: str) -> None:
    refused(timeout=value, **MTLS)


def test_response_limits_come_from_the_extras() -> None:
    result = settings(max_response_bytes="200000000", attempt_deadline=45.5, **MTLS)

    assert result.response_limits == ResponseLimits(max_bytes=200_000_000, attempt_deadline=45.5)


@pytest.mark.parametrize(
    ("name", "value", "bounds"),
    [
        ("max_response_bytes", 1023, "between 1,024 and 1,073,741,824"),
        ("max_response_bytes", 2**31, "between 1,024 and 1,073,741,824"),
        ("attempt_deadline", 0.5, "between 1 and 3,600"),
        ("attempt_deadline", 86400, "between 1 and 3,600"),
    ],
)
def test_response_limits_out_of_bounds_are_refused(name: str, value: int, bounds: str) -> None:
    extra: dict[str, Any] = {name: value}
    message = refused(**extra, **MTLS)

    assert f"Connection extra {name!r} must be {bounds}, got {value!r}" in message


@pytest.mark.parametrize(
    ("name", "value", "bounds"),
    [
        ("timeout", 301, "between 0 and 300"),
        ("timeout", "1e9", "between 0 and 300"),
        ("page_size", 50_001, "between 1 and 50,000"),
        ("max_workers", 65, "between 1 and 64"),
        ("max_workers", 10_000, "between 1 and 64"),
        ("max_pages", 1_000_001, "between 1 and 1,000,000"),
    ],
)
def test_upper_bounds_on_concurrency_timeout_and_paging(name: str, value: Any, bounds: str) -> None:
    # Before the fix, any positive value was accepted (max_workers=10000 made a pool of 10,000 threads).
    message = refused(**{name: value}, **MTLS)

    assert f"Connection extra {name!r} must be {bounds}, got {value!r}" in message


def test_paging_limits_come_from_the_extras() -> None:
    result = settings(max_pages="20", page_size=50_000, max_workers=64, timeout=300, **MTLS)

    assert (result.max_pages, result.page_size, result.max_workers, result.timeout) == (20, 50_000, 64, 300.0)
    assert settings(**MTLS).max_pages == 10_000


@pytest.mark.parametrize("name", ["page_size", "max_workers"])
def test_fractional_integer_extras_never_become_zero(name: str) -> None:
    try:
        result = settings(**{name: "0.5"}, **MTLS)
    except ConfigurationError:
        return
    assert getattr(result, name) >= 1


# -- secrets ---------------------------------------------------------------------------------------


def test_secrets_are_not_in_repr() -> None:
    pem_key = "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----"
    result = settings(
        transport_cert="/certs/transport-cert-path.pem",
        transport_private_key=pem_key,
        signing_private_key="-----BEGIN PRIVATE KEY-----\nSIGNINGSECRET\n-----END PRIVATE KEY-----",
        ca_bundle="/certs/ca-bundle-path.pem",
        password="passphrase-value",
    )

    text = repr(result) + str(result)

    for secret in ("TOPSECRETKEYMATERIAL", "SIGNINGSECRET", "passphrase-value", "PRIVATE KEY"):
        assert secret not in text
    assert "client-1" in text  # repr still says which connection this is
    assert "https://auth.example.test" in text


def test_errors_do_not_echo_key_material() -> None:
    pem_key = "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----"

    message = refused(transport_private_key=pem_key, password="passphrase-value")

    assert "TOPSECRETKEYMATERIAL" not in message
    assert "passphrase-value" not in message


def test_settings_are_immutable() -> None:
    result = settings(**MTLS)

    with pytest.raises(AttributeError):
        result.client_id = "other"  # type: ignore[misc]
