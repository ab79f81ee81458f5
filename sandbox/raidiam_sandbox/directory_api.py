"""Raidiam Connect Directory API emulator (stand-in for ``matls-api.<env>`` and ``data.<env>``).

Run as ``python -m raidiam_sandbox.directory_api --config <file.json>`` with config keys
``host`` (must be ``127.0.0.1``), ``server_cert``, ``server_key``, ``ca_cert``, ``issuer``, ``audience``,
``seed``, ``organisations``, ``latency_ms``, ``ready_file`` and optionally ``api_port``/``public_port``
(default 0 = ephemeral), ``default_page_size`` (default 100) and ``exit_on_stdin_eof`` (default false).
When both listeners are up it writes ``ready_file`` = ``{"api_base_url", "public_base_url", "pid"}``
(atomically; removed again on exit); SIGTERM/SIGINT stop it cleanly.

Two TLS (1.2+) listeners share one data set (``dataset.build_dataset(seed, organisations)``):

* mTLS (client certificate required, verified against ``ca_cert``): the protected Directory API. Every
  request needs ``Authorization: Bearer <JWT>`` signed by a key of the issuer's JWKS (discovered from
  ``<issuer>/.well-known/openid-configuration`` over TLS verified with ``ca_cert``), with ``iss`` ==
  issuer, ``aud`` containing ``audience``, unexpired ``exp``, ``scope`` containing ``directory:software``
  or ``directory:website`` and ``cnf.x5t#S256`` equal to the SHA-256 thumbprint of the client certificate
  of *this* TLS connection. Failures: 401, ``WWW-Authenticate: Bearer error="invalid_token",
  error_description="..."`` and ``{"errors": ["..."]}`` (no token at all: ``Bearer realm="directory"``).
* public (no client certificate): ``GET /participants`` (a plain JSON array, no token, with an ``ETag``:
  ``If-None-Match`` with the current one gets ``304 Not Modified``) and the admin
  endpoints ``/__sandbox/stats``, ``/__sandbox/reset`` (POST), ``/__sandbox/ground-truth`` and
  ``/__sandbox/faults`` (GET/PUT), ``/__sandbox/changes`` (POST: change the data, see ``mutations``) and
  ``/__sandbox/gateway`` (GET/PUT: the gateway's rate limit and request log, see :mod:`~raidiam_sandbox.gateway`).

Paths, envelopes and field names follow the Raidiam Connect OpenAPI 1.3.7 (see ``ROUTES``). Paged
responses use the Micronaut-style envelope ``content, empty, numberOfElements, offset, pageNumber,
pageable{number, offset, size, sort{orderBy[], sorted}, sorted}, size, totalPages, totalSize`` with
``totalPages = ceil(totalSize / size)`` (0 when empty). ``page`` starts at 0, ``size`` is 1..50000,
``sort`` is ``Property[,asc|desc]`` (default: the record id ascending). The non-paged list endpoints
return every record and ignore ``page``/``size``/``sort``. Errors: ``{"errors": ["..."]}``. Every
response carries ``x-fapi-interaction-id`` (the request's, when it is a valid id, else a new UUID).

Faults (``PUT /__sandbox/faults``) hit authenticated protected requests only, never ``/participants``
or admin endpoints, and are drawn from their own ``random.Random(seed)``: per request, in this order,
``rate_limit_rate`` (429), ``error_rate`` (a status drawn from ``error_statuses``, default
500/502/503/504), then ``drop_rate`` (status line, headers with the full ``Content-Length`` and half the
body, then the connection is closed). ``retry_after`` (``none``/``seconds``/``http-date``, value
``retry_after_seconds``) is set on 429 and 503. ``mutate_after_requests`` = n adds one ``Active``
organisation after n more protected requests (one shot; with ``mutate_repeat`` again after every n).
``page_totals`` and ``page_shift`` make paged responses lie about their counts or shift under a read
(see :mod:`raidiam_sandbox.paging_faults`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import itertools
import json
import math
import os
import random
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import jwt

from raidiam_sandbox import paging_faults
from raidiam_sandbox.dataset import ORG_CERT_TYPES, SS_CERT_TYPES, Dataset, build_dataset
from raidiam_sandbox.gateway import Gateway, GatewayLimit
from raidiam_sandbox.mutations import DataChanges, apply_changes
from raidiam_sandbox.request_body import body_fields

Json = dict[str, Any]
Query = dict[str, list[str]]

ACCEPTED_SCOPES = frozenset({"directory:software", "directory:website"})
ALGORITHMS = ["PS256", "RS256", "ES256"]
MAX_PAGE_SIZE = 50000
_INTERACTION_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-]{0,99}$")
_CT_JSON = "application/json"
_CT_JWKS = "application/jwk-set+json"
_CT_JWK = "application/jwk+json"
_REASONS = {
    200: "OK",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
ERROR_STATUSES = (500, 502, 503, 504)
_FAULT_TEXT = {
    429: "Too many requests, maximum capacity reached. Requests are now throttled.",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Upstream timeout, insufficient capacity to serve request. More capacity being brought online. "
    "Please try again.",
}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class Config:
    """The emulator's JSON configuration file."""

    server_cert: str
    server_key: str
    ca_cert: str
    issuer: str
    audience: str
    ready_file: str
    host: str = "127.0.0.1"
    seed: int = 0
    organisations: int = 200
    latency_ms: float = 0.0
    api_port: int = 0
    public_port: int = 0
    default_page_size: int = 100
    exit_on_stdin_eof: bool = False

    @classmethod
    def load(cls, path: str) -> Config:
        """Read and validate a config file (unknown keys are an error)."""
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
        cfg = cls(**raw)
        if cfg.host != "127.0.0.1":
            raise ValueError("the sandbox only ever binds 127.0.0.1")
        return cfg


@dataclass
class Faults:
    """Fault-injection settings (``PUT /__sandbox/faults`` replaces them all)."""

    seed: int = 0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: str = "none"
    retry_after_seconds: int = 1
    drop_rate: float = 0.0
    latency_ms: float = 0.0
    mutate_after_requests: int | None = None
    mutate_repeat: bool = False
    error_statuses: tuple[int, ...] = ERROR_STATUSES
    page_totals: dict[str, int] | None = None
    page_shift: bool = False

    @classmethod
    def parse(cls, raw: Any) -> Faults:
        """Validate a PUT body; raises ``ValueError`` with a readable message."""
        f = cls(**body_fields(raw, cls))
        for name in ("error_rate", "rate_limit_rate", "drop_rate"):
            v = getattr(f, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                raise ValueError(f"{name} must be a number in [0, 1]")
        if f.retry_after not in ("none", "seconds", "http-date"):
            raise ValueError("retry_after must be none, seconds or http-date")
        if isinstance(f.seed, bool) or not isinstance(f.seed, int):
            raise ValueError("seed must be an integer")
        if not isinstance(f.latency_ms, int | float) or f.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if not isinstance(f.retry_after_seconds, int) or f.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must be an integer >= 0")
        m = f.mutate_after_requests
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ValueError("mutate_after_requests must be null or an integer >= 1")
        if not isinstance(f.mutate_repeat, bool):
            raise ValueError("mutate_repeat must be true or false")
        statuses = f.error_statuses
        if (
            not isinstance(statuses, list | tuple)
            or not statuses
            or not all(type(code) is int and code in ERROR_STATUSES for code in statuses)
        ):
            raise ValueError(f"error_statuses must be a non-empty list of {list(ERROR_STATUSES)}")
        f.error_statuses = tuple(statuses)
        paging_faults.check(f.page_totals, f.page_shift)
        return f


@dataclass
class Resp:
    """One response: status, body bytes, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = _CT_JSON
    headers: tuple[tuple[str, str], ...] = ()


class ApiError(Exception):
    """Turns into ``{"errors": [message]}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def resp(self) -> Resp:
        """The error response."""
        return Resp(self.status, _dumps({"errors": [self.message]}))


class AuthError(Exception):
    """An access token was rejected; the message goes into ``error_description``."""


# --- data view ---------------------------------------------------------------------------------


class View:
    """An immutable snapshot of a :class:`Dataset` plus serialised-response caches.

    Mutations and resets build a new view and swap it in, so readers never see a half-changed data set.
    """

    def __init__(self, ds: Dataset, default_size: int) -> None:
        self.ds = ds
        self.default_size = default_size
        self.organisations = list(ds.organisations)
        self.org_by_id = {o["OrganisationId"]: o for o in self.organisations}
        self.clients = list(ds.clients)
        self.client_updated = {c["client_id"]: datetime.fromisoformat(c["last_updated"]) for c in self.clients}
        self.cache: dict[Any, Any] = {}

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        """Memoise ``make()`` under ``key`` for this view's lifetime (bounded)."""
        hit = self.cache.get(key)
        if hit is None:
            hit = make()
            if len(self.cache) > 50000:
                self.cache.clear()
            self.cache[key] = hit
        return hit

    def org(self, org_id: str) -> Json:
        """The organisation or a 404."""
        org = self.org_by_id.get(org_id)
        if org is None:
            raise ApiError(404, f"Organisation {org_id} not found")
        return org


def _find(items: list[Json], key: str, value: str, what: str) -> Json:
    for item in items:
        if item[key] == value:
            return item
    raise ApiError(404, f"{what} {value} not found")


def _int_param(query: Query, name: str, default: int, lo: int, hi: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        v = int(values[-1])
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if not lo <= v <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}")
    return v


def _sort_key(prop: str) -> Callable[[Json], tuple[int, Any]]:
    def key(item: Json) -> tuple[int, Any]:
        v = item.get(prop)
        if v is None:
            return (0, "")
        if isinstance(v, int | float) and not isinstance(v, bool):
            return (1, v)
        return (2, str(v))

    return key


def _paged(view: View, cache_key: Any, items: Callable[[], list[Json]], id_field: str, query: Query) -> Resp:
    """The paged envelope over ``items()`` (filtered/sorted list cached per ``cache_key`` and sort)."""
    page = _int_param(query, "page", 0, 0, 10**9)
    size = _int_param(query, "size", view.default_size, 1, MAX_PAGE_SIZE)
    raw_sort = (query.get("sort") or [""])[-1].strip()
    prop, _, direction = raw_sort.partition(",")
    prop, direction = prop.strip() or id_field, (direction.strip() or "asc").lower()
    if direction not in ("asc", "desc"):
        raise ApiError(400, f"sort direction must be asc or desc, not {direction!r}")

    def build() -> tuple[str, list[bytes]]:
        records = items()
        known = {k.lower(): k for r in records[:200] for k in r}
        field = known.get(prop.lower(), prop if not records else None)
        if field is None:
            raise ApiError(400, f"cannot sort by unknown property {prop!r}")
        ordered = sorted(records, key=lambda r: str(r.get(id_field)))
        if field != id_field or direction == "desc":
            ordered.sort(key=_sort_key(field), reverse=direction == "desc")
        return field, [_dumps(r) for r in ordered]

    field, encoded = view.cached(("paged", cache_key, prop.lower(), direction), build)
    total = len(encoded)
    chunk = encoded[page * size : page * size + size]
    order = {"property": field, "direction": direction.upper(), "ignoreCase": False, "ascending": direction == "asc"}
    meta = {
        "empty": not chunk,
        "numberOfElements": len(chunk),
        "offset": page * size,
        "pageNumber": page,
        "pageable": {
            "number": page,
            "offset": page * size,
            "size": size,
            "sort": {"orderBy": [order], "sorted": True},
            "sorted": True,
        },
        "size": size,
        "totalPages": math.ceil(total / size),
        "totalSize": total,
    }
    return Resp(200, b'{"content":[' + b",".join(chunk) + b"]," + _dumps(meta)[1:])


# --- route handlers ----------------------------------------------------------------------------

Handler = Callable[[View, dict[str, str], Query], Resp]


def _json(view: View, key: Any, make: Callable[[], Any], ctype: str = _CT_JSON) -> Resp:
    return cast(Resp, view.cached(key, lambda: Resp(200, _dumps(make()), ctype)))


def _servers(view: View, p: dict[str, str]) -> list[Json]:
    view.org(p["OrganisationId"])
    return view.ds.authorisation_servers[p["OrganisationId"]]


def _server(view: View, p: dict[str, str]) -> Json:
    return _find(_servers(view, p), "AuthorisationServerId", p["AuthorisationServerId"], "AuthorisationServer")


def _resource(view: View, p: dict[str, str]) -> Json:
    return _find(_server(view, p)["ApiResources"], "ApiResourceId", p["ApiResourceId"], "ApiResource")


def _statements(view: View, p: dict[str, str]) -> list[Json]:
    view.org(p["OrganisationId"])
    return view.ds.software_statements[p["OrganisationId"]]


def _statement(view: View, p: dict[str, str]) -> Json:
    return _find(_statements(view, p), "SoftwareStatementId", p["SoftwareStatementId"], "SoftwareStatement")


def _ss_certs(view: View, p: dict[str, str]) -> list[Json]:
    return view.ds.certificates_of_software_statement(_statement(view, p)["SoftwareStatementId"])


def _org_certs(view: View, p: dict[str, str]) -> list[Json]:
    view.org(p["OrganisationId"])
    return view.ds.certificates_of_organisation(p["OrganisationId"])


def _of_type(certs: list[Json], value: str, allowed: tuple[str, ...]) -> list[Json]:
    """The certificates whose ``keyType`` is ``value`` (a path enum, case-insensitive; else 400)."""
    wanted = value.lower()
    if wanted not in allowed:
        raise ApiError(400, f"certificate type must be one of {', '.join(allowed)}")
    return [c for c in certs if c["keyType"] == wanted]


def _role_claims(view: View, p: dict[str, str]) -> list[Json]:
    view.org(p["OrganisationId"])
    return view.ds.org_domain_role_claims[p["OrganisationId"]]


def _organisations(view: View, p: dict[str, str], q: Query) -> Resp:
    hide = (q.get("hideInactive") or ["false"])[-1].lower()
    if hide not in ("true", "false"):
        raise ApiError(400, "hideInactive must be true or false")
    needle = (q.get("filterBy") or [""])[-1].lower()

    def items() -> list[Json]:
        orgs = view.organisations
        if hide == "true":
            orgs = [o for o in orgs if o["Status"] == "Active"]
        if needle:
            orgs = [
                o
                for o in orgs
                if any(
                    needle in str(o.get(k) or "").lower()
                    for k in ("OrganisationName", "LegalEntityName", "RegistrationNumber", "OrganisationId")
                )
            ]
        return orgs

    return _paged(view, f"orgs:{hide}:{needle}", items, "OrganisationId", q)


def _clients(view: View, p: dict[str, str], q: Query) -> Resp:
    def when(name: str) -> datetime | None:
        raw = (q.get(name) or [""])[-1]
        if not raw:
            return None
        try:
            dt = datetime.fromisoformat(raw)
        except ValueError:
            raise ApiError(400, f"{name} must be an RFC 3339 date-time") from None
        if dt.tzinfo is None:
            raise ApiError(400, f"{name} must include a UTC offset (RFC 3339)")
        return dt

    start, end = when("startDate"), when("endDate")
    status = (q.get("status") or [""])[-1]
    if status and status not in ("Active", "Inactive", "Suspended"):
        raise ApiError(400, "status must be Active, Inactive or Suspended")
    role = (q.get("role") or [""])[-1].lower()
    name = (q.get("name") or [""])[-1].lower()

    def items() -> list[Json]:
        out = []
        for c in view.clients:
            updated = view.client_updated[c["client_id"]]
            if (start and updated < start) or (end and updated >= end) or (status and c["status"] != status):
                continue
            if role and role not in c["scope"].split():
                continue
            if name and name not in (c["client_name"] or "").lower():
                continue
            out.append(c)
        return out

    key = ("clients", start, end, status, role, name)
    return _paged(view, key, items, "client_id", q)


def _route_table() -> list[tuple[str, Handler]]:
    org = "/organisations/{OrganisationId}"
    asrv = org + "/authorisationservers/{AuthorisationServerId}"
    res = asrv + "/apiresources/{ApiResourceId}"
    ss = org + "/softwarestatements/{SoftwareStatementId}"

    def single(key: str, make: Callable[[View, dict[str, str]], Any], ctype: str = _CT_JSON) -> Handler:
        return lambda v, p, q: _json(v, (key, *p.values()), lambda: make(v, p), ctype)

    def per_org_paged(key: str, attr: str, id_field: str) -> Handler:
        def handler(v: View, p: dict[str, str], q: Query) -> Resp:
            v.org(p["OrganisationId"])
            return _paged(v, (key, p["OrganisationId"]), lambda: getattr(v.ds, attr)[p["OrganisationId"]], id_field, q)

        return handler

    def per_org_item(attr: str, id_field: str, param: str, what: str) -> Handler:
        def make(v: View, p: dict[str, str]) -> Json:
            v.org(p["OrganisationId"])
            return _find(getattr(v.ds, attr)[p["OrganisationId"]], id_field, p[param], what)

        return single(attr + "-item", make)

    def ref_paged(attr: str, id_field: str) -> Handler:
        return lambda v, p, q: _paged(v, attr, lambda: getattr(v.ds, attr), id_field, q)

    return [
        ("/organisations", _organisations),
        (
            org,
            single(
                "org",
                lambda v, p: {"OrgDetails": v.org(p["OrganisationId"]), "TncDetails": v.ds.tnc[p["OrganisationId"]]},
            ),
        ),
        (org + "/authorisationservers", single("as-list", _servers)),
        (asrv, single("as", _server)),
        (asrv + "/apiresources", single("res-list", lambda v, p: _server(v, p)["ApiResources"])),
        (res, single("res", _resource)),
        (res + "/apidiscoveryendpoints", single("ep-list", lambda v, p: _resource(v, p)["ApiDiscoveryEndpoints"])),
        (
            res + "/apidiscoveryendpoints/{ApiDiscoveryEndpointId}",
            single(
                "ep",
                lambda v, p: _find(
                    _resource(v, p)["ApiDiscoveryEndpoints"],
                    "ApiDiscoveryId",
                    p["ApiDiscoveryEndpointId"],
                    "ApiDiscoveryEndpoint",
                ),
            ),
        ),
        (asrv + "/certifications", single("asc-list", lambda v, p: _server(v, p)["AuthorisationServerCertifications"])),
        (
            asrv + "/certifications/{AuthorisationServerCertificationId}",
            single(
                "asc",
                lambda v, p: _find(
                    _server(v, p)["AuthorisationServerCertifications"],
                    "CertificationId",
                    p["AuthorisationServerCertificationId"],
                    "Certification",
                ),
            ),
        ),
        (
            org + "/authorityclaims",
            single("claims", _role_claims),
        ),
        (
            org + "/authorityclaims/{OrganisationAuthorityClaimId}",
            per_org_item(
                "org_domain_role_claims",
                "OrganisationAuthorityClaimId",
                "OrganisationAuthorityClaimId",
                "OrganisationAuthorityClaim",
            ),
        ),
        (
            org + "/authoritydomainclaims",
            per_org_paged("domain-claims", "org_domain_claims", "OrganisationAuthorityDomainClaimId"),
        ),
        (
            org + "/authoritydomainclaims/{OrganisationAuthorityDomainClaimId}",
            per_org_item(
                "org_domain_claims",
                "OrganisationAuthorityDomainClaimId",
                "OrganisationAuthorityDomainClaimId",
                "OrganisationAuthorityDomainClaim",
            ),
        ),
        (org + "/certificates", single("org-certs", _org_certs, _CT_JWKS)),
        (
            org + "/certificates/kid/{CertificateOrKeyId}",
            single(
                "org-cert", lambda v, p: _find(_org_certs(v, p), "kid", p["CertificateOrKeyId"], "Certificate"), _CT_JWK
            ),
        ),
        (
            org + "/certificates/{OrganisationCertificateType}",
            single(
                "org-certs-type",
                lambda v, p: _of_type(_org_certs(v, p), p["OrganisationCertificateType"], ORG_CERT_TYPES),
                _CT_JWKS,
            ),
        ),
        (org + "/contacts", per_org_paged("contacts", "contacts", "ContactId")),
        (org + "/contacts/{ContactId}", per_org_item("contacts", "ContactId", "ContactId", "Contact")),
        (org + "/softwarestatements", single("ss-list", _statements)),
        (ss, single("ss", _statement)),
        (ss + "/certificates", single("ss-certs", _ss_certs, _CT_JWKS)),
        (
            ss + "/certificates/{SoftwareStatementCertificateOrKeyType}",
            single(
                "ss-certs-type",
                lambda v, p: _of_type(_ss_certs(v, p), p["SoftwareStatementCertificateOrKeyType"], SS_CERT_TYPES),
                _CT_JWKS,
            ),
        ),
        (
            ss + "/certificates/{SoftwareStatementCertificateOrKeyType}/{CertificateOrKeyId}",
            single(
                "ss-cert",
                lambda v, p: _find(
                    _of_type(_ss_certs(v, p), p["SoftwareStatementCertificateOrKeyType"], SS_CERT_TYPES),
                    "kid",
                    p["CertificateOrKeyId"],
                    "Certificate",
                ),
                _CT_JWK,
            ),
        ),
        (ss + "/certifications", single("ssc-list", lambda v, p: _statement(v, p)["SoftwareStatementCertifications"])),
        (
            ss + "/certifications/{SoftwareStatementCertificationId}",
            single(
                "ssc",
                lambda v, p: _find(
                    _statement(v, p)["SoftwareStatementCertifications"],
                    "CertificationId",
                    p["SoftwareStatementCertificationId"],
                    "Certification",
                ),
            ),
        ),
        ("/references/authorities", single("authorities", lambda v, p: v.ds.authorities)),
        (
            "/references/authorities/{AuthorityId}",
            single("authority", lambda v, p: _find(v.ds.authorities, "AuthorityId", p["AuthorityId"], "Authority")),
        ),
        ("/references/authorisationdomains", ref_paged("authorisation_domains", "AuthorisationDomainName")),
        (
            "/references/authorisationdomains/{AuthorisationDomainName}",
            single(
                "domain",
                lambda v, p: _find(
                    v.ds.authorisation_domains,
                    "AuthorisationDomainName",
                    p["AuthorisationDomainName"],
                    "AuthorisationDomain",
                ),
            ),
        ),
        (
            "/references/authorisationdomainroles",
            ref_paged("authorisation_domain_roles", "AuthorisationDomainRoleName"),
        ),
        (
            "/references/authorisationdomainroles/{AuthorisationDomainRoleName}",
            single(
                "role",
                lambda v, p: _find(
                    v.ds.authorisation_domain_roles,
                    "AuthorisationDomainRoleName",
                    p["AuthorisationDomainRoleName"],
                    "AuthorisationDomainRole",
                ),
            ),
        ),
        ("/clients", _clients),
    ]


ROUTES: list[tuple[str, Handler]] = _route_table()
"""The protected GET routes (spec path templates) served on the mTLS listener."""


class Router:
    """Matches a path against path templates; returns (template, params, handler)."""

    def __init__(self, routes: list[tuple[str, Handler]]) -> None:
        self._by_len: dict[int, list[tuple[str, tuple[str, ...], Handler]]] = {}
        for template, handler in routes:
            segs = tuple(template.strip("/").split("/"))
            self._by_len.setdefault(len(segs), []).append((template, segs, handler))

    def match(self, path: str) -> tuple[str, dict[str, str], Handler] | None:
        """The first route whose literal segments all match."""
        segs = [unquote(s) for s in path.strip("/").split("/")]
        for template, tsegs, handler in self._by_len.get(len(segs), ()):
            params: dict[str, str] = {}
            for t, s in zip(tsegs, segs, strict=True):
                if t[0] == "{":
                    if not s:
                        break
                    params[t[1:-1]] = s
                elif t != s:
                    break
            else:
                return template, params, handler
        return None


# --- token verification ------------------------------------------------------------------------


class TokenVerifier:
    """Verifies certificate-bound JWT access tokens against the issuer's JWKS (fetched lazily)."""

    def __init__(self, issuer: str, audience: str, ca_cert: str) -> None:
        self.issuer = issuer
        self.audience = audience
        # no proxies from the environment: the issuer is on loopback
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_cert)),
        )
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()
        self._verified: dict[str, Json] = {}

    def _fetch_json(self, url: str) -> Any:
        if not url.startswith("https://"):
            raise ValueError(f"refusing non-https URL {url}")
        with self._opener.open(url, timeout=10) as resp:
            return json.loads(resp.read())

    def refresh_keys(self) -> None:
        """Load the issuer's signing keys now (they are otherwise loaded on the first token)."""
        self._refresh(force=False)

    def _refresh(self, force: bool) -> None:
        with self._lock:
            if self._keys and not force:
                return
            if force and time.monotonic() - self._fetched_at < 1.0:
                return
            discovery = self._fetch_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
            jwks_uri = discovery["jwks_uri"]
            if not str(jwks_uri).startswith("https://"):
                raise AuthError("jwks_uri is not https")
            keys: dict[str, jwt.PyJWK] = {}
            for i, jwk in enumerate(self._fetch_json(jwks_uri).get("keys", [])):
                if jwk.get("use", "sig") != "sig":
                    continue
                with contextlib.suppress(jwt.PyJWKError, jwt.InvalidKeyError, ValueError):
                    keys[jwk.get("kid") or f"#{i}"] = jwt.PyJWK(jwk)
            self._keys, self._fetched_at = keys, time.monotonic()

    def _key_for(self, kid: str | None) -> list[jwt.PyJWK]:
        try:
            self._refresh(force=False)
            if kid is not None and kid not in self._keys:
                self._refresh(force=True)  # key rotation: refetch once
        except (OSError, ValueError, KeyError) as exc:
            raise AuthError(f"cannot load the issuer's JWKS: {exc}") from None
        if kid is None:
            return list(self._keys.values())
        if kid not in self._keys:
            raise AuthError(f"unknown key id {kid!r}")
        return [self._keys[kid]]

    def verify(self, token: str, thumbprint: str | None) -> Json:
        """Return the token's claims or raise :class:`AuthError`."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify_signature(token)
            if len(self._verified) > 50000:
                self._verified.clear()
            self._verified[token] = claims
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= time.time():
            raise AuthError("token expired")
        scope = claims.get("scope", "")
        scopes = set(scope.split() if isinstance(scope, str) else scope if isinstance(scope, list) else [])
        if not scopes & ACCEPTED_SCOPES:
            raise AuthError("token lacks the directory:software or directory:website scope")
        cnf = claims.get("cnf")
        bound = cnf.get("x5t#S256") if isinstance(cnf, dict) else None
        if not bound:
            raise AuthError("token is not certificate-bound (no cnf.x5t#S256)")
        if thumbprint is None or bound != thumbprint:
            raise AuthError("token is bound to a different client certificate")
        return claims

    def _verify_signature(self, token: str) -> Json:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise AuthError(f"unsupported alg {header.get('alg')!r}")
        last: Exception | None = None
        for key in self._key_for(header.get("kid")):
            try:
                claims: Json = jwt.decode(
                    token,
                    key=key.key,
                    algorithms=[header["alg"]],
                    audience=self.audience,
                    issuer=self.issuer,
                    options={"require": ["exp", "iss", "aud"]},
                )
                return claims
            except jwt.InvalidSignatureError as exc:
                last = exc
            except jwt.PyJWTError as exc:
                raise AuthError(str(exc)) from None
        raise AuthError(f"invalid signature ({last})" if last else "no usable signing key")


def cert_thumbprint(der: bytes) -> str:
    """RFC 8705 ``x5t#S256``: base64url (no padding) of SHA-256 over the certificate DER."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


# --- the application ---------------------------------------------------------------------------


class Emulator:
    """State shared by both listeners: data view, verifier, stats and faults."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.verifier = TokenVerifier(cfg.issuer, cfg.audience, cfg.ca_cert)
        self.router = Router(ROUTES)
        self.data_lock = threading.Lock()
        self.stats_lock = threading.Lock()
        self.view = self._new_view(build_dataset(cfg.seed, cfg.organisations))
        self.faults = Faults()
        self.fault_rng = random.Random(0)
        self.protected_since_faults = 0
        self.gateway = Gateway()
        self._zero_stats()
        self.servers: list[_TLSServer] = []

    def _new_view(self, ds: Dataset) -> View:
        return View(ds, self.cfg.default_page_size)

    def _zero_stats(self) -> None:
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.by_route: Counter[str] = Counter()
        self.rejected_tokens = 0
        self.handshakes: Counter[str] = Counter({"mtls": 0, "public": 0})
        self.handshake_failures: Counter[str] = Counter({"mtls": 0, "public": 0})
        self.faults_injected: Counter[str] = Counter()
        self.jtis: set[str] = set()

    def stats(self) -> Json:
        """The ``/__sandbox/stats`` document."""
        with self.stats_lock:
            return {
                "requests": self.requests,
                "requests_by_status": dict(sorted(self.by_status.items())),
                "requests_by_route": dict(sorted(self.by_route.items())),
                "rejected_tokens": self.rejected_tokens,
                "tls_handshakes": dict(self.handshakes),
                "tls_handshake_failures": dict(self.handshake_failures),
                "faults_injected": dict(sorted(self.faults_injected.items())),
                "tokens_seen": len(self.jtis),
                "mutations": self.view.ds.mutations,
            }

    def count(self, route: str, status: int) -> None:
        """Record one Directory request."""
        with self.stats_lock:
            self.requests += 1
            self.by_status[str(status)] += 1
            self.by_route[route] += 1

    def handshake(self, listener: str, ok: bool) -> None:
        """Record one TLS handshake outcome."""
        with self.stats_lock:
            (self.handshakes if ok else self.handshake_failures)[listener] += 1

    def reset(self) -> None:
        """Zero counters, clear faults and restore the original data set."""
        with self.data_lock:
            if self.view.ds.mutations:
                self.view = self._new_view(build_dataset(self.cfg.seed, self.cfg.organisations))
            self.set_faults(Faults())
        self.gateway.clear()
        with self.stats_lock:
            self._zero_stats()

    def set_faults(self, faults: Faults) -> None:
        """Replace the fault settings and restart their random stream."""
        with self.stats_lock:
            self.faults = faults
            self.fault_rng = random.Random(faults.seed)
            self.protected_since_faults = 0

    def draw_fault(self) -> tuple[int | None, bool, bool]:
        """(status to inject or None, drop?, mutate now?) for one authenticated protected request."""
        with self.stats_lock:
            f, rng = self.faults, self.fault_rng
            u, v, w, code = rng.random(), rng.random(), rng.random(), rng.choice(f.error_statuses)
            status = 429 if u < f.rate_limit_rate else code if v < f.error_rate else None
            drop = status is None and w < f.drop_rate
            if status is not None:
                self.faults_injected[str(status)] += 1
            if drop:
                self.faults_injected["drop"] += 1
            if f.latency_ms:
                self.faults_injected["latency"] += 1
            self.protected_since_faults += 1
            mutate = f.mutate_after_requests is not None and self.protected_since_faults >= f.mutate_after_requests
            if mutate and f.mutate_repeat:
                self.protected_since_faults = 0
            elif mutate:
                self.faults = replace(f, mutate_after_requests=None)
            return status, drop, mutate

    def mutate(self) -> None:
        """Add one organisation and swap in a fresh view."""
        with self.data_lock:
            self.view.ds.add_organisation()
            self.view = self._new_view(self.view.ds)

    def change_data(self, changes: DataChanges) -> Json:
        """Apply ``changes`` (see :mod:`.mutations`), swap in a fresh view, and return what changed."""
        with self.data_lock:
            truth = apply_changes(self.view.ds, changes)
            self.view = self._new_view(self.view.ds)
        return truth

    def participants(self) -> Resp:
        """The ``/participants`` response of the current data (cached per view)."""
        view = self.view
        hit = view.cache.get("participants")
        if hit is None:
            with self.data_lock:  # Dataset.participants() walks lists a mutation may be changing
                hit = view.cached("participants", lambda: _with_etag(_dumps(view.ds.participants())))
        return cast(Resp, hit)

    def ground_truth(self) -> bytes:
        """``Dataset.ground_truth()`` of the current data, serialised (cached per view)."""
        with self.data_lock:
            view = self.view
            return cast(bytes, view.cached("ground-truth", lambda: _dumps(view.ds.ground_truth())))


def _with_etag(body: bytes) -> Resp:
    """A 200 response whose ``ETag`` is a digest of ``body`` (``If-None-Match`` with it gets a 304)."""
    return Resp(200, body, headers=(("ETag", f'"{hashlib.sha256(body).hexdigest()[:32]}"'),))


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, app: Emulator, listener: str, ctx: ssl.SSLContext, port: int) -> None:
        self.app, self.listener, self.ctx = app, listener, ctx
        super().__init__((app.cfg.host, port), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        sock = cast(socket.socket, request)
        sock.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except (ssl.SSLError, OSError):
            self.app.handshake(self.listener, ok=False)
            return
        try:
            try:
                tls.do_handshake()
            except (ssl.SSLError, OSError):
                self.app.handshake(self.listener, ok=False)
                return
            self.app.handshake(self.listener, ok=True)
            _Handler(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "raidiam-directory-emulator"
    disable_nagle_algorithm = True
    timeout = 120
    thumbprint: str | None = None
    arrived = 0.0
    _connections = itertools.count(1)

    def setup(self) -> None:
        super().setup()
        self.connection_id = next(self._connections)
        conn = cast(ssl.SSLSocket, self.connection)
        der = conn.getpeercert(binary_form=True)
        self.thumbprint = cert_thumbprint(der) if der else None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1 << 20:
            self.close_connection = True
            raise ApiError(400, "request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, method: str) -> None:
        self.arrived = time.monotonic()
        server = cast(_TLSServer, self.server)
        app = server.app
        iid = self.headers.get("x-fapi-interaction-id") or ""
        if not _INTERACTION_ID.match(iid):
            iid = str(uuid.uuid4())
        url = urlsplit(self.path)
        try:
            body = self._read_body()
        except (ApiError, ValueError):
            self._send(ApiError(400, "bad request body").resp(), iid)
            return
        if server.listener == "public":
            self._public(app, method, url.path, body, iid)
        else:
            self._protected(app, method, url.path, parse_qs(url.query, keep_blank_values=True), iid)

    def _protected(self, app: Emulator, method: str, path: str, query: Query, iid: str) -> None:
        if app.cfg.latency_ms:
            time.sleep(app.cfg.latency_ms / 1000)
        match = app.router.match(path)
        route = match[0] if match else "<unmatched>"
        wait = app.gateway.admit(time.monotonic())
        if wait is not None:
            app.count(route, 429)
            self._send(Resp(429, _dumps({"errors": [_FAULT_TEXT[429]]}), headers=app.gateway.retry_after(wait)), iid)
            return
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            with app.stats_lock:
                app.rejected_tokens += 1
            resp = Resp(
                401,
                _dumps({"errors": ["missing bearer access token"]}),
                headers=(("WWW-Authenticate", 'Bearer realm="directory"'),),
            )
            app.count(route, 401)
            self._send(resp, iid)
            return
        try:
            claims = app.verifier.verify(token.strip(), self.thumbprint)
        except AuthError as exc:
            with app.stats_lock:
                app.rejected_tokens += 1
            desc = str(exc).replace('"', "'")
            resp = Resp(
                401,
                _dumps({"errors": [desc]}),
                headers=(("WWW-Authenticate", f'Bearer error="invalid_token", error_description="{desc}"'),),
            )
            app.count(route, 401)
            self._send(resp, iid)
            return
        with app.stats_lock:
            jti = claims.get("jti")
            app.jtis.add(str(jti) if jti else hashlib.sha256(token.encode()).hexdigest())
        status, drop, mutate = app.draw_fault()
        if app.faults.latency_ms:
            time.sleep(app.faults.latency_ms / 1000)
        view = app.view
        if status is not None:
            resp = Resp(status, _dumps({"errors": [_FAULT_TEXT[status]]}), headers=self._retry_after(app, status))
        elif method != "GET":
            resp = ApiError(405, f"{method} is not supported by the emulator").resp()
        elif match is None:
            resp = ApiError(404, f"no such resource: {path}").resp()
        else:
            handler, params = match[2], match[1]
            try:
                resp = handler(view, params, query)
                faulty = paging_faults.apply(
                    resp.body,
                    query,
                    lambda q: handler(view, params, q).body,
                    app.faults.page_totals,
                    app.faults.page_shift,
                )
                resp = replace(resp, body=faulty)  # a copy: handlers may return cached responses
            except ApiError as exc:
                resp = exc.resp()
        if mutate:
            app.mutate()
        app.count(route, resp.status)
        self._send(resp, iid, truncate=drop)

    @staticmethod
    def _retry_after(app: Emulator, status: int) -> tuple[tuple[str, str], ...]:
        mode, secs = app.faults.retry_after, app.faults.retry_after_seconds
        if status not in (429, 503) or mode == "none":
            return ()
        if mode == "seconds":
            return (("Retry-After", str(secs)),)
        return (("Retry-After", formatdate(time.time() + secs + 1, usegmt=True)),)

    def _public(self, app: Emulator, method: str, path: str, body: bytes, iid: str) -> None:
        if path == "/participants":
            if app.cfg.latency_ms:
                time.sleep(app.cfg.latency_ms / 1000)
            if method != "GET":
                resp = ApiError(405, "only GET is supported").resp()
            else:
                resp = app.participants()
                if self.headers.get("If-None-Match") == dict(resp.headers)["ETag"]:
                    resp = Resp(304, b"", headers=resp.headers)
            app.count("/participants", resp.status)
            self._send(resp, iid)
            return
        try:
            resp = self._admin(app, method, path, body)
        except ApiError as exc:
            resp = exc.resp()
        self._send(resp, iid)

    @staticmethod
    def _admin(app: Emulator, method: str, path: str, body: bytes) -> Resp:
        if path == "/__sandbox/stats" and method == "GET":
            return Resp(200, _dumps(app.stats()))
        if path == "/__sandbox/reset" and method == "POST":
            app.reset()
            return Resp(200, _dumps({"reset": True}))
        if path == "/__sandbox/ground-truth" and method == "GET":
            return Resp(200, app.ground_truth())
        if path == "/__sandbox/changes" and method == "POST":
            try:
                changes = DataChanges.parse(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                raise ApiError(400, f"invalid changes: {exc}") from None
            return Resp(200, _dumps(app.change_data(changes)))
        if path == "/__sandbox/gateway" and method == "GET":
            return Resp(200, _dumps(app.gateway.document()))
        if path == "/__sandbox/gateway" and method == "PUT":
            try:
                limit = GatewayLimit.parse(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                raise ApiError(400, f"invalid gateway limit: {exc}") from None
            app.gateway.configure(limit)
            return Resp(200, _dumps(asdict(limit)))
        if path == "/__sandbox/faults" and method == "GET":
            return Resp(200, _dumps(asdict(app.faults)))
        if path == "/__sandbox/faults" and method == "PUT":
            try:
                faults = Faults.parse(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                raise ApiError(400, f"invalid faults: {exc}") from None
            app.set_faults(faults)
            return Resp(200, _dumps(asdict(faults)))
        if path.startswith("/__sandbox/"):
            raise ApiError(405, f"{method} {path} is not supported")
        raise ApiError(404, f"no such resource: {path}")

    def _send(self, resp: Resp, iid: str, truncate: bool = False) -> None:
        server = cast(_TLSServer, self.server)
        if server.listener == "mtls":
            server.app.gateway.record(self.arrived, resp.status, self.connection_id)
        body = resp.body[: len(resp.body) // 2] if truncate else resp.body
        if truncate:
            self.close_connection = True
        lines = [
            f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Error')}",
            f"Server: {self.server_version}",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Type: {resp.content_type}",
            f"Content-Length: {len(resp.body)}",
            f"x-fapi-interaction-id: {iid}",
        ]
        lines += [f"{k}: {v}" for k, v in resp.headers]
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def _contexts(cfg: Config) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    def base() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cfg.server_cert, cfg.server_key)
        return ctx

    mtls = base()
    mtls.verify_mode = ssl.CERT_REQUIRED
    mtls.load_verify_locations(cfg.ca_cert)
    return mtls, base()


def serve(cfg: Config, stop: threading.Event) -> None:
    """Start both listeners, write the ready file, serve until ``stop`` is set, then shut down."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(cfg.ready_file)
    app = Emulator(cfg)
    mtls_ctx, public_ctx = _contexts(cfg)
    api = _TLSServer(app, "mtls", mtls_ctx, cfg.api_port)
    public = _TLSServer(app, "public", public_ctx, cfg.public_port)
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True) for s in (api, public)
    ]
    for t in threads:
        t.start()
    # Load the issuer's keys before declaring ready, so the resource server's own discovery/JWKS fetch
    # never shows up in the authorisation server's counters during a test.
    with contextlib.suppress(OSError, ValueError, KeyError):
        app.verifier.refresh_keys()
    ready = {
        "api_base_url": f"https://{cfg.host}:{api.server_address[1]}",
        "public_base_url": f"https://{cfg.host}:{public.server_address[1]}",
        "pid": os.getpid(),
    }
    tmp = cfg.ready_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(ready, fh)
    os.replace(tmp, cfg.ready_file)
    print(f"directory emulator ready: {json.dumps(ready)}", file=sys.stderr, flush=True)
    try:
        stop.wait()
    finally:
        for s in (api, public):
            s.shutdown()
            s.server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(cfg.ready_file)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", required=True, help="JSON config file")
    args = parser.parse_args(argv)
    cfg = Config.load(args.config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if cfg.exit_on_stdin_eof:  # the parent holds our stdin open; EOF means it is gone

        def watch_stdin() -> None:
            while sys.stdin.buffer.read(4096):
                pass
            stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
    serve(cfg, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
