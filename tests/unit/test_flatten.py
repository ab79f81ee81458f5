"""Flattening nested Directory JSON into typed tables (schema.py + flatten.py), without any HTTP.

``PARTICIPANT`` is real data: one Open Finance Brasil participant from a 2021 snapshot of the public
participants list (shared/reference/samples/participant_record_obb_2021_trimmed.json). The other records
are written by hand from the Raidiam Connect Directory OpenAPI 1.3.7 schemas.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pandas as pd
import pytest

from airflow_provider_raidiam.directory.flatten import empty_frame, flatten, to_text
from airflow_provider_raidiam.directory.schema import TABLES, Kind, descendants, snake_case
from airflow_provider_raidiam.exceptions import ConfigurationError, DataIntegrityError, ResponseFormatError

PARTICIPANT: dict[str, Any] = json.loads(
    r"""
{
  "Status": "Active",
  "OrgDomainRoleClaims": [
   {"Status": "Active", "AuthorisationDomain": "Open Banking", "Role": "CCORR",
    "RegistrationId": "92702067-OBB-CCORR", "Authorisations": []},
   {"Status": "Active", "AuthorisationDomain": "Open Banking", "Role": "DADOS",
    "RegistrationId": "92702067-OBB-DADOS", "Authorisations": []}
  ],
  "AuthorisationServers": [
   {
    "PayloadSigningCertLocationUri": "https://openbanking.banrisul.com.br/naoseaplica",
    "ParentAuthorisationServerId": null,
    "OpenIDDiscoveryDocument": "https://openbanking.banrisul.com.br/naoseaplica",
    "CustomerFriendlyName": "BANRISUL",
    "CustomerFriendlyDescription": "Servidor de autenticacao Open Data",
    "TermsOfServiceUri": "https://developers-openbanking.banrisul.com.br/naoseaplica.html",
    "ApiResources": [
     {"ApiFamilyType": "discovery", "ApiVersion": 1, "ApiResourceId": "e9a529b4-7348-4113-9dab-243d2e0a04f5",
      "ApiDiscoveryEndpoints": [
       {"ApiDiscoveryId": "ce94258a-504d-4cf2-b7d0-e6f07737e788",
        "ApiEndpoint": "https://openbanking.banrisul.com.br/open-banking/discovery/v1"}]},
     {"ApiFamilyType": "channels", "ApiVersion": 1, "ApiResourceId": "13639d15-6406-4814-b588-131baee843b8",
      "ApiDiscoveryEndpoints": [
       {"ApiDiscoveryId": "f4c4680e-f761-44fd-9616-c6a152d8e590",
        "ApiEndpoint": "https://openbanking.banrisul.com.br/open-banking/channels/v1"}]}
    ],
    "AutoRegistrationSupported": true,
    "CustomerFriendlyLogoUri": "https://www.banrisul.com.br/naoseaplica.png",
    "DeveloperPortalUri": "https://developers-openbanking.banrisul.com.br",
    "AuthorisationServerId": "88dc57a4-1dab-4493-8b02-b8f0c15a2d89"
   }
  ],
  "OrgDomainClaims": [
   {"Status": "Active", "AuthorityName": "Banco Central do Brasil", "RegistrationId": "",
    "AuthorisationDomainName": "Open Banking"}
  ],
  "RegistrationId": "92702067",
  "OrganisationId": "2a01e202-e8f0-5f5a-9651-ebc257371e6e",
  "City": "Porto Alegre, RS",
  "Postcode": "90010-040",
  "AddressLine2": "Centro Histórico",
  "RegisteredName": "BANCO DO ESTADO DO RIO GRANDE DO SUL S.A.",
  "AddressLine1": "Rua Capitão Montanha 177, ",
  "LegalEntityName": "BANCO DO ESTADO DO RIO GRANDE DO SUL S.A.",
  "OrganisationName": "BCO DO ESTADO DO RS S.A.",
  "Country": "BR",
  "RegistrationNumber": "92702067",
  "CreatedOn": "2021-01-07 16:17:25.696",
  "ParentOrganisationReference": "",
  "CompanyRegister": "Cadastro Nacional da Pessoa Jurídica",
  "CountryOfRegistration": "BR"
}
"""
)
ORG = "2a01e202-e8f0-5f5a-9651-ebc257371e6e"
AS = "88dc57a4-1dab-4493-8b02-b8f0c15a2d89"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def as_record(as_id: str = "as-1", **fields: Any) -> dict[str, Any]:
    """An AuthorisationServer (spec 1.3.7) with one API resource, one endpoint and one certification."""
    record: dict[str, Any] = {
        "AuthorisationServerId": as_id,
        "OrganisationId": "org-1",
        "CustomerFriendlyName": "Banco Ação",
        "SupportsCiba": False,
        "SupportsDCR": True,
        "NotificationWebhookAddedDate": "2022-03-01",
        "ApiResources": [
            {
                "ApiResourceId": f"{as_id}-r1",
                "ApiFamilyType": "payments-consents",
                "ApiVersion": "1.0.0",
                "CertificationStatus": "Certified",
                "CertificationStartDate": "31/01/2022",
                "CertificationExpirationDate": "",
                "FamilyComplete": True,
                "ApiDiscoveryEndpoints": [
                    {"ApiDiscoveryId": f"{as_id}-d1", "ApiEndpoint": "https://api.example/consents/v1/consents"}
                ],
            }
        ],
        "AuthorisationServerCertifications": [
            {
                "CertificationId": f"{as_id}-c1",
                "AuthorisationServerId": as_id,
                "Status": "Certified",
                "ProfileType": "Redirect",
                "ProfileVariant": "FAPI Adv. OP w/ MTLS, PAR",
                "ProfileVersion": 1,
                "CertificationURI": "https://github.com/x/y.zip",
                "CertificationStartDate": "01/02/2021",
                "CertificationExpirationDate": "01/02/2022",
            }
        ],
    }
    record.update(fields)
    return record


# ---- the real participant record --------------------------------------------------------------------


@pytest.fixture(scope="module")
def participants() -> dict[str, pd.DataFrame]:
    return flatten([PARTICIPANT], "participants_organisations")


def test_participants_give_one_table_per_entity(participants: dict[str, pd.DataFrame]) -> None:
    assert {t: len(df) for t, df in participants.items()} == {
        "participants_organisations": 1,
        "participants_authorisation_servers": 1,
        "participants_api_resources": 2,
        "participants_api_discovery_endpoints": 2,
        "participants_authorisation_server_certifications": 0,
        "participants_org_domain_claims": 1,
        "participants_org_domain_role_claims": 2,
        "participants_org_domain_role_claim_authorisations": 0,
    }


def test_every_table_has_its_schema_columns_and_dtypes(participants: dict[str, pd.DataFrame]) -> None:
    for table, frame in participants.items():
        assert list(frame.columns) == TABLES[table].column_names, table
        assert {c: str(t) for c, t in frame.dtypes.items()} == TABLES[table].dtypes, table


def test_organisation_values_keep_accents_spaces_and_empty_strings(participants: dict[str, pd.DataFrame]) -> None:
    org = participants["participants_organisations"].iloc[0]
    assert org["organisation_id"] == ORG
    assert org["company_register"] == "Cadastro Nacional da Pessoa Jurídica"
    assert org["address_line1"] == "Rua Capitão Montanha 177, "
    assert org["address_line2"] == "Centro Histórico"
    assert org["parent_organisation_reference"] == ""
    assert org["registration_number"] == "92702067"
    assert org["created_on"] == utc("2021-01-07 16:17:25.696")
    assert pd.isna(org["tags"])
    assert pd.isna(org["requires_participant_terms_and_conditions_signing"])
    assert pd.isna(org["extra"])


def test_nested_tables_carry_their_parent_keys(participants: dict[str, pd.DataFrame]) -> None:
    server = participants["participants_authorisation_servers"].iloc[0]
    assert server["organisation_id"] == ORG  # not in the AS record: taken from the participant
    assert server["authorisation_server_id"] == AS
    assert pd.isna(server["parent_authorisation_server_id"])
    assert bool(server["auto_registration_supported"]) is True
    assert pd.isna(server["supports_ciba"])

    resources = participants["participants_api_resources"]
    assert list(resources["api_resource_id"]) == sorted(resources["api_resource_id"])
    assert set(resources["authorisation_server_id"]) == {AS}
    assert set(resources["organisation_id"]) == {ORG}
    assert list(resources["api_version"]) == ["1", "1"]  # JSON number 1 -> "1"

    endpoints = participants["participants_api_discovery_endpoints"].set_index("api_discovery_id")
    row = endpoints.loc["ce94258a-504d-4cf2-b7d0-e6f07737e788"]
    assert row["api_resource_id"] == "e9a529b4-7348-4113-9dab-243d2e0a04f5"
    assert row["authorisation_server_id"] == AS
    assert row["organisation_id"] == ORG
    assert row["api_endpoint"] == "https://openbanking.banrisul.com.br/open-banking/discovery/v1"


def test_claims(participants: dict[str, pd.DataFrame]) -> None:
    domain = participants["participants_org_domain_claims"].iloc[0]
    assert (domain["organisation_id"], domain["claim_index"], domain["authority_name"], domain["registration_id"]) == (
        ORG,
        0,
        "Banco Central do Brasil",
        "",
    )
    assert pd.isna(domain["organisation_authority_domain_claim_id"])  # the 2021 data has no claim IDs
    roles = participants["participants_org_domain_role_claims"]
    assert roles[["claim_index", "role", "registration_id"]].values.tolist() == [
        [0, "CCORR", "92702067-OBB-CCORR"],
        [1, "DADOS", "92702067-OBB-DADOS"],
    ]
    assert set(roles["organisation_id"]) == {ORG}
    assert str(roles["claim_index"].dtype) == "Int64"


def test_role_claim_authorisations_inherit_the_claim_key() -> None:
    record = copy.deepcopy(PARTICIPANT)
    record["OrgDomainRoleClaims"][1]["Authorisations"] = [
        {"Status": "Active", "MemberState": "BR"},
        None,
        {"Status": "Inactive", "MemberState": "BR"},  # same member state, other status: both kept
    ]
    auth = flatten([record], "participants_organisations")["participants_org_domain_role_claim_authorisations"]
    assert auth[
        ["organisation_id", "claim_index", "authorisation_index", "member_state", "status"]
    ].values.tolist() == [
        [ORG, 1, 0, "BR", "Active"],
        [ORG, 1, 2, "BR", "Inactive"],  # positions are those of the original list
    ]


def test_claims_with_the_same_natural_fields_are_all_kept() -> None:
    record = copy.deepcopy(PARTICIPANT)
    claim = {"Status": "Active", "AuthorisationDomain": "Open Banking", "Role": "DADOS", "RegistrationId": ""}
    record["OrgDomainRoleClaims"] = [{**claim, "Authorisations": []}, {**claim, "Status": "Inactive"}]
    roles = flatten([record], "participants_organisations")["participants_org_domain_role_claims"]
    assert roles[["claim_index", "status"]].values.tolist() == [[0, "Active"], [1, "Inactive"]]


def test_the_same_participant_twice_is_an_error_not_a_silent_drop() -> None:
    # Before the fix the second copy was dropped without a word.
    with pytest.raises(DataIntegrityError) as caught:
        flatten([PARTICIPANT, copy.deepcopy(PARTICIPANT)], "participants_organisations", source="GET /participants")

    error = caught.value
    assert (error.table, error.key) == ("participants_organisations", ("organisation_id",))
    assert error.examples == ["organisation_id='2a01e202-e8f0-5f5a-9651-ebc257371e6e'"]
    assert str(error).startswith("GET /participants: table participants_organisations: 2 rows share their key")
    assert "another record was lost" in str(error)
    assert "Run the task again" in str(error)


# ---- authorisation servers (the /authorisationservers response) ---------------------------------------


def test_authorisation_server_tree_with_inherited_organisation() -> None:
    out = flatten([as_record()], "authorisation_servers", inherited={"organisation_id": ["org-1"]})
    server = out["authorisation_servers"].iloc[0]
    assert server["customer_friendly_name"] == "Banco Ação"
    assert (bool(server["supports_ciba"]), bool(server["supports_dcr"])) == (False, True)
    assert server["notification_webhook_added_date"] == utc("2022-03-01")
    resource = out["api_resources"].iloc[0]
    assert resource["api_family_type"] == "payments-consents"
    assert resource["certification_start_date"] == utc("2022-01-31")
    assert pd.isna(resource["certification_expiration_date"])  # "" -> NaT
    assert pd.isna(resource["extra"])
    cert = out["authorisation_server_certifications"].iloc[0]
    assert cert["profile_version"] == "1"
    assert cert["certification_uri"] == "https://github.com/x/y.zip"
    assert cert["certification_start_date"] == utc("2021-02-01")
    assert out["api_discovery_endpoints"].iloc[0]["api_resource_id"] == "as-1-r1"


def test_the_same_authorisation_server_seen_twice_is_an_error() -> None:
    records = [as_record("as-2"), as_record("as-1"), as_record("as-2")]
    with pytest.raises(DataIntegrityError) as caught:
        flatten(records, "authorisation_servers", inherited={"organisation_id": ["org-1"] * 3})
    assert caught.value.table == "authorisation_servers"  # the parent is named, not its children
    assert caught.value.examples == ["authorisation_server_id='as-2'"]


def test_a_child_key_under_two_parents_is_an_error() -> None:
    second = as_record("as-2")
    second["ApiResources"][0]["ApiResourceId"] = "as-1-r1"
    with pytest.raises(DataIntegrityError, match="table api_resources: 2 rows share their key") as caught:
        flatten([as_record("as-1"), second], "authorisation_servers", tables=["api_resources"])
    assert caught.value.key == ("api_resource_id",)


def test_a_record_without_its_key_is_an_error() -> None:
    with pytest.raises(
        DataIntegrityError, match=r"1 record\(s\) without a value for the key \(authorisation_server_id\)"
    ):
        flatten([as_record("as-1"), as_record(AuthorisationServerId=None)], "authorisation_servers")


def test_keys_in_the_message_are_escaped_and_bounded() -> None:
    nasty = "as\r\nMarking task as SUCCESS\x1b[0m" + "x" * 500
    with pytest.raises(DataIntegrityError) as caught:
        flatten([as_record(nasty), as_record(nasty)], "authorisation_servers")
    message = str(caught.value)
    assert not {"\r", "\n", "\x1b"} & set(message)
    assert "x" * 100 not in message


def test_output_does_not_depend_on_input_order() -> None:
    records = [as_record(f"as-{i}") for i in range(5)]
    inherited = {"organisation_id": ["org-1"] * 5}
    forward = flatten(records, "authorisation_servers", inherited=inherited)
    backward = flatten(records[::-1], "authorisation_servers", inherited=inherited)
    for table in forward:
        pd.testing.assert_frame_equal(forward[table], backward[table], obj=table)


def test_a_parent_id_that_contradicts_the_parent_is_kept_in_extra() -> None:
    out = flatten(
        [as_record(OrganisationId="other-org")], "authorisation_servers", inherited={"organisation_id": ["org-1"]}
    )
    server = out["authorisation_servers"].iloc[0]
    assert server["organisation_id"] == "org-1"
    assert json.loads(server["extra"]) == {"OrganisationId": "other-org"}


def test_record_id_is_used_without_a_parent() -> None:
    server = flatten([as_record()], "authorisation_servers")["authorisation_servers"].iloc[0]
    assert server["organisation_id"] == "org-1"
    assert pd.isna(server["extra"])


def test_only_the_tables_asked_for_are_returned() -> None:
    out = flatten([as_record()], "authorisation_servers", tables=["api_discovery_endpoints"])
    assert list(out) == ["api_discovery_endpoints"]
    assert out["api_discovery_endpoints"].iloc[0]["authorisation_server_id"] == "as-1"
    with pytest.raises(ConfigurationError, match="not nested"):
        flatten([as_record()], "authorisation_servers", tables=["contacts"])


# ---- value quirks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "expected"),
    [(1, "1"), (1.0, "1"), (2.5, "2.5"), ("1.0.0", "1.0.0"), ("1.0", "1.0"), (None, None), ("", "")],
)
def test_api_version_is_text(sent: Any, expected: str | None) -> None:
    record = as_record()
    record["ApiResources"][0]["ApiVersion"] = sent
    value = flatten([record], "authorisation_servers")["api_resources"]["api_version"].iloc[0]
    assert (pd.isna(value) and expected is None) or value == expected


def test_mixed_api_version_types_in_one_column() -> None:
    record = as_record()
    record["ApiResources"] = [
        {"ApiResourceId": "a", "ApiVersion": 2},
        {"ApiResourceId": "b", "ApiVersion": "2.0.1"},
        {"ApiResourceId": "c", "ApiVersion": 1.1},
        {"ApiResourceId": "d"},
    ]
    resources = flatten([record], "authorisation_servers")["api_resources"]
    assert resources["api_version"].tolist() == ["2", "2.0.1", "1.1", pd.NA]
    assert str(resources["api_version"].dtype) == "string"


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("2021-01-07 16:17:25.696", "2021-01-07 16:17:25.696"),
        ("2020-12-18T17:53:49.832Z", "2020-12-18 17:53:49.832"),
        ("2023-05-01T10:00:00-03:00", "2023-05-01 13:00:00"),
        ("2023-05-01T10:00:00+01:00", "2023-05-01 09:00:00"),
        ("2022-03-01", "2022-03-01"),
        ("31/01/2022", "2022-01-31"),
        (" 01/02/2021 ", "2021-02-01"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_dates_in_every_format(sent: Any, expected: str | None) -> None:
    value = flatten([{"OrganisationId": "o", "CreatedOn": sent}], "organisations")["organisations"]
    got = value["created_on"].iloc[0]
    assert (pd.isna(got) and expected is None) or got == utc(str(expected))
    assert pd.isna(value["extra"].iloc[0])


def test_mixed_date_formats_in_one_column() -> None:
    records = [
        {"OrganisationId": "a", "CreatedOn": "2021-01-07 16:17:25.696"},
        {"OrganisationId": "b", "CreatedOn": "2020-12-18T17:53:49.832Z"},
        {"OrganisationId": "c", "CreatedOn": "18/12/2020"},
        {"OrganisationId": "d", "CreatedOn": ""},
    ]
    created = flatten(records, "organisations")["organisations"]["created_on"]
    assert str(created.dtype) == "datetime64[ns, UTC]"
    assert created.tolist()[:3] == [utc("2021-01-07 16:17:25.696"), utc("2020-12-18 17:53:49.832"), utc("2020-12-18")]
    assert pd.isna(created.iloc[3])


@pytest.mark.parametrize("sent", ["not a date", "31/02/2021", "31/12/9999", 20210107])
def test_an_unparseable_date_is_nat_and_kept_in_extra(sent: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        row = flatten([{"OrganisationId": "o", "CreatedOn": sent}], "organisations")["organisations"].iloc[0]
    assert pd.isna(row["created_on"])
    assert json.loads(row["extra"]) == {"CreatedOn": sent}
    assert "could not be parsed" in caplog.text


def test_booleans_from_json_and_text() -> None:
    records = [as_record(f"as-{i}", SupportsCiba=v) for i, v in enumerate([True, "false", "TRUE", None, "yes"])]
    servers = flatten(records, "authorisation_servers")["authorisation_servers"]
    assert servers["supports_ciba"].tolist() == [True, False, True, pd.NA, pd.NA]
    assert json.loads(servers["extra"].iloc[4]) == {"SupportsCiba": "yes"}


def test_lists_become_json_text() -> None:
    records = [
        {"OrganisationId": "a", "Tags": ["Api Provider", "Instituição"]},
        {"OrganisationId": "b", "Tags": []},
        {"OrganisationId": "c", "Tags": None},
        {"OrganisationId": "d", "Tags": "loose"},
    ]
    tags = flatten(records, "organisations")["organisations"]["tags"]
    assert tags.tolist() == ['["Api Provider","Instituição"]', "[]", pd.NA, '"loose"']
    assert json.loads(tags.iloc[0]) == ["Api Provider", "Instituição"]


def test_ids_sent_as_numbers_become_text() -> None:
    org = flatten([{"OrganisationId": 12345, "RegistrationNumber": 92702067}], "organisations")["organisations"]
    assert org.iloc[0][["organisation_id", "registration_number"]].tolist() == ["12345", "92702067"]


def test_to_text() -> None:
    assert [to_text(v) for v in (1, 1.0, 1.25, True, "x", {"b": 1, "a": "é"})] == [
        "1",
        "1",
        "1.25",
        "true",
        "x",
        '{"a":"é","b":1}',
    ]


# ---- unknown fields -----------------------------------------------------------------------------------


def test_unknown_fields_are_kept_in_extra_at_every_level() -> None:
    record = as_record(NewFlag=True, Ratings={"b": 2, "a": 1})
    record["ApiResources"][0]["ApiMetadata"] = {"k": "v"}
    record["ApiResources"][0]["Region"] = "São Paulo"
    record["ApiResources"][0]["ApiDiscoveryEndpoints"][0]["Weight"] = 0.5
    out = flatten([record], "authorisation_servers")
    assert json.loads(out["authorisation_servers"]["extra"].iloc[0]) == {"NewFlag": True, "Ratings": {"a": 1, "b": 2}}
    assert out["authorisation_servers"]["extra"].iloc[0] == '{"NewFlag":true,"Ratings":{"a":1,"b":2}}'
    resource = out["api_resources"].iloc[0]
    assert resource["extra"] == '{"Region":"São Paulo"}'
    assert resource["api_metadata"] == '{"k":"v"}'
    assert json.loads(out["api_discovery_endpoints"]["extra"].iloc[0]) == {"Weight": 0.5}


def test_nested_tables_are_not_repeated_in_extra_and_secrets_are_dropped() -> None:
    statement = {
        "SoftwareStatementId": "ss-1",
        "ClientSecret": "s3cret",
        "RedirectUri": ["https://tpp.example/cb"],
        "Version": 1.1,
        "SoftwareStatementCertifications": [{"CertificationId": "c-1", "ProfileVersion": 2}],
    }
    out = flatten([statement], "software_statements", inherited={"organisation_id": ["org-1"]})
    row = out["software_statements"].iloc[0]
    assert pd.isna(row["extra"])
    assert "s3cret" not in out["software_statements"].to_csv()
    assert row["redirect_uri"] == '["https://tpp.example/cb"]'
    assert row["version"] == "1.1"
    cert = out["software_statement_certifications"].iloc[0]
    assert (cert["organisation_id"], cert["software_statement_id"], cert["profile_version"]) == ("org-1", "ss-1", "2")


# ---- empty and malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize("table", list(TABLES))
def test_empty_tables_have_their_columns(table: str) -> None:
    frame = empty_frame(table)
    assert frame.empty
    assert list(frame.columns) == TABLES[table].column_names
    assert {c: str(t) for c, t in frame.dtypes.items()} == TABLES[table].dtypes


def test_no_records_give_empty_typed_tables() -> None:
    out = flatten([], "participants_organisations")
    assert list(out) == descendants("participants_organisations")
    for table, frame in out.items():
        pd.testing.assert_frame_equal(frame, empty_frame(table), obj=table)


def test_servers_without_resources() -> None:
    out = flatten([as_record(ApiResources=[]), as_record("as-2", ApiResources=None)], "authorisation_servers")
    assert len(out["authorisation_servers"]) == 2
    pd.testing.assert_frame_equal(out["api_resources"], empty_frame("api_resources"))


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ({"content": []}, "expected a JSON array of objects, got an object"),
        (["x"], "got an item that is a string"),
        ([as_record(ApiResources="none")], "expected ApiResources to be an array, got a string"),
        ([as_record(ApiResources={"ApiResourceId": "r"})], "expected ApiResources to be an array, got an object"),
        ([as_record(ApiResources=["r"])], "expected ApiResources to hold JSON objects"),
    ],
)
def test_wrong_shapes_say_where_and_what(records: Any, message: str) -> None:
    with pytest.raises(ResponseFormatError, match=message) as info:
        flatten(records, "authorisation_servers", source="GET /organisations/{OrganisationId}/authorisationservers")
    assert str(info.value).startswith("GET /organisations/{OrganisationId}/authorisationservers: ")


def test_unknown_root_table() -> None:
    with pytest.raises(ConfigurationError, match="unknown table"):
        flatten([], "nope")


# ---- schema declarations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("AuthorisationServerId", "authorisation_server_id"),
        ("OpenIDDiscoveryDocument", "open_id_discovery_document"),
        ("SupportsDCR", "supports_dcr"),
        ("CertificationURI", "certification_uri"),
        ("x5thashS256", "x5thash_s256"),
        ("keyType", "key_type"),
        ("client_id", "client_id"),
        ("AddressLine1", "address_line1"),
    ],
)
def test_snake_case(name: str, snake: str) -> None:
    assert snake_case(name) == snake


def test_schema_declarations_are_consistent() -> None:
    for table in TABLES.values():
        assert table.column_names[-1] == "extra"
        assert set(table.key) <= set(table.column_names)
        assert set(table.parent_key) <= set(table.column_names)
        if table.parent:
            assert set(table.parent_key) <= set(TABLES[table.parent].column_names)
        assert all(c.kind in Kind for c in table.columns)
        ids = [c.name for c in table.columns if c.name.endswith("_id")]
        assert all(table.dtypes[c] == "string" for c in ids), table.name


def test_twenty_thousand_nested_resources_build_into_one_row_each() -> None:
    """20k API resources (with their endpoints) flatten to one row each (speed is measured in benchmarks/)."""
    records = [as_record(f"as-{i:05d}") for i in range(2_000)]
    for record in records:
        record["ApiResources"] = record["ApiResources"] * 10
        for j, resource in enumerate(record["ApiResources"]):
            resource_id = f"{record['AuthorisationServerId']}-{j}"
            endpoints = [{**e, "ApiDiscoveryId": f"{resource_id}-d"} for e in resource["ApiDiscoveryEndpoints"]]
            record["ApiResources"][j] = {**resource, "ApiResourceId": resource_id, "ApiDiscoveryEndpoints": endpoints}
    out = flatten(records, "authorisation_servers", inherited={"organisation_id": ["org-1"] * len(records)})
    assert len(out["api_resources"]) == 20_000
    assert out["api_resources"]["api_resource_id"].is_unique
