"""RFC 8705 certificate binding: an access token's ``cnf.x5t#S256`` must name our transport certificate."""

from __future__ import annotations

import json

from jwt.utils import base64url_decode

from airflow_provider_raidiam.exceptions import BindingError
from airflow_provider_raidiam.server_text import server_text


def token_claims(access_token: str) -> dict[str, object] | None:
    """The claims of a JWT access token, unverified; ``None`` for an opaque token.

    The payload is decoded directly (not through a JWT library's header checks), so unusual headers
    cannot hide a ``cnf`` claim. The signature is the resource server's business.
    """
    parts = access_token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64url_decode(parts[1]))
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def bound_certificate(access_token: str) -> str | None:
    """Return the ``cnf.x5t#S256`` a JWT access token is bound to, or ``None`` (opaque or unbound token).

    The signature is not checked here: the resource server does that. We only read the claim to
    refuse, before any API call, a token that the server would reject for our certificate.
    """
    claims = token_claims(access_token)
    if claims is None:
        return None
    confirmation = claims.get("cnf")
    if not isinstance(confirmation, dict):
        return None
    thumbprint = confirmation.get("x5t#S256")
    return thumbprint if isinstance(thumbprint, str) else None


def check_token_binding(access_token: str, certificate_thumbprint: str | None) -> None:
    """Raise :class:`BindingError` when the token is bound to a different certificate than ours.

    Opaque tokens and JWTs without ``cnf.x5t#S256`` pass: there is nothing to compare.
    """
    claimed = bound_certificate(access_token)
    if claimed is None:
        return
    bound_to = server_text(claimed, 64)
    if certificate_thumbprint is None:
        raise BindingError(
            f"The access token is bound to a certificate (cnf.x5t#S256={bound_to}) but this connection has "
            "no transport certificate: set transport_cert and transport_private_key so API calls present it."
        )
    if claimed != certificate_thumbprint:
        raise BindingError(
            f"The access token is bound to certificate x5t#S256={bound_to}, but this connection's "
            f"transport certificate has x5t#S256={certificate_thumbprint}. The token was issued over a "
            "different certificate: make sure the token request and the API calls use the same transport "
            "certificate (and that no proxy terminates TLS in between)."
        )
