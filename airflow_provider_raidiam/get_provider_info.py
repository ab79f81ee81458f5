"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_raidiam import __version__

_TEXT = {"type": ["string", "null"]}
_SECRET_TEXT = {"type": ["string", "null"], "format": "password"}


def _field(label: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": schema or _TEXT}


CONNECTION_FIELDS: dict[str, dict[str, Any]] = {
    "auth_method": _field(
        "Client authentication",
        "How the client authenticates at the token endpoint: the transport certificate alone "
        "(tls_client_auth) or a signed client assertion (private_key_jwt).",
        {"type": "string", "enum": ["tls_client_auth", "private_key_jwt"], "default": "tls_client_auth"},
    ),
    "api_base_url": _field(
        "Directory API base URL",
        "The mTLS Directory API, e.g. https://matls-api.sandbox.raidiam.io.",
        {
            "type": ["string", "null"],
            "examples": [
                "https://matls-api.sandbox.raidiam.io",
                "https://matls-api.directory.openbankingbrasil.org.br",
                "https://matls-api.sandbox.directory.openbankingbrasil.org.br",
            ],
        },
    ),
    "scope": _field(
        "Scope",
        "Space-separated scopes to request.",
        {"type": ["string", "null"], "default": "directory:software"},
    ),
    "transport_cert": _field(
        "Transport certificate",
        "The software statement's transport (rtstransport) certificate: a file path on the worker, or the "
        "PEM text itself.",
        {"type": ["string", "null"], "format": "multiline"},
    ),
    "transport_key": _field(
        "Transport private key",
        "The transport certificate's private key: a file path or the PEM text. If it is encrypted, put its "
        "passphrase in 'Private key passphrase' (Standard Fields).",
        _SECRET_TEXT,
    ),
    "ca_bundle": _field(
        "CA bundle",
        "The ecosystem's CA chain that signs the server certificates: a file path or PEM text. Leave empty "
        "to use the system trust store.",
        {"type": ["string", "null"], "format": "multiline"},
    ),
    "signing_key": _field(
        "Signing private key (private_key_jwt)",
        "The signing (rtssigning) certificate's private key that signs client assertions: a path or PEM text. "
        "If it is encrypted, put its passphrase in 'Private key passphrase' (Standard Fields).",
        _SECRET_TEXT,
    ),
    "signing_key_id": _field(
        "Signing key ID (kid)",
        "The kid of the signing key as registered in the Directory (sent in the assertion header).",
    ),
    "signing_alg": _field(
        "Signing algorithm",
        "Algorithm of the client assertion.",
        {"type": "string", "enum": ["PS256", "RS256", "ES256"], "default": "PS256"},
    ),
    "assertion_audience": _field(
        "Client assertion audience",
        "'issuer' (default), 'token_endpoint', or a literal URL to put in the assertion's aud claim.",
        {"type": ["string", "null"], "default": "issuer", "examples": ["issuer", "token_endpoint"]},
    ),
    "discovery_url": _field(
        "Discovery URL",
        "Only when discovery is not at the issuer + /.well-known/openid-configuration.",
    ),
    "participants_url": _field(
        "Participants URL",
        "The public participants list, e.g. https://data.directory.openbankingbrasil.org.br/participants.",
        {
            "type": ["string", "null"],
            "examples": [
                "https://data.directory.openbankingbrasil.org.br/participants",
                "https://data.sandbox.directory.openbankingbrasil.org.br/participants",
            ],
        },
    ),
    "timeout": _field(
        "Timeout (seconds)",
        "Connect timeout, and the longest wait for the next bytes of a response, up to 300 (see attempt_deadline).",
        {"type": ["number", "null"], "default": 30, "exclusiveMinimum": 0, "maximum": 300},
    ),
    "page_size": _field(
        "Page size",
        "Records per page on paged Directory endpoints (1 to 50,000).",
        {"type": ["integer", "null"], "default": 1000, "minimum": 1, "maximum": 50000},
    ),
    "max_workers": _field(
        "Concurrent requests",
        "Parallel Directory calls in fan-out reads (1 to 64; one token and one connection pool are shared).",
        {"type": ["integer", "null"], "default": 16, "minimum": 1, "maximum": 64},
    ),
    "max_pages": _field(
        "Page limit",
        "Most pages one paged read may take (1 to 1,000,000); a server claiming more fails the read.",
        {"type": ["integer", "null"], "default": 10000, "minimum": 1, "maximum": 1000000},
    ),
    "max_response_bytes": _field(
        "Response size limit (bytes)",
        "Largest response body accepted, counted after decompression; a larger one fails the call.",
        {"type": ["integer", "null"], "default": 67108864},
    ),
    "attempt_deadline": _field(
        "Attempt deadline (seconds)",
        "Wall-clock limit of one HTTP attempt: connect, headers and the whole body.",
        {"type": ["number", "null"], "default": 120},
    ),
    "max_requests_per_second": _field(
        "Max requests per second",
        "Optional cap on Directory API requests per second; without it the client adapts to the gateway's limit.",
        {"type": ["number", "null"]},
    ),
    "throttle_timeout": _field(
        "Throttle timeout (seconds)",
        "Fail only after the gateway has refused every request (HTTP 429) for this long.",
        {"type": ["number", "null"], "default": 300},
    ),
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata: hook, operators, sensor, trigger and the ``raidiam`` connection form."""
    return {
        "package-name": "airflow-provider-raidiam",
        "name": "Raidiam",
        "description": "Raidiam Connect directories (Open Finance Brasil, ConnectID, OPIN, ...): OIDC discovery, "
        "certificate-bound client-credentials tokens over mTLS, and Directory data into pandas.",
        "versions": [__version__],
        "integrations": [{"integration-name": "Raidiam", "tags": ["service"]}],
        "hooks": [{"integration-name": "Raidiam", "python-modules": ["airflow_provider_raidiam.hooks.raidiam"]}],
        "operators": [
            {
                "integration-name": "Raidiam",
                "python-modules": [
                    "airflow_provider_raidiam.operators.directory",
                    "airflow_provider_raidiam.operators.changes",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "Raidiam", "python-modules": ["airflow_provider_raidiam.sensors.participants"]}
        ],
        "triggers": [
            {"integration-name": "Raidiam", "python-modules": ["airflow_provider_raidiam.triggers.participants"]}
        ],
        "connection-types": [
            {
                "connection-type": "raidiam",
                "hook-class-name": "airflow_provider_raidiam.hooks.raidiam.RaidiamHook",
                "hook-name": "Raidiam",
                "ui-field-behaviour": {
                    "hidden-fields": ["port", "schema", "extra"],
                    "relabeling": {
                        "host": "Issuer URL",
                        "login": "Client ID",
                        "password": "Private key passphrase",
                    },
                    "placeholders": {
                        "host": "https://auth.sandbox.raidiam.io",
                        "login": "client id of your software statement",
                        "password": "only if a private key is encrypted",
                    },
                },
                "conn-fields": CONNECTION_FIELDS,
            }
        ],
    }
