"""The seeded Directory data set: determinism, spec field names, quirks, participants and ground truth."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import datetime
from typing import Any

import pytest
from cryptography import x509
from openapi_specs import NEWER, spec_properties

from raidiam_sandbox.dataset import REFERENCE_DATE, Dataset, build_dataset


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return build_dataset(seed=11, organisations=400)


def _all(ds: Dataset) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in ("as", "res", "ep", "asc", "ss", "ssc", "certs")}
    for org_id in ds.authorisation_servers:
        for s in ds.authorisation_servers[org_id]:
            out["as"].append(s)
            out["asc"] += s["AuthorisationServerCertifications"]
            for r in s["ApiResources"]:
                out["res"].append(r)
                out["ep"] += r["ApiDiscoveryEndpoints"]
        for ss in ds.software_statements[org_id]:
            out["ss"].append(ss)
            out["ssc"] += ss["SoftwareStatementCertifications"]
            out["certs"] += ds.certificates_of_software_statement(ss["SoftwareStatementId"])
        out["certs"] += ds.certificates_of_organisation(org_id)
    return out


def test_deterministic_per_seed() -> None:
    a = build_dataset(5, 120)
    b = build_dataset(5, 120)
    assert json.dumps(a.ground_truth()) == json.dumps(b.ground_truth())
    assert json.dumps(a.organisations) == json.dumps(b.organisations)
    assert json.dumps(a.participants()) == json.dumps(b.participants())
    ss_id = a.software_statements[a.organisations[0]["OrganisationId"]][0]["SoftwareStatementId"]
    assert a.certificates_of_software_statement(ss_id) == b.certificates_of_software_statement(ss_id)
    assert build_dataset(6, 120).ground_truth()["organisations"] != a.ground_truth()["organisations"]


def test_thousands_of_organisations() -> None:
    # No time limit: a busy machine would fail it (speed belongs in benchmarks/).
    big = build_dataset(1, 3000)
    assert len(big.organisations) == 3000


def test_ground_truth_shape(ds: Dataset) -> None:
    truth = ds.ground_truth()
    assert truth["meta"] == {
        "seed": 11,
        "organisations_requested": 400,
        "reference_date": "2025-06-30T12:00:00.000Z",
        "mutations": 0,
    }
    for key, entry in truth.items():
        if key == "meta":
            continue
        assert entry["count"] == len(entry["ids"]) == len(set(entry["ids"])), key
        assert entry["ids"] == sorted(entry["ids"]), key
    stuff = _all(ds)
    assert truth["organisations"]["count"] == 400
    assert truth["authorisation_servers"]["count"] == len(stuff["as"])
    assert truth["api_discovery_endpoints"]["count"] == len(stuff["ep"])
    assert truth["software_statement_certifications"]["count"] == len(stuff["ssc"])
    assert truth["clients"]["count"] == truth["software_statements"]["count"]
    assert truth["participants"]["count"] <= truth["active_organisations"]["count"] < 400
    assert truth["certificates_expired"]["count"] > 0
    assert truth["certificates_expiring_within_30_days"]["count"] > 0


def test_quirks_are_present(ds: Dataset) -> None:
    orgs = ds.organisations
    stuff = _all(ds)
    assert any(o["OrganisationName"] == "Cooperativa de Crédito São João" for o in orgs)
    assert any(re.fullmatch(r"ORG[0-9a-f-]{36}", o["OrganisationId"]) for o in orgs)
    assert {"Active", "Pending", "Withdrawn"} == {o["Status"] for o in orgs}
    assert any(o["RegistrationId"] == "" for o in orgs)
    assert any(o["RegistrationId"] is None for o in orgs)
    assert any(o["ParentOrganisationReference"] == "" for o in orgs)
    created = [o["CreatedOn"] for o in orgs if o["CreatedOn"]]
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", c) for c in created)
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", c) for c in created)
    assert any(not ds.authorisation_servers[o["OrganisationId"]] for o in orgs)
    assert any(not s["ApiResources"] for s in stuff["as"])
    assert any(r["ApiVersion"] == 1 for r in stuff["res"])
    assert any(isinstance(r["ApiVersion"], str) for r in stuff["res"])
    assert any(isinstance(r["ApiMetadata"], str) and json.loads(r["ApiMetadata"]) for r in stuff["res"])
    dates = [r["CertificationStartDate"] for r in stuff["res"] if r["CertificationStartDate"]]
    assert dates
    assert all(re.fullmatch(r"[0-3]\d/[01]\d/2\d{3}", d) for d in dates)
    assert all(re.fullmatch(r".+T.+\.\d{3}[+-]\d\d:\d\d", s["CreatedAt"]) for s in stuff["ss"])
    assert {1, 1.1} <= {s["Version"] for s in stuff["ss"]}
    meta = [s["AdditionalSoftwareMetadata"] for s in stuff["ss"]]
    assert None in meta
    assert "" in meta
    assert any(m and isinstance(json.loads(m), dict) for m in meta)
    assert any("ç" in o["OrganisationName"] or "ã" in o["OrganisationName"] for o in orgs)


def test_certificates_are_consistent(ds: Dataset) -> None:
    certs = _all(ds)["certs"]
    assert {"rtstransport", "rtssigning"} <= {c["keyType"] for c in certs}
    for c in certs[:200]:
        der = base64.b64decode(c["x5c"][0])
        cert = x509.load_der_x509_certificate(der)
        assert cert.not_valid_after_utc == datetime.fromisoformat(c["ExpiryDateTime"])
        assert cert.not_valid_before_utc == datetime.fromisoformat(c["ValidFromDateTime"])
        assert c["x5thashS256"] == base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        assert c["n"]
        assert c["e"] == "AQAB"
        assert c["kty"] == "RSA"
    expiries = [datetime.fromisoformat(c["ExpiryDateTime"]) for c in certs]
    assert any(e < REFERENCE_DATE for e in expiries)
    assert any(0 <= (e - REFERENCE_DATE).days < 30 for e in expiries)
    assert any((e - REFERENCE_DATE).days > 180 for e in expiries)


def test_participants(ds: Dataset) -> None:
    parts = ds.participants()
    active_with_as = {
        o["OrganisationId"]
        for o in ds.organisations
        if o["Status"] == "Active" and ds.authorisation_servers[o["OrganisationId"]]
    }
    ids = {p["OrganisationId"] for p in parts}
    assert ids <= active_with_as
    assert len(ids) >= 0.9 * len(active_with_as)
    for p in parts:
        assert "Tags" not in p
        assert "Tag" in p
        assert "Flags" not in p
        assert p["AuthorisationServers"]
        assert all("ApiResources" in s for s in p["AuthorisationServers"])
    retired = {s["AuthorisationServerId"] for s in _all(ds)["as"] if s["RetirementDate"]}
    listed = {s["AuthorisationServerId"] for p in parts for s in p["AuthorisationServers"]}
    assert retired
    assert not retired & listed
    assert ds.ground_truth()["participants"]["ids"] == sorted(ids)


def test_add_organisation_is_deterministic(ds: Dataset) -> None:
    a, b = build_dataset(3, 50), build_dataset(3, 50)
    new_a, new_b = a.add_organisation(), b.add_organisation()
    assert new_a == new_b
    truth = a.ground_truth()
    assert truth["organisations"]["count"] == 51
    assert new_a in truth["participants"]["ids"]
    assert truth["meta"]["mutations"] == 1
    assert a.organisations == sorted(a.organisations, key=lambda o: o["OrganisationId"])


def test_field_names_follow_the_spec(ds: Dataset) -> None:
    props = spec_properties()
    stuff = _all(ds)
    org_id = ds.organisations[0]["OrganisationId"]
    samples = {
        "Organisation": ds.organisations[:50],
        "AuthorisationServer": stuff["as"][:50],
        "ApiResource": stuff["res"][:50],
        "ApiDiscoveryEndpoint": stuff["ep"][:50],
        "AuthorisationServerCertification": stuff["asc"][:50],
        "SoftwareStatement": stuff["ss"][:50],
        "SoftwareStatementCertification": stuff["ssc"][:50],
        "CertificateOrKey": stuff["certs"][:50],
        "Contact": ds.contacts[org_id] + [c for v in list(ds.contacts.values())[:20] for c in v],
        "OrganisationAuthorityDomainClaim": [c for v in ds.org_domain_claims.values() for c in v][:50],
        "OrganisationAuthorityClaim": [c for v in ds.org_domain_role_claims.values() for c in v][:50],
        "Authority": ds.authorities,
        "AuthorisationDomain": ds.authorisation_domains,
        "AuthorisationDomainRole": ds.authorisation_domain_roles,
    }
    for schema, records in samples.items():
        assert records, schema
        allowed = props[schema] | NEWER.get(schema, set())
        for r in records:
            assert set(r) <= allowed, (schema, set(r) - allowed)
        assert props[schema] <= set(records[0]), (schema, props[schema] - set(records[0]))
    for p in ds.participants()[:30]:
        assert set(p) <= props["participants:ParticipantObject"], set(p) - props["participants:ParticipantObject"]
        for s in p["AuthorisationServers"]:
            assert set(s) <= props["participants:AuthorisationServer"]
            for r in s["ApiResources"]:
                assert set(r) <= props["participants:ApiResource"]
            for c in s["AuthorisationServerCertifications"]:
                assert set(c) <= props["participants:AuthorisationServerCertification"]
        for c in p["OrgDomainRoleClaims"]:
            assert set(c) <= props["participants:OrganisationAuthorityClaim"]
        for c in p["OrgDomainClaims"]:
            assert set(c) <= props["participants:OrganisationAuthorityDomainClaim"]


def test_clients_use_rfc7591_names(ds: Dataset) -> None:
    for c in ds.clients[:50]:
        assert all(re.fullmatch(r"[a-z0-9_]+", k) for k in c)
        assert c["status"] in ("Active", "Inactive", "Suspended")
        assert datetime.fromisoformat(c["last_updated"]).tzinfo is not None
    assert ds.clients == sorted(ds.clients, key=lambda c: c["client_id"])
