"""What a real Airflow shows of a stored ``raidiam`` connection, to whom: the keys are ``***`` by default.

Starts ``airflow api-server`` (own SQLite home, simple auth manager with an admin, an ``op`` user and a
viewer, no ``[core] sensitive_var_conn_names``: Airflow's default rules only). The admin stores sandbox
connections through the REST API with PEM text keys and a passphrase; then, as the non-admin ``op`` user
(the lowest role that may read connections):

- ``GET /api/v2/connections/{id}`` and ``GET /api/v2/connections`` give ``***`` for the password and for
  ``transport_private_key``/``signing_private_key``, and no line of any key;
- ``POST /api/v2/connections/test`` with exactly what was read (the ``***`` included) succeeds: the API
  server puts the stored values back, so redaction costs nothing;
- a template that reads a key (``{{ conn.<id>.extra_dejson.transport_private_key }}``), run by
  ``airflow dags test``, is stored and served as ``***`` in the task's rendered fields.

And it records what Airflow still exposes, as ``docs/security.md`` states: the deprecated names
(``transport_key``) come back in clear from the REST API and in rendered templates, and ``airflow
connections get`` (the CLI, which reads the metadata database directly) prints every value in clear.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from processes import airflow_env, api_server, migrate

from airflow_provider_raidiam.connection_fields import EXTRA_FIELDS
from raidiam_sandbox import Sandbox

pytestmark = pytest.mark.integration

USERS = {"admin": "admin", "operator": "op", "viewer": "viewer"}
SECRET_EXTRAS = [field.name for field in EXTRA_FIELDS if field.secret]
DAG_ID = "raidiam_redaction_probe"
KEYS_OF = {
    "raidiam_rest_tls": {"password", "transport_private_key"},
    "raidiam_rest_pkj": {"transport_private_key", "signing_private_key"},
}


@dataclass(frozen=True)
class Airflow:
    url: str
    env: dict[str, str]
    tokens: dict[str, str]
    stored: dict[str, dict[str, Any]]  # connection id -> the connection as the admin stored it

    def get(self, user: str, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", user, path, **kwargs)

    def call(self, method: str, user: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        with requests.Session() as session:
            session.trust_env = False
            return session.request(method, self.url + "/api/v2" + path, headers=headers, timeout=60, **kwargs)


def fresh_pem_key() -> str:
    """A private key no other test has shown to the secret masker."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def body_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM text: any one of them found somewhere is a leak."""
    return [line for line in pem.replace("\\n", "\n").splitlines() if line and not line.startswith("-----")]


def login(url: str, user: str, password: str) -> str:
    with requests.Session() as session:
        session.trust_env = False
        answer = session.post(url + "/auth/token", json={"username": user, "password": password}, timeout=60)
    assert answer.status_code == 201, f"login of {user} answered {answer.status_code}: {answer.text[:500]}"
    token: str = answer.json()["access_token"]
    return token


def as_rest_body(conn_id: str, conn: dict[str, Any]) -> dict[str, Any]:
    body = {"connection_id": conn_id, "conn_type": conn["conn_type"], "host": conn["host"], "login": conn["login"]}
    return {**body, "password": conn.get("password"), "extra": json.dumps(conn["extra"])}


@pytest.fixture(scope="module")
def airflow(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    """The API server, with three users and the connections stored by the admin."""
    home = tmp_path_factory.mktemp("airflow-rest-home")
    (home / "dags").mkdir()
    passwords_file = home / "passwords.json"
    passwords = {user: secrets.token_urlsafe(16) for user in USERS}
    passwords_file.write_text(json.dumps(passwords))
    env = airflow_env(
        home,
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{user}:{role}" for user, role in USERS.items()),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords_file),
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
    )
    migrate(env, home)
    with api_server(env) as url:
        tokens = {user: login(url, user, password) for user, password in passwords.items()}
        stored = {
            # The transport key encrypted: Test Connection needs the passphrase as well as the key.
            "raidiam_rest_tls": sandbox.connection("tls", pem_text=True, encrypted_key=True),
            "raidiam_rest_pkj": sandbox.connection("pkj", pem_text=True),
            # Keys under the deprecated names, as connections made before the rename have them.
            "raidiam_rest_old_names": sandbox.connection(
                "pkj",
                transport_private_key=None,
                signing_private_key=None,
                transport_key=fresh_pem_key(),
                signing_key=fresh_pem_key(),
            ),
        }
        deployment = Airflow(url=url, env=env, tokens=tokens, stored=stored)
        for conn_id, conn in stored.items():
            answer = deployment.call("POST", "admin", "/connections", json=as_rest_body(conn_id, conn))
            assert answer.status_code == 201, answer.text[:1000]
        yield deployment


def key_values(conn: dict[str, Any]) -> dict[str, str]:
    """The connection's secret values by field: the passphrase and every private key extra (old names too)."""
    names = SECRET_EXTRAS + [alias for field in EXTRA_FIELDS if field.secret for alias in field.aliases]
    values = {name: conn["extra"][name] for name in names if name in conn["extra"]}
    if conn.get("password"):
        values["password"] = conn["password"]
    return values


def assert_keys_hidden(conn: dict[str, Any], shown: dict[str, Any]) -> None:
    """``shown`` (the REST API's connection) has ``***`` for each key and nowhere a line of one."""
    extra = json.loads(shown["extra"])
    text = json.dumps(shown)
    for name, value in key_values(conn).items():
        assert (shown["password"] if name == "password" else extra[name]) == "***", f"{name} is shown"
        assert not [line for line in body_lines(value) if line in text], f"a line of {name} is shown"
    assert extra["transport_cert"] == conn["extra"]["transport_cert"], "a certificate is not secret: shown as is"


# ---- the REST API ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("conn_id", ["raidiam_rest_tls", "raidiam_rest_pkj"])
@pytest.mark.parametrize("user", ["operator", "admin"])
def test_get_connection_shows_the_keys_and_the_passphrase_as_stars(airflow: Airflow, conn_id: str, user: str) -> None:
    conn = airflow.stored[conn_id]
    answer = airflow.get(user, f"/connections/{conn_id}")

    assert answer.status_code == 200, answer.text[:500]
    assert set(key_values(conn)) == KEYS_OF[conn_id], "the case holds the keys it means to"
    assert_keys_hidden(conn, answer.json())


def test_listing_connections_shows_the_keys_as_stars(airflow: Airflow) -> None:
    answer = airflow.get("operator", "/connections", params={"limit": 100})

    assert answer.status_code == 200, answer.text[:500]
    listed = {conn["connection_id"]: conn for conn in answer.json()["connections"]}
    for conn_id in ("raidiam_rest_tls", "raidiam_rest_pkj"):
        assert_keys_hidden(airflow.stored[conn_id], listed[conn_id])


def test_a_viewer_cannot_read_connections_at_all(airflow: Airflow) -> None:
    assert airflow.get("viewer", "/connections/raidiam_rest_tls").status_code == 403
    assert airflow.get("viewer", "/connections").status_code == 403


@pytest.mark.parametrize("conn_id", ["raidiam_rest_tls", "raidiam_rest_pkj"])
def test_test_connection_with_the_redacted_values_uses_the_stored_keys(
    airflow: Airflow, sandbox: Sandbox, conn_id: str
) -> None:
    shown = airflow.get("operator", f"/connections/{conn_id}").json()
    assert json.loads(shown["extra"])["transport_private_key"] == "***"

    answer = airflow.call("POST", "operator", "/connections/test", json=shown)

    assert answer.status_code == 200, answer.text[:1000]
    result = answer.json()
    assert result["status"] is True, result["message"]
    assert result["message"].startswith(f"Discovery of {sandbox.issuer} OK; token issued to ")


def test_deprecated_key_names_come_back_in_clear(airflow: Airflow) -> None:
    """Why the extras were renamed: Airflow hides by name, and ``transport_key`` is no sensitive name."""
    conn = airflow.stored["raidiam_rest_old_names"]
    extra = json.loads(airflow.get("operator", "/connections/raidiam_rest_old_names").json()["extra"])

    assert extra["transport_key"] == conn["extra"]["transport_key"]
    assert extra["signing_key"] == conn["extra"]["signing_key"]


# ---- rendered templates and the CLI -------------------------------------------------------------------

PROBE_DAG = """\
import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def keep(material):
    return None


with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2025, 1, 1)):
    PythonOperator(
        task_id="current_name",
        python_callable=keep,
        op_kwargs={{"material": "{{{{ conn.raidiam_rest_tls.extra_dejson.transport_private_key }}}}"}},
    )
    PythonOperator(
        task_id="deprecated_name",
        python_callable=keep,
        op_kwargs={{"material": "{{{{ conn.raidiam_rest_old_names.extra_dejson.transport_key }}}}"}},
    )
"""


@pytest.fixture(scope="module")
def probe_run(airflow: Airflow) -> str:
    """``airflow dags test`` of a DAG whose tasks template a stored key into an argument; the run id."""
    dags = Path(airflow.env["AIRFLOW__CORE__DAGS_FOLDER"])
    (dags / f"{DAG_ID}.py").write_text(PROBE_DAG.format(dag_id=DAG_ID))
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, "2025-06-30"],
        env=airflow.env,
        cwd=airflow.env["AIRFLOW_HOME"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"airflow dags test failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    runs = airflow.get("operator", f"/dags/{DAG_ID}/dagRuns").json()["dag_runs"]
    assert [run["state"] for run in runs] == ["success"], runs
    run_id: str = runs[0]["dag_run_id"]
    return run_id


def rendered_material(airflow: Airflow, run_id: str, task_id: str) -> Any:
    answer = airflow.get("operator", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")
    assert answer.status_code == 200, answer.text[:500]
    return answer.json()["rendered_fields"]["op_kwargs"]["material"]


def test_a_key_templated_into_a_task_is_rendered_as_stars(airflow: Airflow, probe_run: str) -> None:
    assert rendered_material(airflow, probe_run, "current_name") == "***"


def test_a_key_under_its_deprecated_name_is_rendered_in_clear(airflow: Airflow, probe_run: str) -> None:
    old_key = airflow.stored["raidiam_rest_old_names"]["extra"]["transport_key"]

    assert rendered_material(airflow, probe_run, "deprecated_name") == old_key


def test_the_cli_prints_the_stored_keys_in_clear(airflow: Airflow) -> None:
    """``airflow connections get`` reads the metadata database itself: whoever can run it sees every value."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "get", "raidiam_rest_tls", "--output", "json"],
        env=airflow.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (printed,) = json.loads(done.stdout)
    conn = airflow.stored["raidiam_rest_tls"]

    assert printed["extra_dejson"]["transport_private_key"] == conn["extra"]["transport_private_key"]
    assert printed["password"] == conn["password"]
