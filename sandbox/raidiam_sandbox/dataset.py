"""Deterministic, seeded stand-in data for the Raidiam Connect Directory emulator.

``build_dataset(seed, organisations)`` draws everything from one ``random.Random(seed)`` (no clock,
no ``uuid4``, no ``os.urandom``), so the same arguments always give byte-identical JSON. Field names
follow the Raidiam Connect OpenAPI 1.3.7 (PascalCase, British spelling) and, for ``/participants``,
the participants OpenAPI 1.1.0; ``/clients`` records use snake_case RFC 7591 names.

Deliberate real-world quirks: ``null`` values, empty strings (``RegistrationId: ""``,
``ParentOrganisationReference: ""``), ``ApiVersion`` as a number (``1``) or a string (``"1.0.0"``),
``CreatedOn`` as ``"2021-01-07 16:17:25.696"`` or ``"2020-12-18T17:53:49.832Z"``, ``CreatedAt`` in
ISO 8601 with an offset, ``CertificationStartDate`` as ``dd/mm/yyyy``, accented Portuguese text,
JSON inside strings (``AdditionalSoftwareMetadata``, sometimes ``ApiMetadata``), a few ``ORG<uuid>``
organisation ids, organisations with no authorisation servers and servers with no API resources.

Certificates (``CertificateOrKey``) carry real DER X.509 structures in ``x5c`` whose validity matches
``ValidFromDateTime``/``ExpiryDateTime``, and ``x5t``/``x5thashS256`` are the SHA-1/SHA-256
thumbprints of that DER. The signatures are random bytes (not signed by any CA) and ``n`` is a random
odd 2048-bit number: parse them, never verify them. Expiry dates are spread around the fixed
``REFERENCE_DATE`` (some already expired, some expiring within 30 days of it).

``Dataset.participants()`` returns the public ``/participants`` array: ``Active`` organisations with at
least one operational authorisation server (an AS whose ``RetirementDate`` is before
``REFERENCE_DATE`` is left out), with ``Tag`` (one comma-joined string) instead of ``Tags``.

``Dataset.ground_truth()`` maps each key below to ``{"count": n, "ids": [sorted ids]}``, plus ``meta``:

==========================================  ===========================================================
key                                         ids
==========================================  ===========================================================
organisations                               ``OrganisationId`` (``/organisations``)
active_organisations                        ``OrganisationId`` with ``Status == "Active"`` (hideInactive)
authorisation_servers                       ``AuthorisationServerId``
api_resources                               ``ApiResourceId``
api_discovery_endpoints                     ``ApiDiscoveryId``
authorisation_server_certifications         ``CertificationId``
software_statements                         ``SoftwareStatementId``
software_statement_certifications           ``CertificationId``
software_statement_certificates             ``kid``
organisation_certificates                   ``kid``
certificates_expired                        ``kid`` (both kinds) with expiry < REFERENCE_DATE
certificates_expiring_within_30_days        ``kid`` with REFERENCE_DATE <= expiry < REFERENCE_DATE + 30 d
contacts                                    ``ContactId``
org_domain_claims                           ``OrganisationAuthorityDomainClaimId``
org_domain_role_claims                      ``OrganisationAuthorityClaimId``
org_domain_role_claim_authorisations        ``<OrganisationAuthorityClaimId>#<index in Authorisations>``
clients                                     ``client_id`` (``/clients``)
authorities                                 ``AuthorityId``
authorisation_domains                       ``AuthorisationDomainName``
authorisation_domain_roles                  ``AuthorisationDomainRoleName``
participants                                ``OrganisationId`` in ``/participants``
participant_authorisation_servers           ``AuthorisationServerId`` nested in ``/participants``
participant_api_resources                   ``ApiResourceId`` nested in ``/participants``
participant_api_discovery_endpoints         ``ApiDiscoveryId`` nested in ``/participants``
participant_authorisation_server_certifications  ``CertificationId`` nested in ``/participants``
participant_org_domain_claims               ``OrganisationAuthorityDomainClaimId`` in ``/participants``
participant_org_domain_role_claims          ``OrganisationAuthorityClaimId`` in ``/participants``
==========================================  ===========================================================

``meta`` is ``{"seed", "organisations_requested", "reference_date", "mutations"}``.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import random
from bisect import bisect_right, insort
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple, TypeVar

Json = dict[str, Any]
T = TypeVar("T")

REFERENCE_DATE = datetime(2025, 6, 30, 12, 0, 0, tzinfo=UTC)
"""The fixed "now" of the data set: certificate expiries and ``last_updated`` are spread around it."""

_REFERENCE_DAY = REFERENCE_DATE.strftime("%Y-%m-%d")
KEYSTORE = "https://keystore.sandbox.invalid"
SS_CERT_TYPES = ("rtstransport", "rtssigning", "sigkey", "enckey", "brcac", "brcac_ext", "brcac_2022")
ORG_CERT_TYPES = ("qwac", "qseal", "rtswac", "rtsseal", "brseal", "brseal_ext", "rtstransport_rs")

_PREFIXES = (
    "Banco",
    "Cooperativa de Crédito",
    "Sociedade de Crédito Direto",
    "Financeira",
    "Instituição de Pagamento",
    "Corretora de Câmbio",
    "Seguradora",
    "Caixa Econômica",
)
_PLACES = (
    "São João",
    "Paraná",
    "Ceará",
    "Vale do Itajaí",
    "Conceição",
    "Guaíba",
    "Araçatuba",
    "Maranhão",
    "Piauí",
    "Goiânia",
    "Brasília",
    "Florianópolis",
    "Ribeirão Preto",
    "Três Rios",
    "Jundiaí",
    "Ipê Amarelo",
    "Açaí",
    "Pinhão",
    "Iguaçu",
    "Itaúna",
)
_SUFFIXES = ("S.A.", "Ltda.", "S/A", "")
_CITIES = (
    ("São Paulo, SP", "01310-100"),
    ("Porto Alegre, RS", "90010-040"),
    ("Belém, PA", "66010-000"),
    ("Curitiba, PR", "80020-000"),
    ("Goiânia, GO", "74003-010"),
    ("Maceió, AL", "57020-000"),
    ("Florianópolis, SC", "88010-400"),
    ("Brasília, DF", "70040-010"),
)
_STREETS = ("Rua Capitão Montanha", "Avenida Paulista", "Rua da Conceição", "Praça São João", "Rua Açores")
_FIRST = ("José", "João", "Maria", "Conceição", "Luís", "Inês", "André", "Fábio", "Márcia", "Antônio")
_LAST = ("Gonçalves", "Araújo", "Simões", "Magalhães", "Brandão", "Conceição", "Pereira", "Damião")
_FAMILIES = (
    "accounts",
    "channels",
    "consents",
    "credit-cards-accounts",
    "customers-business",
    "customers-personal",
    "discovery",
    "financings",
    "invoice-financings",
    "loans",
    "payments-pix",
    "products-services",
    "resources",
    "unarranged-accounts-overdraft",
    "opendata-investments_funds",
    "products-services_personal-loans",
    "admin-metrics",
    "energy",
)
_LEAVES = ("resource", "accounts", "consents", "branches", "products")
_CERT_STATUSES = ("Awaiting Certification", "Certified", "Deprecated", "Rejected", "Self-Certified")
_PROFILES = {
    "Redirect": (
        "FAPI Adv. OP w/ MTLS",
        "FAPI Adv. OP w/ MTLS, PAR",
        "FAPI Adv. OP w/ Private Key",
        "FAPI Adv. OP w/ Private Key, PAR",
    ),
    "CIBA": ("FAPI-CIBA OP poll w/ MTLS", "FAPI-CIBA OP Ping w/ Private Key"),
    "DCR": ("DCR Signed payload - JWT", "DCR Unsigned payload- JSON"),
}
_AUTHORITIES = (
    ("BCB", "Banco Central do Brasil", "https://www.bcb.gov.br", "BR", "Active"),
    ("SUSEP", "Superintendência de Seguros Privados", "https://www.gov.br/susep", "BR", "Active"),
    ("FCA", "Financial Conduct Authority", "https://www.fca.org.uk", "GB", "Inactive"),
)
_DOMAINS = (
    ("Open Banking", "BR", "Open Finance Brasil — dados e pagamentos", "BCB", ("DADOS", "PAGTO", "CONTA", "CCORR")),
    ("Open Insurance", "BR", "Open Insurance Brasil — seguros", "SUSEP", ("SEGUR", "INTER")),
    ("UK Open Banking", "GB", "UK Open Banking", "FCA", ("ASPSP", "AISP", "PISP")),
)
_ROLE_TEXT = {
    "DADOS": "Instituição transmissora ou receptora de dados",
    "PAGTO": "Iniciador de transação de pagamento",
    "CONTA": "Instituição detentora de conta",
    "CCORR": "Correspondente de crédito",
    "SEGUR": "Sociedade seguradora",
    "INTER": "Intermediário de seguros",
    "ASPSP": "Account servicing payment service provider",
    "AISP": "Account information service provider",
    "PISP": "Payment initiation service provider",
}


_UUID_MASK = ~(0xF000 << 64 | 0xC000 << 48)
_UUID_BITS = 0x4000 << 64 | 0x8000 << 48


def _uuid(rng: random.Random) -> str:
    """A version-4 UUID string drawn from ``rng`` (same text as ``uuid.UUID(int=..., version=4)``)."""
    h = f"{rng.getrandbits(128) & _UUID_MASK | _UUID_BITS:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _iso_z(dt: datetime) -> str:
    """``2020-12-18T17:53:49.832Z`` (``dt`` must be UTC)."""
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
        f".{dt.microsecond // 1000:03d}Z"
    )


def _ddmmyyyy(dt: datetime) -> str:
    return f"{dt.day:02d}/{dt.month:02d}/{dt.year:04d}"


def _past(rng: _Rng, max_days: int, min_days: int = 0) -> datetime:
    seconds = rng.between(min_days * 86400, max_days * 86400)
    return REFERENCE_DATE - timedelta(seconds=seconds, milliseconds=rng.between(0, 999))


_CUMULATIVE: dict[tuple[int, ...], tuple[list[int], int]] = {}


class _Rng(random.Random):
    """``random.Random`` with cheaper (float-based) ``pick``/``between`` for bulk generation."""

    def pick(self, seq: Sequence[T]) -> T:
        return seq[int(self.random() * len(seq))]

    def between(self, a: int, b: int) -> int:
        """Integer in ``[a, b]``."""
        return a + int(self.random() * (b - a + 1))


def _pick_count(rng: random.Random, weights: tuple[int, ...]) -> int:
    """Index drawn with the given integer weights (0 -> weights[0] ...)."""
    cached = _CUMULATIVE.get(weights)
    if cached is None:
        cum = [sum(weights[: i + 1]) for i in range(len(weights))]
        cached = _CUMULATIVE[weights] = (cum, cum[-1])
    return bisect_right(cached[0], rng.random() * cached[1])


# --- a minimal DER writer for the certificates in x5c ------------------------------------------

_SHA256_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")
_RSA_ENC = bytes.fromhex("300d06092a864886f70d0101010500")
_OID = {
    "C": bytes.fromhex("550406"),
    "O": bytes.fromhex("55040a"),
    "OU": bytes.fromhex("55040b"),
    "CN": bytes.fromhex("550403"),
    "UID": bytes.fromhex("0992268993f22c640101"),
}


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(ln))) + ln + body


def _der_int(v: int) -> bytes:
    return _tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))


def _der_name(parts: list[tuple[str, str]]) -> bytes:
    rdns = b""
    for key, value in parts:
        tag = 0x13 if key == "C" else 0x0C
        rdns += _tlv(0x31, _tlv(0x30, _tlv(0x06, _OID[key]) + _tlv(tag, value.encode("utf-8"))))
    return _tlv(0x30, rdns)


def _der_time(dt: datetime) -> bytes:
    hms = f"{dt.month:02d}{dt.day:02d}{dt.hour:02d}{dt.minute:02d}{dt.second:02d}Z"
    if dt.year < 2050:
        return _tlv(0x17, f"{dt.year % 100:02d}{hms}".encode("ascii"))
    return _tlv(0x18, f"{dt.year:04d}{hms}".encode("ascii"))


_ISSUER = _der_name([("C", "BR"), ("O", "Raidiam Sandbox Emulator"), ("CN", "Sandbox Emulator Issuing CA - G1")])


class _DerInputs(NamedTuple):
    subject: list[tuple[str, str]]
    not_before: datetime
    not_after: datetime
    modulus: int
    serial: int
    signature: bytes


def _certificate_der(inp: _DerInputs) -> bytes:
    spki = _tlv(0x30, _RSA_ENC + _tlv(0x03, b"\x00" + _tlv(0x30, _der_int(inp.modulus) + _der_int(65537))))
    tbs = _tlv(
        0x30,
        b"\xa0\x03\x02\x01\x02"
        + _der_int(inp.serial)
        + _SHA256_RSA
        + _ISSUER
        + _tlv(0x30, _der_time(inp.not_before) + _der_time(inp.not_after))
        + _der_name(inp.subject)
        + spki,
    )
    return _tlv(0x30, tbs + _SHA256_RSA + _tlv(0x03, b"\x00" + inp.signature))


def _complete_certificate(cert: Json, inp: _DerInputs) -> None:
    der = _certificate_der(inp)
    cert["n"] = _b64url(inp.modulus.to_bytes(256, "big"))
    cert["x5c"] = [base64.b64encode(der).decode("ascii")]
    cert["x5t"] = _b64url(hashlib.sha1(der, usedforsecurity=False).digest())
    cert["x5thashS256"] = _b64url(hashlib.sha256(der).digest())


# --- the data set ------------------------------------------------------------------------------


@dataclass
class Dataset:
    """All Directory records; per-organisation collections are keyed by ``OrganisationId``.

    ``organisations`` is kept sorted by ``OrganisationId``. Every record is plain JSON-able data in the
    exact shape the API returns it (nested ``ApiResources`` etc. included).
    """

    seed: int
    organisations_requested: int
    reference_date: datetime = REFERENCE_DATE
    organisations: list[Json] = field(default_factory=list)
    tnc: dict[str, Json] = field(default_factory=dict)
    authorisation_servers: dict[str, list[Json]] = field(default_factory=dict)
    software_statements: dict[str, list[Json]] = field(default_factory=dict)
    software_statement_certificates: dict[str, list[Json]] = field(default_factory=dict)
    """Keyed by ``SoftwareStatementId``."""
    organisation_certificates: dict[str, list[Json]] = field(default_factory=dict)
    contacts: dict[str, list[Json]] = field(default_factory=dict)
    org_domain_claims: dict[str, list[Json]] = field(default_factory=dict)
    org_domain_role_claims: dict[str, list[Json]] = field(default_factory=dict)
    authorities: list[Json] = field(default_factory=list)
    authorisation_domains: list[Json] = field(default_factory=list)
    authorisation_domain_roles: list[Json] = field(default_factory=list)
    clients: list[Json] = field(default_factory=list)
    mutations: int = 0
    _der_inputs: dict[str, _DerInputs] = field(default_factory=dict, repr=False)

    def certificates_of_software_statement(self, software_statement_id: str) -> list[Json]:
        """The software statement's ``CertificateOrKey`` records (use this, not the raw dict).

        ``n``, ``x5c``, ``x5t`` and ``x5thashS256`` are filled in on first access (build speed).
        Raises ``KeyError`` for an unknown id.
        """
        return self._completed(self.software_statement_certificates[software_statement_id])

    def certificates_of_organisation(self, organisation_id: str) -> list[Json]:
        """The organisation's own ``CertificateOrKey`` records, completed like the method above."""
        return self._completed(self.organisation_certificates[organisation_id])

    def _completed(self, certs: list[Json]) -> list[Json]:
        for cert in certs:
            if cert["x5c"] is None:
                _complete_certificate(cert, self._der_inputs[cert["kid"]])
        return certs

    def add_organisation(self) -> str:
        """Add one new ``Active`` organisation with sub-resources (deterministic per mutation count).

        It always has at least one authorisation server with an API resource, so it also appears in
        ``/participants``. Returns its ``OrganisationId``.
        """
        self.mutations += 1
        rng = _Rng(self.seed * 1_000_003 + self.mutations)
        org_id = _Generator(self, rng).organisation(self.organisations_requested + self.mutations, "mutation")
        return org_id

    def participants(self) -> list[Json]:
        """The public ``/participants`` array (participants OpenAPI 1.1.0 shape)."""
        out: list[Json] = []
        for org in self.organisations:
            if org["Status"] != "Active":
                continue
            servers = [
                _participant_as(s)
                for s in self.authorisation_servers[org["OrganisationId"]]
                if s["RetirementDate"] is None or s["RetirementDate"] >= _REFERENCE_DAY
            ]
            if not servers:
                continue
            record = {k: org.get(k) for k in _PARTICIPANT_ORG_FIELDS}
            record["Tag"] = ",".join(org["Tags"]) if org["Tags"] else None
            record["AuthorisationServers"] = servers
            record["OrgDomainClaims"] = [dict(c) for c in self.org_domain_claims[org["OrganisationId"]]]
            record["OrgDomainRoleClaims"] = [
                {k: c[k] for k in _PARTICIPANT_ROLE_CLAIM_FIELDS}
                for c in self.org_domain_role_claims[org["OrganisationId"]]
            ]
            out.append(record)
        return out

    def ground_truth(self) -> Json:
        """Sorted ids and counts per entity (keys documented in the module docstring)."""
        ids: dict[str, list[str]] = {k: [] for k in _GT_KEYS}
        for org in self.organisations:
            oid = org["OrganisationId"]
            ids["organisations"].append(oid)
            if org["Status"] == "Active":
                ids["active_organisations"].append(oid)
            for s in self.authorisation_servers[oid]:
                ids["authorisation_servers"].append(s["AuthorisationServerId"])
                ids["authorisation_server_certifications"] += [
                    c["CertificationId"] for c in s["AuthorisationServerCertifications"]
                ]
                for r in s["ApiResources"]:
                    ids["api_resources"].append(r["ApiResourceId"])
                    ids["api_discovery_endpoints"] += [e["ApiDiscoveryId"] for e in r["ApiDiscoveryEndpoints"]]
            for ss in self.software_statements[oid]:
                ids["software_statements"].append(ss["SoftwareStatementId"])
                ids["software_statement_certifications"] += [
                    c["CertificationId"] for c in ss["SoftwareStatementCertifications"]
                ]
                for cert in self.software_statement_certificates[ss["SoftwareStatementId"]]:
                    ids["software_statement_certificates"].append(cert["kid"])
                    self._expiry(cert, ids)
            for cert in self.organisation_certificates[oid]:
                ids["organisation_certificates"].append(cert["kid"])
                self._expiry(cert, ids)
            ids["contacts"] += [c["ContactId"] for c in self.contacts[oid]]
            ids["org_domain_claims"] += [c["OrganisationAuthorityDomainClaimId"] for c in self.org_domain_claims[oid]]
            for rc in self.org_domain_role_claims[oid]:
                ids["org_domain_role_claims"].append(rc["OrganisationAuthorityClaimId"])
                ids["org_domain_role_claim_authorisations"] += [
                    f"{rc['OrganisationAuthorityClaimId']}#{i}" for i in range(len(rc["Authorisations"]))
                ]
        ids["clients"] = [c["client_id"] for c in self.clients]
        ids["authorities"] = [a["AuthorityId"] for a in self.authorities]
        ids["authorisation_domains"] = [d["AuthorisationDomainName"] for d in self.authorisation_domains]
        ids["authorisation_domain_roles"] = [r["AuthorisationDomainRoleName"] for r in self.authorisation_domain_roles]
        for p in self.participants():
            ids["participants"].append(p["OrganisationId"])
            ids["participant_org_domain_claims"] += [
                c["OrganisationAuthorityDomainClaimId"] for c in p["OrgDomainClaims"]
            ]
            ids["participant_org_domain_role_claims"] += [
                c["OrganisationAuthorityClaimId"] for c in p["OrgDomainRoleClaims"]
            ]
            for s in p["AuthorisationServers"]:
                ids["participant_authorisation_servers"].append(s["AuthorisationServerId"])
                ids["participant_authorisation_server_certifications"] += [
                    c["CertificationId"] for c in s["AuthorisationServerCertifications"]
                ]
                for r in s["ApiResources"]:
                    ids["participant_api_resources"].append(r["ApiResourceId"])
                    ids["participant_api_discovery_endpoints"] += [
                        e["ApiDiscoveryId"] for e in r["ApiDiscoveryEndpoints"]
                    ]
        truth: Json = {k: {"count": len(v), "ids": sorted(v)} for k, v in ids.items()}
        truth["meta"] = {
            "seed": self.seed,
            "organisations_requested": self.organisations_requested,
            "reference_date": _iso_z(self.reference_date),
            "mutations": self.mutations,
        }
        return truth

    def _expiry(self, cert: Json, ids: dict[str, list[str]]) -> None:
        expiry = cert["ExpiryDateTime"]  # same-format UTC strings compare chronologically
        if expiry < _iso_z(self.reference_date):
            ids["certificates_expired"].append(cert["kid"])
        elif expiry < _iso_z(self.reference_date + timedelta(days=30)):
            ids["certificates_expiring_within_30_days"].append(cert["kid"])


_GT_KEYS = (
    "organisations",
    "active_organisations",
    "authorisation_servers",
    "api_resources",
    "api_discovery_endpoints",
    "authorisation_server_certifications",
    "software_statements",
    "software_statement_certifications",
    "software_statement_certificates",
    "organisation_certificates",
    "certificates_expired",
    "certificates_expiring_within_30_days",
    "contacts",
    "org_domain_claims",
    "org_domain_role_claims",
    "org_domain_role_claim_authorisations",
    "clients",
    "authorities",
    "authorisation_domains",
    "authorisation_domain_roles",
    "participants",
    "participant_authorisation_servers",
    "participant_api_resources",
    "participant_api_discovery_endpoints",
    "participant_authorisation_server_certifications",
    "participant_org_domain_claims",
    "participant_org_domain_role_claims",
)
_PARTICIPANT_ORG_FIELDS = (
    "OrganisationId",
    "Status",
    "OrganisationName",
    "CreatedOn",
    "LegalEntityName",
    "CountryOfRegistration",
    "CompanyRegister",
    "Size",
    "RegistrationNumber",
    "RegistrationId",
    "RegisteredName",
    "AddressLine1",
    "AddressLine2",
    "City",
    "Postcode",
    "Country",
    "ParentOrganisationReference",
)
_PARTICIPANT_AS_FIELDS = (
    "AuthorisationServerId",
    "OrganisationId",
    "AutoRegistrationSupported",
    "SupportsCiba",
    "SupportsDCR",
    "CustomerFriendlyDescription",
    "CustomerFriendlyLogoUri",
    "CustomerFriendlyName",
    "DeveloperPortalUri",
    "TermsOfServiceUri",
    "OpenIDDiscoveryDocument",
    "Issuer",
    "PayloadSigningCertLocationUri",
    "ParentAuthorisationServerId",
)
_PARTICIPANT_RESOURCE_FIELDS = (
    "ApiResourceId",
    "ApiVersion",
    "FamilyComplete",
    "ApiCertificationUri",
    "CertificationStatus",
    "CertificationStartDate",
    "CertificationExpirationDate",
    "ApiFamilyType",
)
_PARTICIPANT_CERTIFICATION_FIELDS = (
    "CertificationStartDate",
    "CertificationExpirationDate",
    "CertificationId",
    "AuthorisationServerId",
    "Status",
    "ProfileVariant",
    "ProfileVersion",
    "CertificationURI",
)
_PARTICIPANT_ROLE_CLAIM_FIELDS = (
    "OrganisationId",
    "OrganisationAuthorityClaimId",
    "AuthorityId",
    "Status",
    "AuthorisationDomain",
    "Role",
    "Authorisations",
    "RegistrationId",
)


def _participant_as(server: Json) -> Json:
    record = {k: server[k] for k in _PARTICIPANT_AS_FIELDS}
    record["ApiResources"] = [
        {
            **{k: r[k] for k in _PARTICIPANT_RESOURCE_FIELDS},
            "ApiDiscoveryEndpoints": [dict(e) for e in r["ApiDiscoveryEndpoints"]],
        }
        for r in server["ApiResources"]
    ]
    record["AuthorisationServerCertifications"] = [
        {k: c[k] for k in _PARTICIPANT_CERTIFICATION_FIELDS} for c in server["AuthorisationServerCertifications"]
    ]
    return record


class _Generator:
    """Draws one organisation and everything under it from ``rng`` into ``ds``."""

    def __init__(self, ds: Dataset, rng: _Rng) -> None:
        self.ds = ds
        self.rng = rng
        self.authority_ids = {a["AuthorityCode"]: a["AuthorityId"] for a in ds.authorities}

    def organisation(self, index: int, profile: str) -> str:
        """Generate organisation number ``index``; ``profile`` forces quirks for the first few."""
        rng, ds = self.rng, self.ds
        org_id = _uuid(rng)
        if profile == "orgid" or (profile == "random" and rng.random() < 0.02):
            org_id = "ORG" + org_id
        status = ("Active", "Pending", "Withdrawn")[_pick_count(rng, (80, 12, 8))]
        if profile in ("sao-joao", "orgid", "mutation"):
            status = "Active"
        elif profile == "pending":
            status = "Pending"
        place = rng.pick(_PLACES)
        prefix = rng.pick(_PREFIXES)
        suffix = rng.pick(_SUFFIXES)
        name = f"{prefix} {place} {suffix}".strip()
        if profile == "sao-joao":
            name = "Cooperativa de Crédito São João"
        slug = f"{place.split()[0].lower().encode('ascii', 'ignore').decode()}{index}"
        created = _past(rng, 1800, 30)
        if profile == "sao-joao" or (profile == "random" and rng.random() < 0.5):
            created_on: str | None = _iso_z(created).replace("T", " ")[:-1]
        else:
            created_on = _iso_z(created)
        if profile == "random" and rng.random() < 0.02:
            created_on = None
        reg_number = f"{rng.randrange(10**13, 10**14)}"
        reg_id_roll = rng.random()
        registration_id: str | None = (
            "" if profile == "orgid" or reg_id_roll < 0.2 else None if reg_id_roll < 0.3 else reg_number[:8]
        )
        parent_roll = rng.random()
        parent: str | None = (
            "" if profile == "orgid" or parent_roll < 0.6 else None if parent_roll < 0.8 else f"Grupo {place}"
        )
        city, postcode = rng.pick(_CITIES)
        country = "GB" if rng.random() < 0.03 else "BR"
        tags = rng.pick(([], [], ["Api Provider"], ["Api Consumer"], ["Api Provider", "Api Consumer"]))
        flag_roll = rng.random()
        flags: Json = (
            {}
            if flag_roll < 0.5
            else {"OrganisationType": [rng.pick(("Bank", "FinTech", "Payment Service Provider"))]}
            if flag_roll < 0.85
            else {"OrganisationType": ["Bank"], "ComplianceLevel": ["Open Banking Standard Certified"]}
        )
        requires_tnc = rng.random() < 0.3
        org: Json = {
            "OrganisationId": org_id,
            "Status": status,
            "OrganisationName": name,
            "CreatedOn": created_on,
            "LegalEntityName": name.upper(),
            "CountryOfRegistration": country,
            "CompanyRegister": "Cadastro Nacional da Pessoa Jurídica" if country == "BR" else "Companies House",
            "Tags": tags,
            "Flags": flags,
            "Size": rng.pick(("T1", "T2", "T3", None, "")),
            "RegistrationNumber": reg_number,
            "RegistrationId": registration_id,
            "RegisteredName": f"{name.upper()} {rng.pick(('S.A.', 'LTDA'))}".strip(),
            "AddressLine1": f"{rng.pick(_STREETS)} {rng.between(1, 2000)}, ",
            "AddressLine2": rng.pick(("Centro Histórico", "Sala 1201", "", None)),
            "City": city,
            "Postcode": postcode,
            "Country": country,
            "ParentOrganisationReference": parent,
            "RequiresParticipantTermsAndConditionsSigning": requires_tnc,
        }
        insort(ds.organisations, org, key=lambda o: o["OrganisationId"])
        ds.tnc[org_id] = {
            "TnCSigned": (not requires_tnc) or rng.random() < 0.7,
            "TnCUpdated": rng.random() < 0.1,
            "TnCsToBeSigned": [],
        }

        n_as = _pick_count(rng, (30, 45, 17, 8))
        if profile in ("sao-joao", "orgid", "mutation"):
            n_as = max(n_as, 1)
        elif profile == "pending":
            n_as = 0
        servers: list[Json] = []
        for k in range(n_as):
            servers.append(self.authorisation_server(org_id, slug, k, servers, force_resources=profile != "random"))
        if profile == "sao-joao":
            servers[0]["ApiResources"][0]["ApiVersion"] = 1
        ds.authorisation_servers[org_id] = servers

        ds.contacts[org_id] = [self.contact(org_id) for _ in range(_pick_count(rng, (5, 35, 30, 20, 10)))]
        ds.org_domain_claims[org_id] = [self.domain_claim(reg_number) for _ in range(_pick_count(rng, (15, 65, 20)))]
        ds.org_domain_role_claims[org_id] = [
            self.role_claim(org_id, reg_number) for _ in range(_pick_count(rng, (15, 30, 30, 15, 10)))
        ]
        n_ss = _pick_count(rng, (25, 40, 25, 10))
        if profile != "random":
            n_ss = max(n_ss, 1)
        ds.software_statements[org_id] = [
            self.software_statement(org, slug, k, expiry_profile=profile == "sao-joao" and k == 0) for k in range(n_ss)
        ]
        ds.organisation_certificates[org_id] = [
            self.certificate(org, None, rng.pick(("rtsseal", "rtswac", "brseal", "qwac", "qseal")), slug, None)
            for _ in range(_pick_count(rng, (30, 50, 15, 5)))
        ]
        return org_id

    def authorisation_server(self, org_id: str, slug: str, k: int, siblings: list[Json], force_resources: bool) -> Json:
        rng = self.rng
        as_id = _uuid(rng)
        host = f"https://auth{k or ''}.{slug}.com.br"
        n_res = _pick_count(rng, (12, 20, 20, 18, 12, 10, 8))
        if force_resources:
            n_res = max(n_res, 1)
        resources = [self.api_resource(slug) for _ in range(n_res)]
        certs = []
        for _ in range(_pick_count(rng, (35, 40, 20, 5))):
            ptype = rng.pick(tuple(_PROFILES))
            start = _past(rng, 900, 10)
            certs.append(
                {
                    "CertificationId": _uuid(rng),
                    "AuthorisationServerId": as_id,
                    "Status": rng.pick(_CERT_STATUSES),
                    "ProfileType": ptype,
                    "ProfileVariant": rng.pick(_PROFILES[ptype]),
                    "ProfileVersion": rng.pick((1, 1, 2, 1.1)),
                    "CertificationURI": f"https://github.com/OpenBanking-Brasil/conformance/blob/main/submissions/{slug}/{ptype.lower()}.zip",
                    "CertificationStartDate": _ddmmyyyy(start),
                    "CertificationExpirationDate": _ddmmyyyy(start + timedelta(days=365))
                    if rng.random() < 0.7
                    else None,
                }
            )
        retired = rng.random() < 0.05
        return {
            "AuthorisationServerId": as_id,
            "OrganisationId": org_id,
            "ParentAuthorisationServerId": siblings[0]["AuthorisationServerId"]
            if siblings and rng.random() < 0.3
            else None,
            "AutoRegistrationSupported": rng.random() < 0.6,
            "AutoRegistrationNotificationWebhook": None,
            "SupportsCiba": rng.random() < 0.2,
            "SupportsDCR": rng.random() < 0.7,
            "SupportsRedirect": rng.random() < 0.9,
            "ApiResources": resources,
            "AuthorisationServerCertifications": certs,
            "CustomerFriendlyName": f"{slug.rstrip('0123456789').capitalize()} Autenticação {k + 1}",
            "CustomerFriendlyDescription": rng.pick(
                ("Servidor de autorização Open Finance", "Servidor de autenticacao Open Data", "")
            ),
            "CustomerFriendlyLogoUri": f"https://www.{slug}.com.br/logo.svg",
            "DeveloperPortalUri": f"https://developers.{slug}.com.br" if rng.random() < 0.8 else None,
            "TermsOfServiceUri": f"https://www.{slug}.com.br/termos" if rng.random() < 0.7 else None,
            "OpenIDDiscoveryDocument": f"{host}/.well-known/openid-configuration",
            "Issuer": f"{host}/",
            "PayloadSigningCertLocationUri": f"{host}/jwks",
            "NotificationWebhook": None,
            "NotificationWebhookAddedDate": None,
            "NotificationWebhookStatus": rng.pick(("Pending", "Confirmed", "Deactivated", None)),
            "DeprecatedDate": None,
            "RetirementDate": _past(rng, 200, 1).strftime("%Y-%m-%d") if retired else None,
            "SupersededByAuthorisationServerId": None,
            "CreatedAt": self._offset_ts(_past(rng, 1500, 10)),
        }

    def api_resource(self, slug: str) -> Json:
        rng = self.rng
        family = rng.pick(_FAMILIES)
        major = rng.pick((1, 1, 2, 3))
        version: int | str = major if rng.random() < 0.3 else f"{major}.{rng.between(0, 2)}.{rng.between(0, 9)}"
        endpoints = [
            {
                "ApiDiscoveryId": _uuid(rng),
                "ApiEndpoint": f"https://api.{slug}.com.br/open-banking/{family}/v{major}/{rng.pick(_LEAVES)}",
            }
            for _ in range(_pick_count(rng, (8, 70, 17, 5)))
        ]
        start = _past(rng, 900, 5)
        meta_roll = rng.random()
        api_metadata: Any = (
            {}
            if meta_roll < 0.5
            else json.dumps({"region": "BR", "product": family}, separators=(",", ":"))
            if meta_roll < 0.75
            else {"region": "BR", "sandbox": rng.random() < 0.5}
            if meta_roll < 0.9
            else None
        )
        return {
            "ApiResourceId": _uuid(rng),
            "ApiFamilyType": family,
            "ApiVersion": version,
            "ApiCertificationUri": f"https://github.com/OpenBanking-Brasil/conformance/blob/main/submissions/functional/{family}/{major}.0.0/{slug}.zip"
            if rng.random() < 0.6
            else None,
            "CertificationStatus": rng.pick(_CERT_STATUSES),
            "CertificationStartDate": _ddmmyyyy(start) if rng.random() < 0.8 else None,
            "CertificationExpirationDate": _ddmmyyyy(start + timedelta(days=365)) if rng.random() < 0.5 else None,
            "FamilyComplete": rng.random() < 0.7,
            "Status": "Active",
            "ApiMetadata": api_metadata,
            "ApiDiscoveryEndpoints": endpoints,
        }

    def software_statement(self, org: Json, slug: str, k: int, expiry_profile: bool) -> Json:
        rng, ds = self.rng, self.ds
        org_id = org["OrganisationId"]
        ss_id = _uuid(rng)
        cid_roll = rng.random()
        client_id = (
            _uuid(rng)
            if cid_roll < 0.5
            else "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", k=21))
            if cid_roll < 0.85
            else f"https://rp.directory.sandbox.invalid/openid_relying_party/{_uuid(rng)}"
        )
        client_name = f"{org['OrganisationName'][:30]} App {k + 1}"
        created = _past(rng, 1200, 5)
        meta_roll = rng.random()
        additional: str | None = (
            None
            if meta_roll < 0.4
            else ""
            if meta_roll < 0.5
            else json.dumps(
                {"brand": org["OrganisationName"][:40], "software_origin_uri": f"https://app.{slug}.com.br"},
                ensure_ascii=False,
                separators=(",", ":"),
            )
        )
        status = ("Active", "Suspended", "Inactive")[_pick_count(rng, (85, 8, 7))]
        certifications = []
        for _ in range(_pick_count(rng, (50, 35, 15))):
            start = _past(rng, 700, 5)
            certifications.append(
                {
                    "CertificationId": _uuid(rng),
                    "SoftwareStatementId": ss_id,
                    "Status": rng.pick(_CERT_STATUSES),
                    "ProfileType": "Redirect",
                    "ProfileVariant": rng.pick(_PROFILES["Redirect"]),
                    "ProfileVersion": rng.pick((1, 1.1)),
                    "CertificationURI": f"https://github.com/OpenBanking-Brasil/conformance/blob/main/submissions/rp/{slug}.zip",
                    "CertificationStartDate": _ddmmyyyy(start),
                    "CertificationExpirationDate": _ddmmyyyy(start + timedelta(days=365)),
                }
            )
        redirect = [f"https://app.{slug}.com.br/cb{i}" for i in range(_pick_count(rng, (20, 50, 20, 10)))]
        ss: Json = {
            "SoftwareStatementId": ss_id,
            "OrganisationId": org_id,
            "ClientId": client_id,
            "ClientName": client_name,
            "ClientUri": f"https://app.{slug}.com.br",
            "Description": rng.pick(("Aplicação de agregação de contas", "Iniciação de pagamentos Pix", "", None)),
            "Environment": rng.pick(("production", "sandbox", None)),
            "Locked": rng.random() < 0.6,
            "LogoUri": f"https://app.{slug}.com.br/logo.png",
            "Mode": rng.pick(("Live", "Live", "Test")),
            "NotificationWebhook": None,
            "NotificationWebhookStatus": None,
            "OnBehalfOf": None,
            "PolicyUri": f"https://app.{slug}.com.br/privacidade",
            "RedirectUri": redirect,
            "RtsClientCreated": rng.random() < 0.8,
            "SoftwareStatementCertifications": certifications,
            "Status": status,
            "TermsOfServiceUri": f"https://app.{slug}.com.br/termos",
            "Version": rng.pick((1, 1, 1.1, 2, 40)),
            "AdditionalSoftwareMetadata": additional,
            "ApiWebhookUri": [],
            "CreatedAt": self._offset_ts(created),
            "HomepageUri": f"https://www.{slug}.com.br",
            "IdTokenSignedResponseAlgorithm": "PS256",
            "Flags": [{"Name": "isTPP", "Description": "Receptor de dados", "AccessLevel": "Public"}]
            if rng.random() < 0.3
            else [],
        }
        types = ["rtstransport"]
        if rng.random() < 0.8:
            types.append("rtssigning")
        if rng.random() < 0.2:
            types.append("enckey")
        if rng.random() < 0.15:
            types.append(rng.pick(("brcac", "brcac_2022")))
        forced = ("expired", "soon") if expiry_profile else (None, None)
        ds.software_statement_certificates[ss_id] = [
            self.certificate(org, ss, t, slug, forced[i] if i < 2 else None) for i, t in enumerate(types)
        ]
        roles = sorted({c["Role"] for c in ds.org_domain_role_claims.get(org_id, [])}) or ["DADOS"]
        self.client(org, ss, roles, status)
        return ss

    def certificate(self, org: Json, ss: Json | None, ctype: str, slug: str, force: str | None) -> Json:
        rng = self.rng
        org_id = org["OrganisationId"]
        roll = rng.random()
        if force == "expired" or (force is None and roll < 0.12):
            days = -rng.between(1, 400)
        elif force == "soon" or (force is None and roll < 0.25):
            days = rng.between(0, 29)
        elif roll < 0.40:
            days = rng.between(30, 90)
        else:
            days = rng.between(91, 700)
        expiry = REFERENCE_DATE + timedelta(days=days, seconds=rng.between(0, 86399))
        valid_from = expiry - timedelta(days=rng.pick((365, 397, 730)))
        tls = ctype in ("rtstransport", "rtswac", "qwac", "brcac", "rtstransport_rs")
        cn = f"{slug}.com.br" if tls else org["OrganisationName"]
        subject = [("C", org["Country"]), ("O", org["LegalEntityName"][:64]), ("OU", org_id)]
        if ss is not None:
            subject.append(("UID", ss["SoftwareStatementId"]))
        subject.append(("CN", cn[:64]))
        kid = _b64url(rng.randbytes(32))
        # Drawn now (determinism), turned into DER only when first served (build speed).
        self.ds._der_inputs[kid] = _DerInputs(
            subject,
            valid_from,
            expiry,
            rng.getrandbits(2048) | 1 << 2047 | 1,
            rng.getrandbits(127) | 1 << 120,
            rng.randbytes(256),
        )
        base = f"{KEYSTORE}/{org_id}"
        ss_base = f"{base}/{ss['SoftwareStatementId']}" if ss is not None else base
        return {
            "OrganisationId": org_id,
            "SoftwareStatementIds": [ss["SoftwareStatementId"]] if ss is not None else [],
            "ClientName": (ss["ClientName"] if ss is not None else org["OrganisationName"])[:40],
            "Status": "Active" if rng.random() < 0.92 else "Revoked",
            "ValidFromDateTime": _iso_z(valid_from),
            "ExpiryDateTime": _iso_z(expiry),
            "e": "AQAB",
            "n": None,
            "keyType": ctype,
            "kid": kid,
            "kty": "RSA",
            "use": "tls" if tls else "enc" if ctype == "enckey" else "sig",
            "x5c": None,
            "x5t": None,
            "x5thashS256": None,
            "x5u": f"{ss_base}/{kid}.pem",
            "JwkPath": f"{ss_base}/{'transport' if tls else 'application'}.jwks",
            "OrgJwkPath": f"{base}/application.jwks",
            "SignedCertPath": f"{ss_base}/{kid}.pem",
        }

    def client(self, org: Json, ss: Json, roles: list[str], status: str) -> None:
        rng = self.rng
        auth_method = rng.pick(("private_key_jwt", "tls_client_auth"))
        grants = ["client_credentials"] if rng.random() < 0.5 else ["authorization_code", "refresh_token", "implicit"]
        client = {
            "client_id": ss["ClientId"],
            "client_name": ss["ClientName"],
            "client_description": ss["Description"],
            "redirect_uris": list(ss["RedirectUri"]),
            "grant_types": grants,
            "response_types": [] if grants == ["client_credentials"] else ["code id_token"],
            "jwks_uri": f"{KEYSTORE}/{org['OrganisationId']}/{ss['SoftwareStatementId']}/application.jwks",
            "logo_uri": ss["LogoUri"],
            "sector_identifier_uri": None if rng.random() < 0.7 else f"{ss['ClientUri']}/sector.json",
            "token_endpoint_auth_method": auth_method,
            "tls_client_auth_subject_dn": f"CN={ss['ClientUri'][8:]},OU={org['OrganisationId']}"
            if auth_method == "tls_client_auth"
            else None,
            "scope": "openid directory:software " + " ".join(r.lower() for r in roles),
            "roles": roles if status == "Active" else [],
            "status": status,
            "last_updated": _iso_z(_past(rng, 730)),
            "organisation_id": org["OrganisationId"],
            "organisation_name": org["OrganisationName"],
            "software_id": ss["SoftwareStatementId"],
            "software_version": ss["Version"],
            "claims": None,
        }
        insort(self.ds.clients, client, key=lambda c: c["client_id"])

    def contact(self, org_id: str) -> Json:
        rng = self.rng
        first, last = rng.pick(_FIRST), rng.pick(_LAST)
        city, postcode = rng.pick(_CITIES)
        local = f"{first}.{last}".lower().encode("ascii", "ignore").decode()
        return {
            "ContactId": _uuid(rng),
            "OrganisationId": org_id,
            "ContactType": rng.pick(("Business", "Technical", "Billing", "Incident", "Security")),
            "FirstName": first,
            "LastName": last,
            "Department": rng.pick(("Tecnologia", "Segurança da Informação", "Jurídico", "", None)),
            "EmailAddress": f"{local}{rng.between(1, 99)}@example.com.br",
            "PhoneNumber": f"+55 11 9{rng.between(1000, 9999)}-{rng.between(1000, 9999)}",
            "AddressLine1": f"{rng.pick(_STREETS)} {rng.between(1, 2000)}",
            "AddressLine2": rng.pick(("", None, "Andar 5")),
            "City": city,
            "Postcode": postcode,
            "Country": "BR",
            "AdditionalInformation": rng.pick(("", None, "Contato para incidentes de segurança")),
            "PgpPublicKey": None,
        }

    def domain_claim(self, reg_number: str) -> Json:
        rng = self.rng
        code, name, *_ = rng.pick(_AUTHORITIES[:2])
        domain = "Open Banking" if code == "BCB" else "Open Insurance"
        return {
            "OrganisationAuthorityDomainClaimId": _uuid(rng),
            "AuthorisationDomainName": domain,
            "AuthorityId": self.authority_ids[code],
            "AuthorityName": name,
            "RegistrationId": rng.pick(("", "", reg_number[:8], None)),
            "Status": "Active" if rng.random() < 0.9 else "Inactive",
        }

    def role_claim(self, org_id: str, reg_number: str) -> Json:
        rng = self.rng
        domain, _region, _desc, code, roles = rng.pick(_DOMAINS[:2])
        role = rng.pick(roles)
        return {
            "OrganisationAuthorityClaimId": _uuid(rng),
            "OrganisationId": org_id,
            "AuthorityId": self.authority_ids[code],
            "AuthorisationDomain": domain,
            "Role": role,
            "RegistrationId": rng.pick((f"{reg_number[:8]}-OBB-{role}", "", None)),
            "Status": "Active" if rng.random() < 0.9 else "Inactive",
            "Authorisations": [
                {"MemberState": "BR", "Status": rng.pick(("Active", "Inactive"))}
                for _ in range(_pick_count(rng, (60, 30, 10)))
            ],
            "UniqueTechnicalIdenifier": [],
        }

    def _offset_ts(self, dt: datetime) -> str:
        tz = timezone(timedelta(hours=self.rng.pick((-3, -3, 0, 1))))
        return dt.astimezone(tz).isoformat(timespec="milliseconds")


def _references(ds: Dataset, rng: _Rng) -> None:
    for code, name, uri, country, status in _AUTHORITIES:
        ds.authorities.append(
            {
                "AuthorityId": _uuid(rng),
                "AuthorityName": name,
                "AuthorityCode": code,
                "AuthorityUri": uri,
                "AuthorityCountry": country,
                "Status": status,
            }
        )
    for name, region, desc, _code, roles in _DOMAINS:
        ds.authorisation_domains.append(
            {
                "AuthorisationDomainName": name,
                "AuthorisationDomainRegion": region,
                "AuthorisationDomainDescription": desc,
                "Status": "Active" if region == "BR" else "Inactive",
            }
        )
        for role in roles:
            ds.authorisation_domain_roles.append(
                {
                    "AuthorisationDomainName": name,
                    "AuthorisationDomainRoleName": role,
                    "AuthorisationDomainRoleDescription": _ROLE_TEXT[role],
                    "Status": "Active",
                }
            )


_PROFILE_ORDER = ("sao-joao", "orgid", "pending")


def build_dataset(seed: int, organisations: int) -> Dataset:
    """Build the deterministic data set: ``organisations`` organisations drawn from ``Random(seed)``.

    The first three organisations (in generation order) are forced to show the documented quirks: an
    ``Active`` "Cooperativa de Crédito São João" with a numeric ``ApiVersion`` and one expired plus one
    soon-expiring certificate, an ``ORG<uuid>`` id with empty-string ``RegistrationId`` and
    ``ParentOrganisationReference``, and a ``Pending`` organisation with no authorisation servers.
    """
    if organisations < 0:
        raise ValueError("organisations must be >= 0")
    rng = _Rng(seed)
    ds = Dataset(seed=seed, organisations_requested=organisations)
    _references(ds, rng)
    gen = _Generator(ds, rng)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small acyclic objects: the cyclic collector only costs time here
    try:
        for i in range(organisations):
            gen.organisation(i, _PROFILE_ORDER[i] if i < len(_PROFILE_ORDER) else "random")
    finally:
        if gc_was_enabled:
            gc.enable()
    return ds
