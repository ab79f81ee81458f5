"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_raidiam import __version__
from airflow_provider_raidiam.connection_fields import EXTRA_FIELDS, HIDDEN_STANDARD_FIELDS, STANDARD_FIELDS


def conn_fields() -> dict[str, dict[str, Any]]:
    """The ``conn-fields`` of the ``raidiam`` connection type: the form's extra fields."""
    return {
        field.name: {"label": field.label, "description": field.description, "schema": field.schema}
        for field in EXTRA_FIELDS
    }


def ui_field_behaviour() -> dict[str, Any]:
    """The ``ui-field-behaviour`` of the ``raidiam`` connection type: hidden and relabelled standard fields."""
    return {
        "hidden-fields": [*HIDDEN_STANDARD_FIELDS, "extra"],
        "relabeling": {field.name: field.label for field in STANDARD_FIELDS},
        "placeholders": {field.name: field.placeholder for field in STANDARD_FIELDS},
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
                "ui-field-behaviour": ui_field_behaviour(),
                "conn-fields": conn_fields(),
            }
        ],
    }
