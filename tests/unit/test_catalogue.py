"""The table catalogue against a fake DirectoryReader holding hand-written Directory responses.

The responses follow the Raidiam Connect Directory OpenAPI 1.3.7 schemas (PascalCase, British spelling)
and, for ``/clients``, the RFC 7591 snake_case fields the Directory documents. The fake counts every
call, so the tests can check which endpoints a table reads and that tables sharing a source share it.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest

from airflow_provider_raidiam.directory import schema
from airflow_provider_raidiam.directory.catalogue import (
    PARTICIPANT_TABLES,
    endpoints_of,
    list_tables,
    read_table,
    read_tables,
    source_of,
)
from airflow_provider_raidiam.directory.filters import TableFilters
from airflow_provider_raidiam.directory.paging import PageLimits
from airflow_provider_raidiam.directory.reader import DirectoryReader
from airflow_provider_raidiam.directory.schema import TABLES, Column, Source, TableSchema
from airflow_provider_raidiam.exceptions import (
    ApiError,
    ConfigurationError,
    DataIntegrityError,
    PaginationError,
    ResponseFormatError,
)

T = TypeVar("T")
R = TypeVar("R")

PARTICIPANTS_URL = "https://data.directory.example/participants"

ORGANISATIONS: list[dict[str, Any]] = [
    {
        "OrganisationId": "org-a",
        "OrganisationName": "Banco Ação S.A.",
        "Status": "Active",
        "CreatedOn": "2021-01-07 16:17:25.696",
        "Tags": ["Api Provider"],
        "RequiresParticipantTermsAndConditionsSigning": False,
    },
    {
        "OrganisationId": "org-b",
        "OrganisationName": "Withdrawn Ltd",
        "Status": "Withdrawn",
        "CreatedOn": "2020-12-18T17:53:49.832Z",
    },
    {
        "OrganisationId": "org-c",
        "OrganisationName": "Cooperativa Três",
        "Status": "Active",
        "CreatedOn": "18/12/2020",
        "Flags": {"Type": ["x"]},
        "Sector": "credit-union",  # not in the spec: kept in `extra`
    },
]


def _server(org: str, as_id: str, versions: list[Any]) -> dict[str, Any]:
    return {
        "AuthorisationServerId": as_id,
        "OrganisationId": org,
        "CustomerFriendlyName": f"AS {as_id}",
        "OpenIDDiscoveryDocument": f"https://auth.{org}.example/.well-known/openid-configuration",
        "SupportsDCR": True,
        "ApiResources": [
            {
                "ApiResourceId": f"{as_id}-r{i}",
                "ApiFamilyType": "accounts",
                "ApiVersion": version,
                "CertificationStartDate": "31/01/2022",
                "ApiDiscoveryEndpoints": [
                    {"ApiDiscoveryId": f"{as_id}-r{i}-d", "ApiEndpoint": f"https://api.{org}.example/accounts/v{i}"}
                ],
            }
            for i, version in enumerate(versions)
        ],
        "AuthorisationServerCertifications": [
            {"CertificationId": f"{as_id}-cert", "Status": "Certified", "ProfileVersion": 1.0}
        ],
    }


def _statement(org: str, ss_id: str) -> dict[str, Any]:
    return {
        "SoftwareStatementId": ss_id,
        "OrganisationId": org,
        "ClientName": f"App {ss_id}",
        "Status": "Active",
        "Version": 40,
        "RedirectUri": [f"https://{ss_id}.example/cb"],
        "CreatedAt": "2023-05-01T10:00:00-03:00",
        "SoftwareStatementCertifications": [{"CertificationId": f"{ss_id}-c", "Status": "Certified"}],
    }


def _certificate(org: str, kid: str, ss_ids: list[str]) -> dict[str, Any]:
    return {
        "OrganisationId": org,
        "SoftwareStatementIds": ss_ids,
        "kid": kid,
        "kty": "RSA",
        "use": "sig",
        "keyType": "rtssigning",
        "Status": "Active",
        "x5c": ["MIIB..."],
        "ValidFromDateTime": "2023-01-01T00:00:00Z",
        "ExpiryDateTime": "2024-01-01T00:00:00Z",
    }


def directory() -> dict[str, Any]:
    """Every endpoint's body; paged endpoints hold their records (the fake pages them itself)."""
    routes: dict[str, Any] = {"/organisations": ORGANISATIONS}
    for org in ("org-a", "org-b", "org-c"):
        routes[f"/organisations/{org}"] = {
            "OrgDetails": next(o for o in ORGANISATIONS if o["OrganisationId"] == org),
            "TncDetails": {"TnCId": 1},
        }
        routes[f"/organisations/{org}/contacts"] = [
            {"ContactId": f"{org}-contact", "ContactType": "Technical", "EmailAddress": f"tech@{org}.example"}
        ]
        routes[f"/organisations/{org}/certificates"] = [_certificate(org, f"{org}-kid", [])]
        routes[f"/organisations/{org}/authorityclaims"] = [
            {
                "OrganisationAuthorityClaimId": f"{org}-claim",
                "AuthorityId": "bcb",
                "AuthorisationDomain": "Open Banking",
                "Role": "DADOS",
                "Status": "Active",
                "Authorisations": [
                    {"MemberState": "BR", "Status": "Inactive"},
                    {"MemberState": "BR", "Status": "Active"},  # same member state again: a row of its own
                ],
            }
        ]
        routes[f"/organisations/{org}/authoritydomainclaims"] = [
            {"OrganisationAuthorityDomainClaimId": f"{org}-dclaim", "AuthorisationDomainName": "Open Banking"}
        ]
    routes["/organisations/org-a/authorisationservers"] = [_server("org-a", "as-a1", [1, "2.0.0"])]
    routes["/organisations/org-b/authorisationservers"] = [_server("org-b", "as-b1", [1.0])]
    routes["/organisations/org-c/authorisationservers"] = []
    routes["/organisations/org-a/softwarestatements"] = [_statement("org-a", "ss-a1"), _statement("org-a", "ss-a2")]
    routes["/organisations/org-b/softwarestatements"] = [_statement("org-b", "ss-b1")]
    routes["/organisations/org-c/softwarestatements"] = []
    routes["/organisations/org-a/softwarestatements/ss-a1/certificates"] = [
        _certificate("org-a", "kid-1", ["ss-a1", "ss-a2"])
    ]
    routes["/organisations/org-a/softwarestatements/ss-a2/certificates"] = [
        _certificate("org-a", "kid-1", ["ss-a1", "ss-a2"]),
        _certificate("org-a", "kid-2", ["ss-a2"]),
    ]
    routes["/organisations/org-b/softwarestatements/ss-b1/certificates"] = []
    routes["/references/authorities"] = [
        {"AuthorityId": "bcb", "AuthorityName": "Banco Central do Brasil", "AuthorityCode": "BCB", "Status": "Active"},
        {"AuthorityId": "old", "AuthorityName": "Old", "Status": "Inactive"},
    ]
    routes["/references/authorisationdomains"] = [{"AuthorisationDomainName": "Open Banking", "Status": "Active"}]
    routes["/references/authorisationdomainroles"] = [
        {"AuthorisationDomainName": "Open Banking", "AuthorisationDomainRoleName": "DADOS", "Status": "Active"},
        {"AuthorisationDomainName": "Open Banking", "AuthorisationDomainRoleName": "CONTA", "Status": "Active"},
    ]
    routes["/clients"] = [
        {
            "client_id": "https://rp.directory.example/openid_relying_party/1",
            "client_name": "App ss-a1",
            "organisation_id": "org-a",
            "software_id": "ss-a1",
            "software_version": 1.5,
            "status": "Active",
            "last_updated": "2024-02-01T12:00:00Z",
            "redirect_uris": ["https://ss-a1.example/cb"],
            "grant_types": ["client_credentials"],
            "client_secret": "never-kept",
            "require_pushed_authorization_requests": True,
        },
        {"client_id": "c-2", "organisation_id": "org-b", "status": "Inactive", "last_updated": "01/02/2024"},
    ]
    participants = [
        {
            "OrganisationId": o["OrganisationId"],
            "OrganisationName": o["OrganisationName"],
            "Status": o["Status"],
            "Tag": "Api Provider",
            "AuthorisationServers": routes[f"/organisations/{o['OrganisationId']}/authorisationservers"],
            "OrgDomainClaims": [
                {"AuthorisationDomainName": "Open Banking", "AuthorityName": "BCB", "Status": "Active"}
            ],
            "OrgDomainRoleClaims": [
                {"AuthorisationDomain": "Open Banking", "Role": "DADOS", "RegistrationId": "1", "Authorisations": []}
            ],
        }
        for o in ORGANISATIONS
    ]
    routes[PARTICIPANTS_URL] = participants
    return routes


class FakeReader:
    """A DirectoryReader over ``routes``; counts calls per endpoint and records the query parameters."""

    def __init__(self, routes: dict[str, Any] | None = None) -> None:
        self.routes = directory() if routes is None else routes
        self.calls: Counter[str] = Counter()
        self.params: dict[str, Mapping[str, Any] | None] = {}
        self.page_sizes: set[int] = set()
        self.fan_outs = 0
        self.log = logging.getLogger(__name__)
        self.page_limits = PageLimits()
        self._lock = threading.Lock()

    def _get(self, endpoint: str) -> Any:
        with self._lock:
            self.calls[endpoint] += 1
        if endpoint not in self.routes:
            raise ApiError(f"GET {endpoint} -> 404", status=404, url=endpoint)
        return copy.deepcopy(self.routes[endpoint])

    def url_for(self, endpoint: str) -> str:
        return "https://matls-api.directory.example" + endpoint

    def get_json(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        if params is not None and "page" in params:  # a paged read: the fake answers page 0 with a plain array
            self.params[endpoint] = {k: v for k, v in params.items() if k not in ("page", "size")}
            self.page_sizes.add(params["size"])
        return self._get(endpoint)

    def get_public_json(self, url: str) -> Any:
        return self._get(url)

    def fan_out(self, func: Callable[[T], R], items: Iterable[T]) -> list[R]:
        from concurrent.futures import ThreadPoolExecutor

        self.fan_outs += 1
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(func, items))


@pytest.fixture
def reader() -> FakeReader:
    return FakeReader()


def test_fake_reader_satisfies_the_protocol(reader: FakeReader) -> None:
    checked: DirectoryReader = reader
    assert checked is reader


# ---- the catalogue ------------------------------------------------------------------------------------

PUBLIC_TABLE_NAMES = [
    "organisations",
    "organisation_details",
    "authorisation_servers",
    "api_resources",
    "api_discovery_endpoints",
    "authorisation_server_certifications",
    "software_statements",
    "software_statement_certifications",
    "software_statement_certificates",
    "organisation_certificates",
    "contacts",
    "authority_claims",
    "authority_claim_authorisations",
    "authority_domain_claims",
    "authorities",
    "authorisation_domains",
    "authorisation_domain_roles",
    "clients",
    "participants_organisations",
    "participants_authorisation_servers",
    "participants_api_resources",
    "participants_api_discovery_endpoints",
    "participants_authorisation_server_certifications",
    "participants_org_domain_claims",
    "participants_org_domain_role_claims",
    "participants_org_domain_role_claim_authorisations",
]
REFERENCE_TABLES = ["authorities", "authorisation_domains", "authorisation_domain_roles"]


def test_list_tables() -> None:
    assert list_tables() == PUBLIC_TABLE_NAMES
    assert list(PARTICIPANT_TABLES) == [t for t in PUBLIC_TABLE_NAMES if t.startswith("participants_")]


@pytest.mark.parametrize("table", PUBLIC_TABLE_NAMES)
def test_every_table_reads_with_its_schema(reader: FakeReader, table: str) -> None:
    frame = read_table(reader, table, TableFilters(participants_url=PARTICIPANTS_URL))
    assert list(frame.columns) == TABLES[table].column_names
    assert {c: str(t) for c, t in frame.dtypes.items()} == TABLES[table].dtypes
    key = list(TABLES[table].key)
    assert not frame.duplicated(subset=key).any()
    pd.testing.assert_frame_equal(frame, frame.sort_values(key, kind="stable").reset_index(drop=True))


def test_whole_directory_row_counts(reader: FakeReader) -> None:
    frames = read_tables(reader, list_tables(), TableFilters(participants_url=PARTICIPANTS_URL))
    assert {t: len(f) for t, f in frames.items()} == {
        "organisations": 3,
        "organisation_details": 3,
        "authorisation_servers": 2,
        "api_resources": 3,
        "api_discovery_endpoints": 3,
        "authorisation_server_certifications": 2,
        "software_statements": 3,
        "software_statement_certifications": 3,
        "software_statement_certificates": 3,  # kid-1 under ss-a1 and ss-a2, kid-2 under ss-a2
        "organisation_certificates": 3,
        "contacts": 3,
        "authority_claims": 3,
        "authority_claim_authorisations": 6,
        "authority_domain_claims": 3,
        "authorities": 2,
        "authorisation_domains": 1,
        "authorisation_domain_roles": 2,
        "clients": 2,
        "participants_organisations": 3,
        "participants_authorisation_servers": 2,
        "participants_api_resources": 3,
        "participants_api_discovery_endpoints": 3,
        "participants_authorisation_server_certifications": 2,
        "participants_org_domain_claims": 3,
        "participants_org_domain_role_claims": 3,
        "participants_org_domain_role_claim_authorisations": 0,
    }
    # Every endpoint was called exactly once, the organisation list included.
    assert set(reader.calls.values()) == {1}
    assert reader.calls["/organisations"] == 1


def test_values_and_parent_keys(reader: FakeReader) -> None:
    frames = read_tables(reader, ["organisations", "api_resources", "software_statement_certificates"])
    orgs = frames["organisations"].set_index("organisation_id")
    assert orgs.loc["org-a", "organisation_name"] == "Banco Ação S.A."
    assert orgs.loc["org-a", "tags"] == '["Api Provider"]'
    assert orgs["created_on"].tolist() == [
        pd.Timestamp("2021-01-07 16:17:25.696", tz="UTC"),
        pd.Timestamp("2020-12-18 17:53:49.832", tz="UTC"),
        pd.Timestamp("2020-12-18", tz="UTC"),
    ]
    assert json.loads(orgs.loc["org-c", "extra"]) == {"Sector": "credit-union"}
    assert pd.isna(orgs.loc["org-a", "extra"])

    resources = frames["api_resources"]
    assert resources[
        ["organisation_id", "authorisation_server_id", "api_resource_id", "api_version"]
    ].values.tolist() == [
        ["org-a", "as-a1", "as-a1-r0", "1"],
        ["org-a", "as-a1", "as-a1-r1", "2.0.0"],
        ["org-b", "as-b1", "as-b1-r0", "1"],
    ]
    assert resources["certification_start_date"].iloc[0] == pd.Timestamp("2022-01-31", tz="UTC")

    certs = frames["software_statement_certificates"]
    assert certs[["organisation_id", "software_statement_id", "kid"]].values.tolist() == [
        ["org-a", "ss-a1", "kid-1"],
        ["org-a", "ss-a2", "kid-1"],
        ["org-a", "ss-a2", "kid-2"],
    ]
    assert certs["x5c"].iloc[0] == '["MIIB..."]'
    assert certs["software_statement_ids"].iloc[0] == '["ss-a1","ss-a2"]'
    assert certs["valid_from_date_time"].iloc[0] == pd.Timestamp("2023-01-01", tz="UTC")


def test_software_statements_and_details(reader: FakeReader) -> None:
    frames = read_tables(reader, ["software_statements", "organisation_details", "authority_claim_authorisations"])
    ss = frames["software_statements"].set_index("software_statement_id")
    assert ss.loc["ss-a1", "version"] == "40"
    assert ss.loc["ss-a1", "created_at"] == pd.Timestamp("2023-05-01 13:00", tz="UTC")
    assert ss.loc["ss-b1", "organisation_id"] == "org-b"
    details = frames["organisation_details"].set_index("organisation_id")
    assert details.loc["org-b", "tnc_details"] == '{"TnCId":1}'
    assert details.loc["org-c", "flags"] == '{"Type":["x"]}'
    auth = frames["authority_claim_authorisations"]
    assert auth[
        ["organisation_id", "organisation_authority_claim_id", "authorisation_index", "member_state", "status"]
    ][:2].values.tolist() == [
        ["org-a", "org-a-claim", 0, "BR", "Inactive"],
        ["org-a", "org-a-claim", 1, "BR", "Active"],
    ]


# ---- shared fetches -----------------------------------------------------------------------------------


def test_tables_of_one_source_share_its_fetch(reader: FakeReader) -> None:
    read_tables(
        reader,
        ["api_resources", "authorisation_servers", "api_discovery_endpoints", "authorisation_server_certifications"],
    )
    assert reader.calls == Counter(
        {
            "/organisations": 1,
            "/organisations/org-a/authorisationservers": 1,
            "/organisations/org-b/authorisationservers": 1,
            "/organisations/org-c/authorisationservers": 1,
        }
    )
    assert reader.fan_outs == 1


def test_certificates_reuse_the_software_statement_fetch(reader: FakeReader) -> None:
    read_tables(reader, ["software_statements", "software_statement_certificates", "organisations"])
    assert reader.calls["/organisations"] == 1
    assert reader.calls["/organisations/org-a/softwarestatements"] == 1
    assert reader.calls["/organisations/org-a/softwarestatements/ss-a1/certificates"] == 1
    assert sum(reader.calls.values()) == 1 + 3 + 3
    assert reader.fan_outs == 2  # per organisation, then per software statement


def test_a_table_asked_twice_is_read_once(reader: FakeReader) -> None:
    frames = read_tables(reader, ["authorities", "authorities"])
    assert list(frames) == ["authorities"]
    assert reader.calls == Counter({"/references/authorities": 1})


# ---- filters ------------------------------------------------------------------------------------------

PER_ORGANISATION = [t for t in PUBLIC_TABLE_NAMES if t not in REFERENCE_TABLES]


@pytest.mark.parametrize("table", PER_ORGANISATION)
def test_no_organisations_means_no_requests_and_empty_typed_tables(reader: FakeReader, table: str) -> None:
    frame = read_table(reader, table, TableFilters(organisation_ids=[], participants_url=PARTICIPANTS_URL))
    assert frame.empty
    assert list(frame.columns) == TABLES[table].column_names
    assert {c: str(t) for c, t in frame.dtypes.items()} == TABLES[table].dtypes
    assert reader.calls == Counter()
    assert reader.fan_outs == 0


def test_reference_tables_ignore_organisation_ids(reader: FakeReader) -> None:
    assert len(read_table(reader, "authorities", TableFilters(organisation_ids=[]))) == 2


def test_organisation_ids_restrict_the_fan_out_without_listing_organisations(reader: FakeReader) -> None:
    frames = read_tables(reader, ["authorisation_servers", "contacts"], TableFilters(organisation_ids=["org-b"]))
    assert frames["authorisation_servers"]["authorisation_server_id"].tolist() == ["as-b1"]
    assert frames["contacts"]["organisation_id"].tolist() == ["org-b"]
    assert reader.calls == Counter({"/organisations/org-b/authorisationservers": 1, "/organisations/org-b/contacts": 1})


def test_organisation_ids_filter_listed_tables(reader: FakeReader) -> None:
    frames = read_tables(
        reader,
        ["organisations", "clients", "participants_authorisation_servers"],
        TableFilters(organisation_ids=("org-a", "org-c"), participants_url=PARTICIPANTS_URL),
    )
    assert frames["organisations"]["organisation_id"].tolist() == ["org-a", "org-c"]
    assert frames["clients"]["organisation_id"].tolist() == ["org-a"]
    assert frames["participants_authorisation_servers"]["authorisation_server_id"].tolist() == ["as-a1"]


def test_status_restricts_organisations_and_their_fan_outs(reader: FakeReader) -> None:
    frames = read_tables(reader, ["organisations", "software_statements"], TableFilters(status="active"))
    assert frames["organisations"]["organisation_id"].tolist() == ["org-a", "org-c"]
    assert frames["software_statements"]["software_statement_id"].tolist() == ["ss-a1", "ss-a2"]
    assert "/organisations/org-b/softwarestatements" not in reader.calls
    assert reader.calls["/organisations"] == 1


def test_status_and_organisation_ids_together(reader: FakeReader) -> None:
    servers = read_table(
        reader, "authorisation_servers", TableFilters(status="Active", organisation_ids=["org-b", "org-c"])
    )
    assert servers.empty
    assert list(servers.columns) == TABLES["authorisation_servers"].column_names
    assert reader.calls == Counter({"/organisations": 1, "/organisations/org-c/authorisationservers": 1})


def test_status_filters_reference_and_participant_rows(reader: FakeReader) -> None:
    assert read_table(reader, "authorities", TableFilters(status="Inactive"))["authority_id"].tolist() == ["old"]
    parts = read_tables(
        reader,
        ["participants_organisations", "participants_api_resources"],
        TableFilters(status="Withdrawn", participants_url=PARTICIPANTS_URL),
    )
    assert parts["participants_organisations"]["organisation_id"].tolist() == ["org-b"]
    assert parts["participants_api_resources"]["api_resource_id"].tolist() == ["as-b1-r0"]


def test_page_size_reaches_paged_endpoints(reader: FakeReader) -> None:
    read_tables(reader, ["contacts", "authority_domain_claims"], TableFilters(page_size=500))
    assert reader.page_sizes == {500}


# ---- clients ------------------------------------------------------------------------------------------


def test_clients_table(reader: FakeReader) -> None:
    clients = read_table(reader, "clients").set_index("client_id")
    first = clients.loc["https://rp.directory.example/openid_relying_party/1"]
    assert first["software_version"] == "1.5"
    assert first["redirect_uris"] == '["https://ss-a1.example/cb"]'
    assert first["grant_types"] == '["client_credentials"]'
    assert first["last_updated"] == pd.Timestamp("2024-02-01 12:00", tz="UTC")
    assert json.loads(first["extra"]) == {"require_pushed_authorization_requests": True}
    assert "never-kept" not in clients.to_csv()
    assert clients.loc["c-2", "last_updated"] == pd.Timestamp("2024-02-01", tz="UTC")
    assert reader.params["/clients"] == {}


@pytest.mark.parametrize(
    ("start", "sent"),
    [
        (datetime(2024, 2, 1, 12, 30), "2024-02-01T12:30:00Z"),
        (datetime(2024, 2, 1, 9, 30, tzinfo=timezone(timedelta(hours=-3))), "2024-02-01T12:30:00Z"),
        (datetime(2024, 2, 1, 12, 30, tzinfo=UTC), "2024-02-01T12:30:00Z"),
        (date(2024, 2, 1), "2024-02-01T00:00:00Z"),
        ("2024-02-01T00:00:00+01:00", "2024-02-01T00:00:00+01:00"),
    ],
)
def test_clients_incremental_window(reader: FakeReader, start: Any, sent: str) -> None:
    read_table(reader, "clients", TableFilters(start_date=start, end_date=date(2024, 3, 1), status="Active"))
    assert reader.params["/clients"] == {"startDate": sent, "endDate": "2024-03-01T00:00:00Z", "status": "Active"}


def test_clients_status_is_also_applied_locally(reader: FakeReader) -> None:
    assert read_table(reader, "clients", TableFilters(status="inactive"))["client_id"].tolist() == ["c-2"]


def test_bad_start_date() -> None:
    with pytest.raises(ConfigurationError, match="start_date must be a datetime"):
        read_table(FakeReader(), "clients", TableFilters(start_date=12345))  # type: ignore[arg-type]


# ---- participants -------------------------------------------------------------------------------------


def test_participants_use_the_public_url_only(reader: FakeReader) -> None:
    frames = read_tables(reader, list(PARTICIPANT_TABLES), TableFilters(participants_url=PARTICIPANTS_URL))
    assert reader.calls == Counter({PARTICIPANTS_URL: 1})
    orgs = frames["participants_organisations"]
    assert orgs["tag"].tolist() == ["Api Provider"] * 3
    servers = frames["participants_authorisation_servers"]
    assert servers[["organisation_id", "authorisation_server_id"]].values.tolist() == [
        ["org-a", "as-a1"],
        ["org-b", "as-b1"],
    ]


def test_participants_need_a_url(reader: FakeReader) -> None:
    with pytest.raises(ConfigurationError, match="participants_url"):
        read_table(reader, "participants_organisations")
    assert reader.calls == Counter()


# ---- errors -------------------------------------------------------------------------------------------


def test_unknown_table_suggests_a_close_name(reader: FakeReader) -> None:
    with pytest.raises(ConfigurationError) as info:
        read_table(reader, "api_resource")
    message = str(info.value)
    assert "unknown table 'api_resource'" in message
    assert "Did you mean 'api_resources'?" in message
    assert all(t in message for t in PUBLIC_TABLE_NAMES)
    assert reader.calls == Counter()


def test_unknown_table_among_valid_ones_makes_no_request(reader: FakeReader) -> None:
    with pytest.raises(ConfigurationError, match="zzz"):
        read_tables(reader, ["organisations", "zzz"])
    assert reader.calls == Counter()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"organisation_ids": "org-a"}, "organisation_ids must be a list"),
        ({"status": 1}, "status must be text"),
        ({"page_size": 0}, "page_size must be a whole number from 1 to 50000"),
        ({"page_size": 50_001}, "page_size must be a whole number from 1 to 50000"),
        ({"page_size": "100"}, "page_size must be a whole number from 1 to 50000"),
    ],
)
def test_bad_filters(reader: FakeReader, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        read_table(reader, "organisations", TableFilters.from_mapping(kwargs))
    assert not reader.calls


def test_tables_must_be_a_list(reader: FakeReader) -> None:
    with pytest.raises(ConfigurationError, match="list of table names"):
        read_tables(reader, "organisations")


@pytest.mark.parametrize(
    ("endpoint", "body", "table", "message"),
    [
        (
            "/organisations/org-a/authorisationservers",
            {"content": []},
            "authorisation_servers",
            "GET /organisations/org-a/authorisationservers: expected a JSON array of objects, got an object",
        ),
        (
            "/organisations/org-a/authorisationservers",
            [{"AuthorisationServerId": "x", "ApiResources": "none"}],
            "api_resources",
            "expected ApiResources to be an array, got a string",
        ),
        ("/organisations", [["org-a"]], "organisations", "/organisations page 0: expected a JSON array of objects"),
        (
            "/organisations/org-a",
            {"Organisation": {}},
            "organisation_details",
            "expected an object with an 'OrgDetails'",
        ),
        (
            PARTICIPANTS_URL,
            {"data": []},
            "participants_organisations",
            f"GET {PARTICIPANTS_URL}: expected a JSON array",
        ),
    ],
)
def test_wrong_shapes_name_the_endpoint(endpoint: str, body: Any, table: str, message: str) -> None:
    routes = directory()
    routes[endpoint] = body
    with pytest.raises(ResponseFormatError, match=message.replace("(", r"\(").replace("?", r"\?")):
        read_table(FakeReader(routes), table, TableFilters(participants_url=PARTICIPANTS_URL))


# ---- repeated or missing records: a typed error, never a silent drop ------------------------------------


@pytest.mark.parametrize(
    ("tables", "status"),
    [
        (["organisations"], None),
        (["organisations"], "Active"),  # the repeated record is filtered out: the lost one may not be
        (["authorisation_servers"], "Active"),  # the organisation list is only read to fan out
    ],
)
def test_a_record_repeated_in_a_paged_read_is_an_error(tables: list[str], status: str | None) -> None:
    # A page shift: org-b sent twice, org-c lost, the count still 3. Before the fix: a silent drop.
    routes = directory()
    routes["/organisations"] = [ORGANISATIONS[0], ORGANISATIONS[1], ORGANISATIONS[1]]
    reader = FakeReader(routes)

    with pytest.raises(DataIntegrityError) as caught:
        read_tables(reader, tables, TableFilters(status=status))

    assert caught.value.table == "organisations"
    assert caught.value.examples == ["organisation_id='org-b'"]
    assert str(caught.value).startswith("GET /organisations (paged): table organisations: 2 rows share their key")
    assert not [call for call in reader.calls if call.startswith("/organisations/")]  # no fan-out was made


def test_a_record_without_its_key_in_a_paged_read_is_an_error() -> None:
    routes = directory()
    routes["/clients"] = [*routes["/clients"], {"client_name": "no id", "status": "Active"}]
    with pytest.raises(DataIntegrityError, match=r"GET /clients \(paged\): table clients: 1 record"):
        read_table(FakeReader(routes), "clients", TableFilters(status="Inactive"))


def test_a_software_statement_under_two_organisations_is_an_error() -> None:
    routes = directory()
    routes["/organisations/org-b/softwarestatements"] = [_statement("org-b", "ss-a1")]
    with pytest.raises(DataIntegrityError, match="software_statements: 2 rows share their key") as caught:
        read_table(FakeReader(routes), "software_statement_certificates")
    assert caught.value.key == ("software_statement_id",)


def test_api_errors_propagate() -> None:
    routes = directory()
    del routes["/organisations/org-b/contacts"]
    with pytest.raises(ApiError) as info:
        read_table(FakeReader(routes), "contacts")
    assert info.value.status == 404


# ---- a table is a declaration ------------------------------------------------------------------------


def test_a_new_per_organisation_table_is_one_declaration(reader: FakeReader, monkeypatch: pytest.MonkeyPatch) -> None:
    # An endpoint the catalogue does not know, declared here and nowhere else.
    widgets = TableSchema(
        "widgets",
        "One row per widget",
        (Column("OrganisationId", name="organisation_id", inherited=True), Column("WidgetId"), Column("Size")),
        key=("widget_id",),
        parent="organisations",
        parent_key=("organisation_id",),
        source=Source("/organisations/{OrganisationId}/widgets", over="organisations", paged=True),
    )
    monkeypatch.setitem(TABLES, "widgets", widgets)
    reader.routes["/organisations/org-a/widgets"] = [{"WidgetId": "w1", "Size": 3}]
    reader.routes["/organisations/org-c/widgets"] = [{"WidgetId": "w2", "Colour": "red"}]

    frame = read_table(reader, "widgets", TableFilters(status="Active", page_size=7))

    assert frame[["organisation_id", "widget_id", "size"]].astype(object).values.tolist() == [
        ["org-a", "w1", "3"],
        ["org-c", "w2", pd.NA],
    ]
    assert json.loads(frame["extra"].iloc[1]) == {"Colour": "red"}
    assert reader.calls == Counter(
        {"/organisations": 1, "/organisations/org-a/widgets": 1, "/organisations/org-c/widgets": 1}
    )
    assert reader.page_sizes == {7}
    assert endpoints_of("widgets") == (
        "GET /organisations (paged; only when the organisations are not given by organisation_ids)",
        "GET /organisations/{OrganisationId}/widgets (paged) per organisation",
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (Source("/things/{ThingId}"), "has placeholders but no 'over' table"),
        (Source("/organisations/{OrganisationId}/x/{ThingId}", over="organisations"), "do not supply every"),
        (Source("/organisations/x", over="organisations"), "do not supply every"),
        (Source("/x/{AuthorisationServerId}", over="unknown"), "do not supply every"),
        (Source("/x/{AuthorisationServerId}", over="api_resources"), "do not supply every"),  # a child: no rows
        (
            Source("/organisations/{OrganisationId}/x", over="organisations"),
            r"no inherited column for \['organisation_id'\]",
        ),
    ],
)
def test_a_source_whose_calls_cannot_be_filled_is_refused(
    source: Source, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = TableSchema("broken", "A table", (Column("Id"),), key=("id",), source=source)
    monkeypatch.setitem(TABLES, "broken", broken)
    with pytest.raises(ValueError, match=message):
        schema._check()


def test_a_table_no_source_reaches_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TABLES, "orphan", TableSchema("orphan", "A table", (Column("Id"),), key=("id",)))
    with pytest.raises(ValueError, match=r"tables without a source: \['orphan'\]"):
        schema._check()


def test_source_of() -> None:
    assert source_of("api_discovery_endpoints") == "authorisation_servers"
    assert source_of("participants_org_domain_role_claim_authorisations") == "participants_organisations"
    assert source_of("software_statement_certificates") == "software_statement_certificates"


# ---- docs ---------------------------------------------------------------------------------------------


def test_tables_doc_is_generated_from_the_declarations() -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "gen_tables_doc.py"
    spec = importlib.util.spec_from_file_location("gen_tables_doc", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.render()
    assert module.DOC.read_text(encoding="utf-8") == text, "run: python scripts/gen_tables_doc.py"
    for table in PUBLIC_TABLE_NAMES:
        assert f"### `{table}`" in text


# ---- the filters type ---------------------------------------------------------------------------------


def test_filters_take_any_iterable_of_ids_once_each_in_order() -> None:
    filters = TableFilters(organisation_ids=pd.Series(["org-b", "org-a", "org-b"]))
    assert filters.organisation_ids == ("org-b", "org-a")
    assert filters.merged(status="Active") == TableFilters(organisation_ids=("org-b", "org-a"), status="Active")


def test_an_unknown_filter_name_suggests_the_closest(reader: FakeReader) -> None:
    with pytest.raises(ConfigurationError, match=r"Unknown filter\(s\) \['statuss'\] \(did you mean 'status'\?\)"):
        TableFilters.from_mapping({"statuss": "Active"})


def test_an_empty_status_is_no_filter(reader: FakeReader) -> None:
    # A template that renders nothing: every record, as without the filter (not an empty table).
    frames = read_tables(reader, ["organisations", "clients"], TableFilters(status=""))
    assert len(frames["organisations"]) == 3
    assert len(frames["clients"]) == 2
    assert reader.params["/clients"] == {}


def test_filters_may_be_given_as_a_mapping(reader: FakeReader) -> None:
    frame = read_table(reader, "organisations", {"organisation_ids": ["org-c"]})
    assert frame["organisation_id"].tolist() == ["org-c"]
    with pytest.raises(ConfigurationError, match="Unknown filter"):
        read_table(reader, "organisations", {"organisation_id": ["org-c"]})


def test_a_paging_error_in_a_table_read_names_the_absolute_url() -> None:
    routes = directory()
    routes["/organisations"] = {"content": ORGANISATIONS, "totalPages": 5, "totalSize": 3}
    with pytest.raises(PaginationError) as caught:
        read_table(FakeReader(routes), "organisations")
    assert caught.value.url == "https://matls-api.directory.example/organisations"
