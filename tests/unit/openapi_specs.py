"""The vendored OpenAPI specifications (``tests/specs/``, MIT, see its README): field names per schema."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

SPECS = Path(__file__).resolve().parents[1] / "specs"
DIRECTORY_SPEC = SPECS / "raidiam-connect-directory-openapi-1.3.7.yaml"
PARTICIPANTS_SPEC = SPECS / "participants-openapi-1.1.0.yaml"
PARTICIPANTS = "participants:"
"""Prefix of the participants spec's schema names in :func:`spec_properties`."""

NEWER = {
    "Organisation": frozenset({"Flags"}),
    "AuthorisationServer": frozenset({"CreatedAt", "SupportsRedirect", "FederationEndpoint", "FederationId"}),
    "ApiResource": frozenset({"Status", "ApiMetadata"}),
    "SoftwareStatement": frozenset(
        {"ApiWebhookUri", "CreatedAt", "HomepageUri", "IdTokenSignedResponseAlgorithm", "Flags", "FederationEndpoint"}
    ),
}
"""Fields of the newer Raidiam API documentation, absent from the 1.3.7 spec
(``../shared/reference/raidiam-api-facts.md`` sections 6.1, 6.2, 6.3 and 6.5)."""


@functools.cache
def spec_properties() -> dict[str, frozenset[str]]:
    """``{schema: property names}`` of the Directory spec, and of the participants spec as ``participants:<schema>``."""
    directory = yaml.safe_load(DIRECTORY_SPEC.read_text())["components"]["schemas"]
    participants = yaml.safe_load(PARTICIPANTS_SPEC.read_text())["components"]["schemas"]
    props = {name: frozenset(schema.get("properties", {})) for name, schema in directory.items()}
    props |= {PARTICIPANTS + name: frozenset(schema.get("properties", {})) for name, schema in participants.items()}
    return props
