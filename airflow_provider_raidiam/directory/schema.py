"""Table schemas of the Directory catalogue: columns, pandas dtypes, keys and nesting.

Every table is declared once here; :mod:`airflow_provider_raidiam.directory.flatten` builds any table from
these declarations alone, and ``docs/tables.md`` is generated from them (``scripts/gen_tables_doc.py``).

Conventions (they are part of the provider's public interface):

* Column names are the snake_case form of the API's field names (``AuthorisationServerId`` ->
  ``authorisation_server_id``, ``OpenIDDiscoveryDocument`` -> ``open_id_discovery_document``); the
  ``/clients`` fields are already snake_case and keep their names.
* Every table has the same columns, in the same order and with the same dtypes, whatever the data; an
  empty table still has them. Dtypes are pandas nullable dtypes: ``string`` (IDs included),
  ``boolean``, ``datetime64[ns, UTC]``, and ``Int64`` for ``*_index`` columns (the position of a record
  without an ID in its parent's list).
* Versions (``ApiVersion``, ``Version``, ``ProfileVersion``, ``software_version``) are text: a JSON string is
  kept as sent, a JSON number is written without a trailing ``.0`` (``1`` and ``1.0`` -> ``"1"``,
  ``1.1`` -> ``"1.1"``).
* Dates are parsed into UTC: ISO 8601 (``2020-12-18T17:53:49.832Z``, ``2021-01-07 16:17:25.696``, with
  or without an offset; no offset means UTC) and then ``dd/mm/yyyy``. Empty text and null give ``NaT``.
* Lists and objects (``Tags``, ``RedirectUri``, ``x5c``, ``ApiMetadata``...) are JSON text
  (``'["a","b"]'``); an empty list is ``'[]'``, a missing one ``<NA>``.
* ``extra`` (last column of every table) is a JSON object text holding the fields of the record that have
  no column (fields the API adds later), plus the original value of any field that could not be
  converted to its column's type (an unparseable date, a parent ID that contradicts the parent record).
  It is ``<NA>`` when there is nothing to keep. Secret fields (:data:`DROPPED_FIELDS`) are never kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import Enum

__all__ = [
    "DROPPED_FIELDS",
    "EXTRA_COLUMN",
    "PARTICIPANTS_LIST",
    "TABLES",
    "Column",
    "Kind",
    "Source",
    "TableSchema",
    "descendants",
    "snake_case",
]


class Kind(Enum):
    """How a JSON value becomes a cell; the value is the pandas dtype of the column."""

    STRING = "string"
    """Text. Numbers are written without ``.0`` noise, booleans as ``true``/``false``, objects as JSON."""
    BOOLEAN = "boolean"
    """``true``/``false`` (also the strings ``"true"``/``"false"``, any case)."""
    DATETIME = "datetime64[ns, UTC]"
    """A timestamp in UTC, parsed from ISO 8601 or ``dd/mm/yyyy``."""
    JSON = "json"
    """A list or object kept as compact JSON text (dtype ``string``)."""
    POSITION = "Int64"
    """Not from a field: the 0-based position of the record in its parent's list (for records without IDs)."""

    @property
    def dtype(self) -> str:
        """The pandas dtype of a column of this kind."""
        return "string" if self is Kind.JSON else self.value


EXTRA_COLUMN = "extra"
"""Name of the column holding unknown fields as JSON object text."""

DROPPED_FIELDS = frozenset({"ClientSecret", "client_secret", "RegistrationAccessToken"})
"""Fields never written anywhere (not even ``extra``): they hold secrets."""

_SNAKE_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_SNAKE_2 = re.compile(r"([a-z0-9])([A-Z])")


def snake_case(name: str) -> str:
    """``AuthorisationServerId`` -> ``authorisation_server_id``; ``SupportsDCR`` -> ``supports_dcr``."""
    return _SNAKE_2.sub(r"\1_\2", _SNAKE_1.sub(r"\1_\2", name)).lower()


@dataclass(frozen=True)
class Column:
    """One column of a table.

    :param source: the JSON field the value comes from (``None``: only from the parent record).
    :param kind: how the value is converted.
    :param name: column name; defaults to ``snake_case(source)``.
    :param inherited: the value comes from the parent record (or, at the top level, from the request
        path), and the record's own ``source`` field is used only when there is no parent value.
    """

    source: str | None
    kind: Kind = Kind.STRING
    name: str = ""
    inherited: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            if self.source is None:
                raise ValueError("a column without a source needs a name")
            object.__setattr__(self, "name", snake_case(self.source))

    @property
    def dtype(self) -> str:
        """The pandas dtype of the column."""
        return self.kind.dtype


ORGANISATIONS = "organisations"
PARTICIPANTS_LIST = "{participants_url}"
"""The ``path`` of the public participants list: the ``participants_url`` filter."""
_PLACEHOLDER = re.compile(r"{(\w+)}")


@dataclass(frozen=True)
class Source:
    """Where a root table's records come from: a declaration that one generic reader follows.

    :param path: the endpoint, relative to ``api_base_url``. Its ``{Placeholders}`` are filled from each
        row of ``over`` (the row's inherited key of that name, else its own field), one call per row; each
        record then inherits those values as columns (``{OrganisationId}`` -> ``organisation_id``).
        :data:`PARTICIPANTS_LIST` is the public participants list (no token, no certificate).
    :param over: the root table whose rows ``path`` is called for; ``None``: a single call.
    :param paged: Raidiam page-number paging (a plain JSON array is accepted too); each call's records
        must then carry their table's key, once each, before any filter.
    :param record_member: the body is one object; the record is its member of this name, with the body's
        other members beside it (``/organisations/{OrganisationId}`` -> ``OrgDetails``).
    :param status_field: the record field the ``status`` filter compares (single-call sources only: a
        fan-out follows the rows of ``over``, already filtered).
    :param organisation_field: the record field the ``organisation_ids`` filter compares; ``None``: the
        filter does not apply (reference data).
    :param sends_filters: the endpoint filters itself: ``start_date``, ``end_date`` and ``status`` are
        sent as ``startDate``, ``endDate`` and ``status``.
    """

    path: str
    over: str | None = None
    paged: bool = False
    record_member: str | None = None
    status_field: str = "Status"
    organisation_field: str | None = "OrganisationId"
    sends_filters: bool = False

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The record fields named in ``path`` (none for the participants list)."""
        return () if self.public else tuple(_PLACEHOLDER.findall(self.path))

    @property
    def public(self) -> bool:
        """Read from the public participants list, without token or certificate."""
        return self.path == PARTICIPANTS_LIST


@dataclass(frozen=True)
class TableSchema:
    """A table: ordered columns (``extra`` is appended), key, parent and nested child tables.

    :param key: columns that identify a row: every row has them all, and no two rows share them.
    :param parent: the table whose rows contain this table's records, if any.
    :param parent_key: columns of this table that hold the parent row's key.
    :param children: ``(json_field, child_table)`` pairs: the child's records are the list in that field.
    :param source: where the records come from, for a *root* table; a child table has none (its records
        are in its parent's).
    """

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    parent: str | None = None
    parent_key: tuple[str, ...] = ()
    children: tuple[tuple[str, str], ...] = ()
    source: Source | None = None
    all_columns: tuple[Column, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        cols = (*self.columns, Column(None, Kind.JSON, name=EXTRA_COLUMN))
        object.__setattr__(self, "all_columns", cols)
        names = [c.name for c in cols]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate column names")
        missing = set(self.key) - set(names) | set(self.parent_key) - set(names)
        if missing:
            raise ValueError(f"{self.name}: key columns {sorted(missing)} are not columns")

    @property
    def column_names(self) -> list[str]:
        """Column names in order, ``extra`` last."""
        return [c.name for c in self.all_columns]

    @property
    def dtypes(self) -> dict[str, str]:
        """``{column: pandas dtype}`` in column order."""
        return {c.name: c.dtype for c in self.all_columns}

    @property
    def sources(self) -> frozenset[str]:
        """JSON fields this table reads (its children's list fields included)."""
        return frozenset(c.source for c in self.columns if c.source) | {f for f, _ in self.children}


S, B, D, J = Kind.STRING, Kind.BOOLEAN, Kind.DATETIME, Kind.JSON


def _cols(spec: str, kind: Kind = S) -> tuple[Column, ...]:
    """Columns of one kind from a space-separated list of JSON field names."""
    return tuple(Column(s, kind) for s in spec.split())


def _inherit(*names: str) -> tuple[Column, ...]:
    """Parent key columns: ``organisation_id`` is filled from the parent, else from ``OrganisationId``."""
    return tuple(Column("".join(part.capitalize() for part in n.split("_")), name=n, inherited=True) for n in names)


# ---- column groups shared by several tables --------------------------------------------------------

_ORGANISATION = (
    Column("OrganisationId"),
    *_cols(
        "OrganisationName Status LegalEntityName CountryOfRegistration CompanyRegister RegistrationNumber "
        "RegistrationId RegisteredName AddressLine1 AddressLine2 City Postcode Country "
        "ParentOrganisationReference Size"
    ),
    Column("RequiresParticipantTermsAndConditionsSigning", B),
    Column("CreatedOn", D),
    Column("Tags", J),
    Column("Flags", J),
)

_AUTHORISATION_SERVER = (
    *_inherit("organisation_id"),
    Column("AuthorisationServerId"),
    *_cols(
        "ParentAuthorisationServerId CustomerFriendlyName CustomerFriendlyDescription CustomerFriendlyLogoUri "
        "DeveloperPortalUri TermsOfServiceUri OpenIDDiscoveryDocument Issuer PayloadSigningCertLocationUri "
        "AutoRegistrationNotificationWebhook NotificationWebhook NotificationWebhookStatus "
        "SupersededByAuthorisationServerId FederationEndpoint FederationId"
    ),
    *_cols("AutoRegistrationSupported SupportsCiba SupportsDCR SupportsRedirect", B),
    *_cols("NotificationWebhookAddedDate DeprecatedDate RetirementDate CreatedAt", D),
)

_API_RESOURCE = (
    *_inherit("organisation_id", "authorisation_server_id"),
    *_cols("ApiResourceId ApiFamilyType ApiVersion Status CertificationStatus ApiCertificationUri"),
    *_cols("CertificationStartDate CertificationExpirationDate", D),
    Column("FamilyComplete", B),
    Column("ApiMetadata", J),
)

_API_DISCOVERY_ENDPOINT = (
    *_inherit("organisation_id", "authorisation_server_id", "api_resource_id"),
    *_cols("ApiDiscoveryId ApiEndpoint"),
)

_CERTIFICATION = (
    Column("CertificationId"),
    *_cols("Status ProfileType ProfileVariant ProfileVersion CertificationURI"),
    *_cols("CertificationStartDate CertificationExpirationDate", D),
)

_CERTIFICATE = (
    *_cols("kid kty use keyType Status ClientName x5t x5thashS256 x5u e n JwkPath OrgJwkPath SignedCertPath"),
    *_cols("ValidFromDateTime ExpiryDateTime", D),
    *_cols("x5c SoftwareStatementIds", J),
)

_DOMAIN_CLAIM = _cols(
    "OrganisationAuthorityDomainClaimId AuthorisationDomainName AuthorityId AuthorityName RegistrationId Status"
)

_ROLE_CLAIM = (
    *_cols("OrganisationAuthorityClaimId AuthorityId AuthorisationDomain Role RegistrationId Status"),
    Column("UniqueTechnicalIdenifier", J, name="unique_technical_identifier"),
)

# Nested `Authorisations` have no ID (several may share a MemberState): they are keyed by position.
_AUTHORISATION_INDEX = Column(None, Kind.POSITION, name="authorisation_index")
_ROLE_CLAIM_AUTHORISATION = (_AUTHORISATION_INDEX, *_cols("OrganisationAuthorisationId MemberState Status"))
# The participants list may carry no claim IDs (the 2021 data has none), and an organisation may hold
# several claims with the same domain, role and registration: its claims are keyed by position too.
_CLAIM_INDEX = Column(None, Kind.POSITION, name="claim_index")

_AS_CHILDREN = (
    ("ApiResources", "api_resources"),
    ("AuthorisationServerCertifications", "authorisation_server_certifications"),
)

_PER_ORGANISATION = "/organisations/{OrganisationId}"
_AS_TREE = "Read from `GET /organisations/{OrganisationId}/authorisationservers`"
_SS_TREE = "Read from `GET /organisations/{OrganisationId}/softwarestatements`"


def _participants(t: TableSchema) -> TableSchema:
    """The ``participants_`` twin of a table: same columns, read from the public participants list."""
    return replace(
        t,
        name="participants_" + t.name,
        description=t.description.split(". ")[0] + ". Read from the public participants list",
        parent="participants_" + t.parent if t.parent else None,
        children=tuple((f, "participants_" + c) for f, c in t.children),
        source=None,  # read inside the participants list, not from the Directory API
    )


_T = [
    TableSchema(
        "organisations",
        "One row per organisation. Read from the paged `GET /organisations`",
        _ORGANISATION,
        key=("organisation_id",),
        source=Source("/organisations", paged=True),
    ),
    TableSchema(
        "organisation_details",
        "One row per organisation, from its detail record `OrgDetails` plus the terms-and-conditions "
        "details. Read from `GET /organisations/{OrganisationId}` (one call per organisation)",
        (*_inherit("organisation_id"), *_ORGANISATION[1:], Column("TncDetails", J)),
        key=("organisation_id",),
        source=Source(_PER_ORGANISATION, over=ORGANISATIONS, record_member="OrgDetails"),
    ),
    TableSchema(
        "authorisation_servers",
        "One row per authorisation server. " + _AS_TREE,
        _AUTHORISATION_SERVER,
        key=("authorisation_server_id",),
        parent="organisations",
        parent_key=("organisation_id",),
        children=_AS_CHILDREN,
        source=Source(_PER_ORGANISATION + "/authorisationservers", over=ORGANISATIONS),
    ),
    TableSchema(
        "api_resources",
        "One row per API resource (API family and version) of an authorisation server. " + _AS_TREE,
        _API_RESOURCE,
        key=("api_resource_id",),
        parent="authorisation_servers",
        parent_key=("authorisation_server_id",),
        children=(("ApiDiscoveryEndpoints", "api_discovery_endpoints"),),
    ),
    TableSchema(
        "api_discovery_endpoints",
        "One row per discovery endpoint (URL) of an API resource. " + _AS_TREE,
        _API_DISCOVERY_ENDPOINT,
        key=("api_discovery_id",),
        parent="api_resources",
        parent_key=("api_resource_id",),
    ),
    TableSchema(
        "authorisation_server_certifications",
        "One row per certification of an authorisation server. " + _AS_TREE,
        (*_inherit("organisation_id", "authorisation_server_id"), *_CERTIFICATION),
        key=("authorisation_server_id", "certification_id"),
        parent="authorisation_servers",
        parent_key=("authorisation_server_id",),
    ),
    TableSchema(
        "software_statements",
        "One row per software statement. " + _SS_TREE,
        (
            *_inherit("organisation_id"),
            Column("SoftwareStatementId"),
            *_cols(
                "ClientId ClientName Description Environment Mode Status Version OnBehalfOf ClientUri LogoUri "
                "PolicyUri TermsOfServiceUri HomepageUri NotificationWebhook NotificationWebhookStatus "
                "AdditionalSoftwareMetadata FederationEndpoint IdTokenSignedResponseAlgorithm"
            ),
            *_cols("Locked RtsClientCreated", B),
            Column("CreatedAt", D),
            *_cols("RedirectUri ApiWebhookUri Flags", J),
        ),
        key=("software_statement_id",),
        parent="organisations",
        parent_key=("organisation_id",),
        children=(("SoftwareStatementCertifications", "software_statement_certifications"),),
        source=Source(_PER_ORGANISATION + "/softwarestatements", over=ORGANISATIONS),
    ),
    TableSchema(
        "software_statement_certifications",
        "One row per certification of a software statement. " + _SS_TREE,
        (*_inherit("organisation_id", "software_statement_id"), *_CERTIFICATION),
        key=("software_statement_id", "certification_id"),
        parent="software_statements",
        parent_key=("software_statement_id",),
    ),
    TableSchema(
        "software_statement_certificates",
        "One row per certificate or key of a software statement. Read from "
        "`GET /organisations/{OrganisationId}/softwarestatements/{SoftwareStatementId}/certificates` "
        "(one call per software statement, after listing the software statements)",
        (*_inherit("organisation_id", "software_statement_id"), *_CERTIFICATE),
        key=("software_statement_id", "kid"),
        parent="software_statements",
        parent_key=("software_statement_id",),
        source=Source(
            _PER_ORGANISATION + "/softwarestatements/{SoftwareStatementId}/certificates", over="software_statements"
        ),
    ),
    TableSchema(
        "organisation_certificates",
        "One row per organisation-level certificate or key. "
        "Read from `GET /organisations/{OrganisationId}/certificates`",
        (*_inherit("organisation_id"), *_CERTIFICATE),
        key=("organisation_id", "kid"),
        parent="organisations",
        parent_key=("organisation_id",),
        source=Source(_PER_ORGANISATION + "/certificates", over=ORGANISATIONS),
    ),
    TableSchema(
        "contacts",
        "One row per organisation contact. Read from the paged `GET /organisations/{OrganisationId}/contacts`",
        (
            *_inherit("organisation_id"),
            *_cols(
                "ContactId ContactType FirstName LastName Department EmailAddress PhoneNumber AddressLine1 "
                "AddressLine2 City Postcode Country AdditionalInformation PgpPublicKey"
            ),
        ),
        key=("contact_id",),
        parent="organisations",
        parent_key=("organisation_id",),
        source=Source(_PER_ORGANISATION + "/contacts", over=ORGANISATIONS, paged=True),
    ),
    TableSchema(
        "authority_claims",
        "One row per authority (role) claim of an organisation. "
        "Read from `GET /organisations/{OrganisationId}/authorityclaims`",
        (*_inherit("organisation_id"), *_ROLE_CLAIM),
        key=("organisation_authority_claim_id",),
        parent="organisations",
        parent_key=("organisation_id",),
        children=(("Authorisations", "authority_claim_authorisations"),),
        source=Source(_PER_ORGANISATION + "/authorityclaims", over=ORGANISATIONS),
    ),
    TableSchema(
        "authority_claim_authorisations",
        "One row per member-state authorisation of an authority claim (its nested `Authorisations`). "
        "Read from `GET /organisations/{OrganisationId}/authorityclaims`",
        (*_inherit("organisation_id", "organisation_authority_claim_id"), *_ROLE_CLAIM_AUTHORISATION),
        key=("organisation_authority_claim_id", "authorisation_index"),
        parent="authority_claims",
        parent_key=("organisation_authority_claim_id",),
    ),
    TableSchema(
        "authority_domain_claims",
        "One row per authority domain claim of an organisation. "
        "Read from the paged `GET /organisations/{OrganisationId}/authoritydomainclaims`",
        (*_inherit("organisation_id"), *_DOMAIN_CLAIM),
        key=("organisation_authority_domain_claim_id",),
        parent="organisations",
        parent_key=("organisation_id",),
        source=Source(_PER_ORGANISATION + "/authoritydomainclaims", over=ORGANISATIONS, paged=True),
    ),
    TableSchema(
        "authorities",
        "Reference data: one row per authority. Read from `GET /references/authorities`",
        _cols("AuthorityId AuthorityName AuthorityCode AuthorityUri AuthorityCountry Status"),
        key=("authority_id",),
        source=Source("/references/authorities", paged=True, organisation_field=None),
    ),
    TableSchema(
        "authorisation_domains",
        "Reference data: one row per authorisation domain. Read from the paged `GET /references/authorisationdomains`",
        _cols("AuthorisationDomainName AuthorisationDomainDescription AuthorisationDomainRegion Status"),
        key=("authorisation_domain_name",),
        source=Source("/references/authorisationdomains", paged=True, organisation_field=None),
    ),
    TableSchema(
        "authorisation_domain_roles",
        "Reference data: one row per role of an authorisation domain. "
        "Read from the paged `GET /references/authorisationdomainroles`",
        _cols("AuthorisationDomainName AuthorisationDomainRoleName AuthorisationDomainRoleDescription Status"),
        key=("authorisation_domain_name", "authorisation_domain_role_name"),
        source=Source("/references/authorisationdomainroles", paged=True, organisation_field=None),
    ),
    TableSchema(
        "clients",
        "One row per OAuth client known to the Directory (RFC 7591 snake_case fields). Read from the paged "
        "`GET /clients` (`startDate`/`endDate` filter on last modification)",
        (
            *_cols(
                "client_id client_name client_description organisation_id organisation_name software_id "
                "software_version status token_endpoint_auth_method tls_client_auth_subject_dn scope jwks_uri "
                "logo_uri client_uri policy_uri tos_uri sector_identifier_uri"
            ),
            Column("last_updated", D),
            *_cols("redirect_uris grant_types response_types roles claims", J),
        ),
        key=("client_id",),
        source=Source(
            "/clients", paged=True, status_field="status", organisation_field="organisation_id", sends_filters=True
        ),
    ),
]

_PARTICIPANTS_ORGANISATIONS = TableSchema(
    "participants_organisations",
    "One row per organisation of the public participants list",
    (*_ORGANISATION, Column("Tag")),
    key=("organisation_id",),
    source=Source(PARTICIPANTS_LIST),
    children=(
        ("AuthorisationServers", "participants_authorisation_servers"),
        ("OrgDomainClaims", "participants_org_domain_claims"),
        ("OrgDomainRoleClaims", "participants_org_domain_role_claims"),
    ),
)

_by_name = {t.name: t for t in _T}
_T += [
    _PARTICIPANTS_ORGANISATIONS,
    _participants(_by_name["authorisation_servers"]),
    _participants(_by_name["api_resources"]),
    _participants(_by_name["api_discovery_endpoints"]),
    _participants(_by_name["authorisation_server_certifications"]),
    TableSchema(
        "participants_org_domain_claims",
        "One row per authority domain claim (`OrgDomainClaims`) of a participant",
        (*_inherit("organisation_id"), _CLAIM_INDEX, *_DOMAIN_CLAIM),
        key=("organisation_id", "claim_index"),
        parent="participants_organisations",
        parent_key=("organisation_id",),
    ),
    TableSchema(
        "participants_org_domain_role_claims",
        "One row per authority role claim (`OrgDomainRoleClaims`) of a participant",
        (*_inherit("organisation_id"), _CLAIM_INDEX, *_ROLE_CLAIM),
        key=("organisation_id", "claim_index"),
        parent="participants_organisations",
        parent_key=("organisation_id",),
        children=(("Authorisations", "participants_org_domain_role_claim_authorisations"),),
    ),
    TableSchema(
        "participants_org_domain_role_claim_authorisations",
        "One row per member-state authorisation (`Authorisations`) of a participant's role claim",
        (*_inherit("organisation_id"), replace(_CLAIM_INDEX, inherited=True), *_ROLE_CLAIM_AUTHORISATION),
        key=("organisation_id", "claim_index", "authorisation_index"),
        parent="participants_org_domain_role_claims",
        parent_key=("organisation_id", "claim_index"),
    ),
]

TABLES: dict[str, TableSchema] = {t.name: t for t in _T}
"""Every table, by name, in catalogue order."""


def _check() -> None:
    """The declarations fit together; raises ``ValueError`` at import otherwise.

    Children exist, name their parent, inherit only columns their parent can pass down, and have no
    source of their own; every table is reached from a root table's source; a fan-out's placeholders are
    fields the rows it goes over supply.
    """
    for t in TABLES.values():
        for _, child_name in t.children:
            child = TABLES[child_name]
            if child.parent != t.name or child.source is not None:
                raise ValueError(f"{child_name}: a child of {t.name} names it as parent and has no source")
            passed = {c.name for c in t.columns if c.inherited} | set(t.key)
            wanted = {c.name for c in child.columns if c.inherited}
            if not wanted <= passed:
                raise ValueError(f"{child_name} inherits {sorted(wanted - passed)} that {t.name} lacks")
        if t.source is not None:
            _check_source(t.name, t.source)
    reached = {name for t in TABLES.values() if t.source is not None for name in descendants(t.name)}
    if reached != set(TABLES):
        raise ValueError(f"tables without a source: {sorted(set(TABLES) - reached)}")


def _check_source(name: str, source: Source) -> None:
    over = source.over
    if over is None:
        if source.placeholders:
            raise ValueError(f"{name}: {source.path} has placeholders but no 'over' table to fill them")
        return
    parent = TABLES.get(over)
    supplied = set() if parent is None or parent.source is None else set(parent.source.placeholders) | parent.sources
    if not source.placeholders or not set(source.placeholders) <= supplied:
        raise ValueError(f"{name}: the rows of {over!r} do not supply every placeholder of {source.path}")
    if over == ORGANISATIONS and source.placeholders != ("OrganisationId",):
        raise ValueError(f"{name}: a fan-out over organisations fills {{OrganisationId}} only")
    inherited = {c.name for c in TABLES[name].columns if c.inherited}
    missing = sorted({snake_case(p) for p in source.placeholders} - inherited)
    if missing:
        raise ValueError(f"{name}: no inherited column for {missing}, the values its calls are made for")


def descendants(table: str) -> list[str]:
    """``table`` and every table nested below it, parents before children."""
    return [table, *(name for _, child in TABLES[table].children for name in descendants(child))]


_check()
