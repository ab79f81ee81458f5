"""Every column of the table catalogue reads a field the vendored OpenAPI specs (``tests/specs/``) define.

Each table is matched with the spec schemas of its records; a column's source field, and a child table's
list field, must be a property of one of them (or a documented newer field, ``openapi_specs.NEWER``).
An inherited parent key may also come from an ancestor's schema.
"""

from __future__ import annotations

import pytest
from openapi_specs import NEWER, PARTICIPANTS, spec_properties

from airflow_provider_raidiam.directory.schema import TABLES, TableSchema

# The participants tables reuse the Directory tables' columns: either spec may define a field.
SPEC_SCHEMAS: dict[str, tuple[str, ...]] = {
    "organisations": ("Organisation",),
    "organisation_details": ("Organisation", "OrganisationWithTnc"),  # OrgDetails plus TncDetails
    "authorisation_servers": ("AuthorisationServer",),
    "api_resources": ("ApiResource",),
    "api_discovery_endpoints": ("ApiDiscoveryEndpoint",),
    "authorisation_server_certifications": ("AuthorisationServerCertification",),
    "software_statements": ("SoftwareStatement",),
    "software_statement_certifications": ("SoftwareStatementCertification",),
    "software_statement_certificates": ("CertificateOrKey",),
    "organisation_certificates": ("CertificateOrKey",),
    "contacts": ("Contact",),
    "authority_claims": ("OrganisationAuthorityClaim",),
    "authority_claim_authorisations": ("OrganisationAuthorityClaimAuthorisation",),
    "authority_domain_claims": ("OrganisationAuthorityDomainClaim",),
    "authorities": ("Authority",),
    "authorisation_domains": ("AuthorisationDomain",),
    "authorisation_domain_roles": ("AuthorisationDomainRole",),
    "participants_organisations": ("Organisation", PARTICIPANTS + "ParticipantObject"),
    "participants_authorisation_servers": ("AuthorisationServer", PARTICIPANTS + "AuthorisationServer"),
    "participants_api_resources": ("ApiResource", PARTICIPANTS + "ApiResource"),
    "participants_api_discovery_endpoints": ("ApiDiscoveryEndpoint", PARTICIPANTS + "ApiDiscoveryEndpoint"),
    "participants_authorisation_server_certifications": (
        "AuthorisationServerCertification",
        PARTICIPANTS + "AuthorisationServerCertification",
    ),
    "participants_org_domain_claims": ("OrganisationAuthorityDomainClaim",),
    "participants_org_domain_role_claims": ("OrganisationAuthorityClaim",),
    "participants_org_domain_role_claim_authorisations": ("OrganisationAuthorityClaimAuthorisation",),
}

NOT_IN_THE_SPECS = {"clients"}
"""``GET /clients`` is not in the 1.3.7 spec (``../shared/reference/raidiam-api-facts.md`` section 6.9)."""


def fields_of(table: TableSchema) -> frozenset[str]:
    props = spec_properties()
    return frozenset().union(*(props[s] | NEWER.get(s, frozenset()) for s in SPEC_SCHEMAS[table.name]))


def test_every_table_is_matched_with_spec_schemas() -> None:
    assert set(SPEC_SCHEMAS) | NOT_IN_THE_SPECS == set(TABLES)
    props = spec_properties()
    assert [s for schemas in SPEC_SCHEMAS.values() for s in schemas if s not in props] == []


@pytest.mark.parametrize("name", sorted(SPEC_SCHEMAS))
def test_every_column_reads_a_field_of_the_spec(name: str) -> None:
    table = TABLES[name]
    own = fields_of(table)
    ancestors = own
    parent = table.parent
    while parent is not None:
        ancestors |= fields_of(TABLES[parent])
        parent = TABLES[parent].parent
    unknown = [
        column.source
        for column in table.columns
        if column.source is not None and column.source not in (ancestors if column.inherited else own)
    ]
    unknown += [field for field, _ in table.children if field not in own]
    assert unknown == [], f"{name}: fields that no spec schema of {SPEC_SCHEMAS[name]} defines"
