"""RaidiamHook end to end against the sandbox: real oidc-provider, real TLS/mTLS, counts from the servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_raidiam.auth.binding import bound_certificate, check_token_binding
from airflow_provider_raidiam.auth.token_client import TOKEN_CACHE, AccessToken
from airflow_provider_raidiam.exceptions import BindingError, DiscoveryError, TokenError
from airflow_provider_raidiam.hooks.raidiam import RaidiamHook
from raidiam_sandbox import Sandbox

pytestmark = pytest.mark.integration

MakeHook = Callable[..., RaidiamHook]


@pytest.fixture
def make_hook(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeHook]:
    """Build hooks from real Airflow connections (``AIRFLOW_CONN_*`` JSON) for sandbox clients."""
    hooks: list[RaidiamHook] = []
    sandbox.reset_stats()

    def make(client: str = "tls", conn_id: str = "raidiam_test", **kwargs: Any) -> RaidiamHook:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", sandbox.connection_uri_env(client, **kwargs))
        hook = RaidiamHook(raidiam_conn_id=conn_id)
        hooks.append(hook)
        return hook

    yield make
    for hook in hooks:
        hook.close()


def test_discovery_is_validated_and_publishes_mtls_aliases(make_hook: MakeHook, sandbox: Sandbox) -> None:
    hook = make_hook()
    document = hook.get_discovery()
    assert document["issuer"] == sandbox.issuer
    assert document["mtls_endpoint_aliases"]["token_endpoint"].startswith(sandbox.mtls_base_url)
    hook.get_discovery()
    assert sandbox.as_stats()["discovery_requests"] == 1


def test_issuer_mismatch_is_refused(make_hook: MakeHook, sandbox: Sandbox) -> None:
    other_name = sandbox.issuer.replace("127.0.0.1", "localhost")
    hook = make_hook(host=other_name)
    with pytest.raises(DiscoveryError, match="Issuer mismatch"):
        hook.get_discovery()


@pytest.mark.parametrize("client", ["tls", "pkj", "pkj-ec"])
def test_both_auth_methods_get_a_certificate_bound_token_from_the_mtls_alias(
    make_hook: MakeHook, sandbox: Sandbox, client: str
) -> None:
    hook = make_hook(client)
    token = hook.get_access_token()
    transport = "tls-client" if client == "tls" else "pkj-transport"
    assert bound_certificate(token) == sandbox.pki.thumbprint(transport)
    stats = sandbox.as_stats()
    assert stats["token_requests"] == 1
    assert stats["tls_handshakes"]["mtls"] == 1, "the token request must go to the mTLS alias"
    page = hook.client.get_json("/organisations", {"page": 0, "size": 5})
    assert len(page["content"]) == 5


def test_one_token_and_one_handshake_for_100_api_calls(make_hook: MakeHook, sandbox: Sandbox) -> None:
    hook = make_hook()
    for page in range(100):
        hook.request("GET", "/organisations", params={"page": page % 10, "size": 3})
    as_stats, api_stats = sandbox.as_stats(), sandbox.api_stats()
    assert as_stats["token_requests"] == 1
    assert as_stats["discovery_requests"] == 1
    assert api_stats["requests_by_status"] == {"200": 100}
    assert api_stats["tls_handshakes"]["mtls"] == 1
    assert as_stats["tls_handshakes"] == {"issuer": 1, "mtls": 1}


def test_token_used_with_another_certificate_is_refused_by_server_and_client(
    make_hook: MakeHook, sandbox: Sandbox
) -> None:
    token = make_hook("tls").get_access_token()
    pki = sandbox.pki
    with requests.Session() as session:
        session.trust_env = False
        response = session.get(
            f"{sandbox.api_base_url}/organisations",
            headers={"Authorization": f"Bearer {token}"},
            cert=(str(pki.cert("other-client")), str(pki.key("other-client"))),
            verify=str(pki.ca_cert),
        )
    assert response.status_code == 401
    assert "invalid_token" in response.headers["WWW-Authenticate"]
    assert sandbox.api_stats()["rejected_tokens"] == 1
    with pytest.raises(BindingError, match=pki.thumbprint("other-client")):
        check_token_binding(token, pki.thumbprint("other-client"))


def test_a_refused_token_is_renewed_once_and_the_call_succeeds(make_hook: MakeHook, sandbox: Sandbox) -> None:
    foreign_token = make_hook("other", conn_id="raidiam_other").get_access_token()
    hook = make_hook("tls")
    hook.get_access_token()
    key = next(key for key in TOKEN_CACHE._tokens if key[1] == hook.settings.client_id)
    TOKEN_CACHE.put(key, AccessToken(value=foreign_token, obtained_at=0.0, expires_at=1e18, scope=None))
    response = hook.request("GET", "/organisations", params={"page": 0, "size": 1})
    assert response.status_code == 200
    assert sandbox.api_stats()["rejected_tokens"] == 1
    assert sandbox.as_stats()["token_requests"] == 3  # other client, first tls token, renewal


def test_test_connection_reports_success_and_failure(make_hook: MakeHook, sandbox: Sandbox) -> None:
    ok, message = make_hook().test_connection()
    assert ok, message
    assert "Directory API OK" in message
    assert sandbox.pki.thumbprint("tls-client") in message
    ok, message = make_hook(login="no-such-client", conn_id="raidiam_bad").test_connection()
    assert not ok
    assert "invalid_client" in message
    assert "no-such-client" in message


def test_unknown_client_raises_token_error_with_server_description(make_hook: MakeHook) -> None:
    with pytest.raises(TokenError) as caught:
        make_hook(login="no-such-client").get_access_token()
    assert caught.value.error == "invalid_client"
    assert caught.value.status in (400, 401)


def test_connection_with_pem_text_leaves_no_key_files_behind(
    make_hook: MakeHook, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    hook = make_hook("pkj", pem_text=True)
    assert hook.settings.transport_private_key is not None
    assert "PRIVATE KEY" in hook.settings.transport_private_key
    assert hook.request("GET", "/organisations", params={"page": 0, "size": 1}).status_code == 200
    assert list(tmp_path.iterdir()) == []


def test_encrypted_transport_key_with_passphrase(make_hook: MakeHook) -> None:
    hook = make_hook("tls", encrypted_key=True)
    assert hook.request("GET", "/organisations", params={"page": 0, "size": 1}).status_code == 200


def test_paginate_returns_total_size_records(make_hook: MakeHook, sandbox: Sandbox) -> None:
    hook = make_hook()
    records = list(hook.paginate("/organisations", page_size=7))
    truth = sandbox.ground_truth()["organisations"]
    assert len(records) == truth["count"]
    assert sorted(record["OrganisationId"] for record in records) == truth["ids"]
    pages = -(-truth["count"] // 7)
    assert sandbox.api_stats()["requests_by_route"]["/organisations"] == pages


def _airflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_airflow_cli_lists_the_provider_and_tests_the_connection(sandbox: Sandbox, airflow_db: Path) -> None:
    env = {**os.environ, "AIRFLOW_CONN_RAIDIAM_CLI": sandbox.connection_uri_env("tls")}
    providers = _airflow("providers", "list", "-o", "json", env=env)
    assert providers.returncode == 0, providers.stderr
    assert "airflow-provider-raidiam" in [row["package_name"] for row in json.loads(providers.stdout)]
    hooks = _airflow("providers", "hooks", "-o", "json", env=env)
    assert any(
        row["connection_type"] == "raidiam" and row["class"].endswith("RaidiamHook") for row in json.loads(hooks.stdout)
    )
    tested = _airflow("connections", "test", "raidiam_cli", env=env)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Connection success" in tested.stdout, tested.stdout


def test_participants_are_read_without_a_connection(sandbox: Sandbox) -> None:
    """``get_public_participant_dfs``: one public GET, no token, only the participants host trusted."""
    from ground_truth import TRUTH, assert_matches_truth

    from airflow_provider_raidiam.directory.catalogue import PARTICIPANT_TABLES

    sandbox.reset_stats()
    frames = RaidiamHook.get_public_participant_dfs(
        sandbox.participants_url, PARTICIPANT_TABLES, ca_bundle=str(sandbox.pki.ca_cert)
    )
    truth = sandbox.ground_truth()
    assert list(frames) == list(PARTICIPANT_TABLES)
    checked = [table for table in TRUTH if table.startswith("participants_")]
    assert checked
    for table in checked:
        assert_matches_truth(table, frames[table], truth)
    assert sandbox.api_stats()["requests_by_route"] == {"/participants": 1}
    assert sandbox.as_stats()["token_requests"] == 0, "the participants list is public"
