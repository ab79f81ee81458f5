"""The sandbox's ground truth, per table: which ground-truth key a table's ids must equal.

Shared by the end-to-end tests (``dag.test()``, the fault mix, the real scheduler).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from airflow_provider_raidiam.directory.catalogue import SNAPSHOT_TABLES

# table -> (ground-truth key, id column); None compares counts only (the table has no natural id).
TRUTH: dict[str, tuple[str, str | None]] = {
    "organisations": ("organisations", "organisation_id"),
    "authorisation_servers": ("authorisation_servers", "authorisation_server_id"),
    "api_resources": ("api_resources", "api_resource_id"),
    "api_discovery_endpoints": ("api_discovery_endpoints", "api_discovery_id"),
    "authorisation_server_certifications": ("authorisation_server_certifications", "certification_id"),
    "software_statements": ("software_statements", "software_statement_id"),
    "software_statement_certifications": ("software_statement_certifications", "certification_id"),
    "software_statement_certificates": ("software_statement_certificates", "kid"),
    "organisation_certificates": ("organisation_certificates", "kid"),
    "participants_organisations": ("participants", "organisation_id"),
    "participants_authorisation_servers": ("participant_authorisation_servers", "authorisation_server_id"),
    "participants_api_resources": ("participant_api_resources", "api_resource_id"),
    "participants_api_discovery_endpoints": ("participant_api_discovery_endpoints", "api_discovery_id"),
    "participants_authorisation_server_certifications": (
        "participant_authorisation_server_certifications",
        "certification_id",
    ),
    "participants_org_domain_claims": ("participant_org_domain_claims", None),
    "participants_org_domain_role_claims": ("participant_org_domain_role_claims", None),
}


def assert_matches_truth(table: str, frame: pd.DataFrame, truth: dict[str, Any]) -> None:
    key, id_column = TRUTH[table]
    expected = truth[key]
    assert len(frame) == expected["count"], f"{table}: {len(frame)} rows, server has {expected['count']}"
    if id_column is not None:
        assert sorted(frame[id_column].astype(str)) == expected["ids"], f"{table}: ids differ from the server's"


SNAPSHOT_TRUTH = {table: TRUTH[table] for table in TRUTH if not table.startswith("participants_")}
"""The tables of the example snapshot DAG."""


def snapshot_tables() -> list[str]:
    """The catalogue's ``SNAPSHOT_TABLES`` (the snapshot DAG's), checked against :data:`SNAPSHOT_TRUTH`."""
    tables = list(SNAPSHOT_TABLES)
    assert set(tables) == set(SNAPSHOT_TRUTH), "the snapshot DAG's tables changed: update TRUTH"
    return tables
