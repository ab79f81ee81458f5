"""Change the emulator's data between reads, and say exactly what changed (the change feed's ground truth).

``POST /__sandbox/changes`` with a JSON object of counts (every key optional, 0 by default):

* ``add_organisations``: new ``Active`` organisations, each with at least one authorisation server;
* ``remove_organisations``: organisations removed with everything under them (servers, API resources and
  endpoints, software statements and their certificates, contacts, claims, clients);
* ``change_endpoints``: API discovery endpoints whose ``ApiEndpoint`` URL moves;
* ``remove_endpoints``: API discovery endpoints removed from their API resource;
* ``revoke_certificates``: ``Active`` software-statement certificates whose ``Status`` becomes ``Revoked``;
* ``seed``: picks which records (the same seed on the same data picks the same ones).

The answer is ``{"added": {key: [ids]}, "removed": {...}, "changed": {...}}`` keyed like
``Dataset.ground_truth()`` (only non-empty lists): ``added``/``removed`` are the ground truth's ids after
minus before and before minus after; ``changed`` lists the records edited in place (and their twins in the
participants list).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from raidiam_sandbox.dataset import Dataset
from raidiam_sandbox.request_body import body_fields

Json = dict[str, Any]

# A record edited in place also changes its copy in /participants, when it is there.
_PARTICIPANT_TWIN = {"api_discovery_endpoints": "participant_api_discovery_endpoints"}


@dataclass(frozen=True)
class DataChanges:
    """The counts of one ``POST /__sandbox/changes`` request."""

    seed: int = 0
    add_organisations: int = 0
    remove_organisations: int = 0
    change_endpoints: int = 0
    remove_endpoints: int = 0
    revoke_certificates: int = 0

    @classmethod
    def parse(cls, raw: Any) -> DataChanges:
        """Validate a request body; raises ``ValueError`` with a readable message."""
        for name, value in body_fields(raw, cls).items():
            if isinstance(value, bool) or not isinstance(value, int) or (name != "seed" and not 0 <= value <= 10_000):
                raise ValueError(f"{name} must be an integer" + ("" if name == "seed" else " in [0, 10000]"))
        return cls(**raw)


def apply_changes(ds: Dataset, changes: DataChanges) -> Json:
    """Apply ``changes`` to ``ds`` in place and return what changed (see the module docstring)."""
    before = ds.ground_truth()
    rng = random.Random(f"{changes.seed}:{ds.mutations}")
    ds.mutations += 1  # Emulator.reset() rebuilds a data set that has mutations
    changed: dict[str, set[str]] = {}

    organisations = [o["OrganisationId"] for o in ds.organisations]
    for org_id in rng.sample(organisations, min(changes.remove_organisations, len(organisations))):
        _remove_organisation(ds, org_id)

    endpoints = [
        (resource["ApiDiscoveryEndpoints"], endpoint)
        for org in ds.organisations
        for server in ds.authorisation_servers[org["OrganisationId"]]
        for resource in server["ApiResources"]
        for endpoint in resource["ApiDiscoveryEndpoints"]
    ]
    picked = rng.sample(endpoints, min(changes.change_endpoints + changes.remove_endpoints, len(endpoints)))
    for n, (siblings, endpoint) in enumerate(picked):
        if n < changes.change_endpoints:
            endpoint["ApiEndpoint"] = f"{endpoint['ApiEndpoint'].rsplit('/', 1)[0]}/moved-{ds.mutations}-{n}"
            changed.setdefault("api_discovery_endpoints", set()).add(endpoint["ApiDiscoveryId"])
        else:
            siblings.remove(endpoint)

    active = [
        cert
        for statements in ds.software_statements.values()
        for statement in statements
        for cert in ds.software_statement_certificates[statement["SoftwareStatementId"]]
        if cert["Status"] == "Active"
    ]
    for cert in rng.sample(active, min(changes.revoke_certificates, len(active))):
        cert["Status"] = "Revoked"
        changed.setdefault("software_statement_certificates", set()).add(cert["kid"])

    for _ in range(changes.add_organisations):
        ds.add_organisation()

    after = ds.ground_truth()
    for key, twin in _PARTICIPANT_TWIN.items():
        listed = set(after[twin]["ids"])
        if changed.get(key, set()) & listed:
            changed[twin] = changed[key] & listed
    keys = [k for k in after if k != "meta"]
    added = {k: sorted(set(after[k]["ids"]) - set(before[k]["ids"])) for k in keys}
    removed = {k: sorted(set(before[k]["ids"]) - set(after[k]["ids"])) for k in keys}
    return {
        "added": {k: v for k, v in added.items() if v},
        "removed": {k: v for k, v in removed.items() if v},
        "changed": {k: sorted(v) for k, v in changed.items() if v},
    }


def _remove_organisation(ds: Dataset, org_id: str) -> None:
    ds.organisations = [o for o in ds.organisations if o["OrganisationId"] != org_id]
    for statement in ds.software_statements.pop(org_id):
        ds.software_statement_certificates.pop(statement["SoftwareStatementId"], None)
    for per_organisation in (
        ds.tnc,
        ds.authorisation_servers,
        ds.organisation_certificates,
        ds.contacts,
        ds.org_domain_claims,
        ds.org_domain_role_claims,
    ):
        per_organisation.pop(org_id, None)
    ds.clients = [c for c in ds.clients if c["organisation_id"] != org_id]
