"""The Directory API emulator, started as a subprocess with a throw-away PKI and a stub issuer.

The stub issuer (a tiny TLS ``http.server``) serves discovery + JWKS for a local RSA key; tokens are
minted here with pyjwt. The real oidc-provider sandbox is wired in by the sandbox runner.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from raidiam_sandbox.dataset import build_dataset

pytestmark = pytest.mark.integration

SEED = 1234
ORGS = 60
AUDIENCE = "https://directory.sandbox.invalid"
REPO = Path(__file__).resolve().parents[2]


# --- throw-away PKI ----------------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_a: tuple[str, str]
    client_b: tuple[str, str]
    thumb_a: str
    thumb_b: str


def _thumb(cert: x509.Certificate) -> str:
    der = cert.public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def _make_pki(d: Path) -> Pki:
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emulator test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(name: str, server: bool) -> tuple[Path, Path, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if server:
            import ipaddress

            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_path, key_path = d / f"{name}.pem", d / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path, cert

    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_cert, server_key, _ = leaf("server", True)
    a_cert, a_key, a = leaf("client-a", False)
    b_cert, b_key, b = leaf("client-b", False)
    return Pki(
        d / "ca.pem",
        server_cert,
        server_key,
        (str(a_cert), str(a_key)),
        (str(b_cert), str(b_key)),
        _thumb(a),
        _thumb(b),
    )


# --- stub issuer (discovery + JWKS) ------------------------------------------------------------


class _Issuer:
    def __init__(self, pki: Pki) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-signing-key"
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "PS256"})
        self.jwks = {"keys": [jwk]}
        self.hits: Counter[str] = Counter()
        issuer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.hits[self.path] += 1
                body: dict[str, Any]
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                elif self.path == "/jwks":
                    body = issuer.jwks
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.server_cert, pki.server_key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, thumb: str | None, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "sandbox-tls-client",
            "client_id": "sandbox-tls-client",
            "scope": "directory:software",
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
            "cnf": {"x5t#S256": thumb},
        }
        key: Any = overrides.pop("key", self.key)
        kid = overrides.pop("kid", self.kid)
        alg = overrides.pop("alg", "PS256")
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


# --- emulator process --------------------------------------------------------------------------


@dataclass
class Env:
    pki: Pki
    issuer: _Issuer
    api: str
    public: str
    proc: subprocess.Popen[bytes]
    ready_file: Path

    def session(self, cert: tuple[str, str] | None = None, token: str | None = None) -> requests.Session:
        s = requests.Session()
        s.trust_env = False  # else REQUESTS_CA_BUNDLE silently overrides Session.verify
        s.verify = str(self.pki.ca)
        s.cert = cert or self.pki.client_a
        s.headers["Authorization"] = f"Bearer {token or self.issuer.token(self.pki.thumb_a)}"
        return s

    def admin(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.pki.ca)
        return s


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    d = tmp_path_factory.mktemp("emulator")
    pki = _make_pki(d)
    issuer = _Issuer(pki)
    ready = d / "ready.json"
    config = {
        "host": "127.0.0.1",
        "server_cert": str(pki.server_cert),
        "server_key": str(pki.server_key),
        "ca_cert": str(pki.ca),
        "issuer": issuer.url,
        "audience": AUDIENCE,
        "seed": SEED,
        "organisations": ORGS,
        "latency_ms": 0,
        "ready_file": str(ready),
    }
    (d / "config.json").write_text(json.dumps(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "raidiam_sandbox.directory_api", "--config", str(d / "config.json")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, "emulator exited during start-up"
        assert time.monotonic() < deadline, "emulator did not become ready"
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    assert info["pid"] == proc.pid
    yield Env(pki, issuer, info["api_base_url"], info["public_base_url"], proc, ready)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    issuer.httpd.shutdown()


@pytest.fixture(autouse=True)
def _reset(env: Env) -> None:
    r = env.admin().post(env.public + "/__sandbox/reset")
    assert r.status_code == 200


def _truth(env: Env) -> dict[str, Any]:
    r = env.admin().get(env.public + "/__sandbox/ground-truth")
    assert r.status_code == 200
    return dict(r.json())


def _read_all(s: requests.Session, url: str, size: int, **params: Any) -> tuple[list[dict[str, Any]], list[int]]:
    items: list[dict[str, Any]] = []
    totals = []
    page = 0
    while True:
        r = s.get(url, params={"page": page, "size": size, **params})
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["content"]
        totals.append(body["totalSize"])
        if page >= body["totalPages"] - 1:
            return items, totals
        page += 1


# --- tests -------------------------------------------------------------------------------------


def test_ground_truth_matches_in_process_dataset(env: Env) -> None:
    assert _truth(env) == build_dataset(SEED, ORGS).ground_truth()


def test_paging_envelope_and_counts(env: Env) -> None:
    s = env.session()
    r = s.get(env.api + "/organisations", params={"page": 1, "size": 7})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert set(body) == {
        "content",
        "empty",
        "numberOfElements",
        "offset",
        "pageNumber",
        "pageable",
        "size",
        "totalPages",
        "totalSize",
    }
    assert body["pageNumber"] == 1
    assert body["offset"] == 7
    assert body["size"] == 7
    assert body["numberOfElements"] == 7
    assert body["totalSize"] == ORGS
    assert body["totalPages"] == math.ceil(ORGS / 7)
    assert body["empty"] is False
    assert body["pageable"]["sort"]["orderBy"][0]["property"] == "OrganisationId"
    truth = _truth(env)
    orgs, _ = _read_all(s, env.api + "/organisations", 11)
    assert [o["OrganisationId"] for o in orgs] == truth["organisations"]["ids"]
    active, _ = _read_all(s, env.api + "/organisations", 50, hideInactive="true")
    assert sorted(o["OrganisationId"] for o in active) == truth["active_organisations"]["ids"]
    past_end = s.get(env.api + "/organisations", params={"page": 99, "size": 10}).json()
    assert past_end["content"] == []
    assert past_end["empty"] is True
    assert past_end["totalSize"] == ORGS
    by_name = s.get(env.api + "/organisations", params={"size": "500", "sort": "OrganisationName,desc"}).json()
    names = [o["OrganisationName"] for o in by_name["content"]]
    assert names == sorted(names, reverse=True)


def test_nested_resources_match_ground_truth(env: Env) -> None:
    s = env.session()
    truth = _truth(env)
    seen: dict[str, list[str]] = {
        k: [] for k in ("as", "res", "ep", "asc", "ss", "ssc", "ssk", "ok", "contacts", "dc", "rc")
    }
    for org_id in truth["organisations"]["ids"]:
        base = f"{env.api}/organisations/{org_id}"
        one = s.get(base).json()
        assert one["OrgDetails"]["OrganisationId"] == org_id
        assert "TnCSigned" in one["TncDetails"]
        servers = s.get(base + "/authorisationservers").json()
        for srv in servers:
            seen["as"].append(srv["AuthorisationServerId"])
            seen["asc"] += [c["CertificationId"] for c in srv["AuthorisationServerCertifications"]]
            for res in srv["ApiResources"]:
                seen["res"].append(res["ApiResourceId"])
                seen["ep"] += [e["ApiDiscoveryId"] for e in res["ApiDiscoveryEndpoints"]]
        for ss in s.get(base + "/softwarestatements").json():
            seen["ss"].append(ss["SoftwareStatementId"])
            seen["ssc"] += [c["CertificationId"] for c in ss["SoftwareStatementCertifications"]]
            r = s.get(f"{base}/softwarestatements/{ss['SoftwareStatementId']}/certificates")
            assert r.headers["Content-Type"] == "application/jwk-set+json"
            seen["ssk"] += [c["kid"] for c in r.json()]
        seen["ok"] += [c["kid"] for c in s.get(base + "/certificates").json()]
        contacts, _ = _read_all(s, base + "/contacts", 2)
        seen["contacts"] += [c["ContactId"] for c in contacts]
        claims, _ = _read_all(s, base + "/authoritydomainclaims", 50)
        seen["dc"] += [c["OrganisationAuthorityDomainClaimId"] for c in claims]
        seen["rc"] += [c["OrganisationAuthorityClaimId"] for c in s.get(base + "/authorityclaims").json()]
    for mine, key in [
        ("as", "authorisation_servers"),
        ("res", "api_resources"),
        ("ep", "api_discovery_endpoints"),
        ("asc", "authorisation_server_certifications"),
        ("ss", "software_statements"),
        ("ssc", "software_statement_certifications"),
        ("ssk", "software_statement_certificates"),
        ("ok", "organisation_certificates"),
        ("contacts", "contacts"),
        ("dc", "org_domain_claims"),
        ("rc", "org_domain_role_claims"),
    ]:
        assert sorted(seen[mine]) == truth[key]["ids"], key


def test_single_items_and_certificates(env: Env) -> None:
    s = env.session()
    ds = build_dataset(SEED, ORGS)
    org = next(
        o
        for o in ds.organisations
        if ds.authorisation_servers[o["OrganisationId"]]
        and ds.authorisation_servers[o["OrganisationId"]][0]["ApiResources"]
    )
    oid = org["OrganisationId"]
    srv = ds.authorisation_servers[oid][0]
    res = srv["ApiResources"][0]
    base = f"{env.api}/organisations/{oid}/authorisationservers/{srv['AuthorisationServerId']}"
    assert s.get(base).json()["AuthorisationServerId"] == srv["AuthorisationServerId"]
    assert s.get(f"{base}/apiresources/{res['ApiResourceId']}").json() == res
    assert (
        s.get(f"{base}/apiresources/{res['ApiResourceId']}/apidiscoveryendpoints").json()
        == res["ApiDiscoveryEndpoints"]
    )
    assert s.get(f"{base}/certifications").json() == srv["AuthorisationServerCertifications"]
    ss = ds.software_statements[next(k for k, v in ds.software_statements.items() if v)][0]
    ss_base = f"{env.api}/organisations/{ss['OrganisationId']}/softwarestatements/{ss['SoftwareStatementId']}"
    certs = s.get(ss_base + "/certificates").json()
    transport = s.get(ss_base + "/certificates/rtstransport").json()
    assert transport
    assert all(c["keyType"] == "rtstransport" for c in transport)
    one = s.get(f"{ss_base}/certificates/rtstransport/{transport[0]['kid']}")
    assert one.headers["Content-Type"] == "application/jwk+json"
    assert one.json() == transport[0]
    assert s.get(ss_base + "/certificates/nonsense").status_code == 400
    for c in certs:
        der = base64.b64decode(c["x5c"][0])
        cert = x509.load_der_x509_certificate(der)
        assert cert.not_valid_after_utc == datetime.fromisoformat(c["ExpiryDateTime"]).replace(microsecond=0)
        assert c["x5thashS256"] == base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert s.get(env.api + "/references/authorities").json() == ds.authorities
    roles = s.get(env.api + "/references/authorisationdomainroles", params={"size": 2}).json()
    assert roles["totalSize"] == len(ds.authorisation_domain_roles)
    assert len(roles["content"]) == 2
    domains = s.get(env.api + "/references/authorisationdomains").json()
    assert [d["AuthorisationDomainName"] for d in domains["content"]] == sorted(
        d["AuthorisationDomainName"] for d in ds.authorisation_domains
    )


def test_errors_and_interaction_id(env: Env) -> None:
    s = env.session()
    r = s.get(env.api + "/organisations/does-not-exist/authorisationservers")
    assert r.status_code == 404
    assert isinstance(r.json()["errors"][0], str)
    assert r.headers["x-fapi-interaction-id"]
    bad: list[dict[str, str | int]] = [{"size": 0}, {"size": 50001}, {"page": -1}, {"page": "x"}, {"sort": "Nope"}]
    for params in bad:
        r = s.get(env.api + "/organisations", params=params)
        assert r.status_code == 400, params
        assert r.json()["errors"]
    iid = str(uuid.uuid4())
    r = s.get(env.api + "/references/authorities", headers={"x-fapi-interaction-id": iid})
    assert r.headers["x-fapi-interaction-id"] == iid
    assert env.admin().get(env.public + "/participants").headers["x-fapi-interaction-id"]


def test_participants_public(env: Env) -> None:
    r = env.admin().get(env.public + "/participants")  # no client certificate, no token
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body, list)
    truth = _truth(env)
    assert sorted(p["OrganisationId"] for p in body) == truth["participants"]["ids"]
    assert all(p["Status"] == "Active" and p["AuthorisationServers"] and "Tags" not in p and "Tag" in p for p in body)
    assert (
        sorted(r["ApiResourceId"] for p in body for a in p["AuthorisationServers"] for r in a["ApiResources"])
        == truth["participant_api_resources"]["ids"]
    )
    # the protected API is not reachable without a client certificate
    with pytest.raises(requests.exceptions.SSLError):
        env.admin().get(env.api + "/organisations")


def test_token_bound_to_another_certificate_is_refused(env: Env) -> None:
    token_for_a = env.issuer.token(env.pki.thumb_a)
    r = env.session(cert=env.pki.client_b, token=token_for_a).get(env.api + "/organisations")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token", error_description="')
    assert "different client certificate" in r.json()["errors"][0]
    assert (
        env.session(cert=env.pki.client_b, token=env.issuer.token(env.pki.thumb_b))
        .get(env.api + "/organisations")
        .status_code
        == 200
    )


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"aud": "https://someone-else.invalid"}, "audience"),
        ({"iss": "https://wrong-issuer.invalid"}, "issuer"),
        ({"scope": "openid payments"}, "scope"),
        ({"cnf": None}, "not certificate-bound"),
        ({"key": rsa.generate_private_key(public_exponent=65537, key_size=2048)}, "signature"),
        ({"kid": "unknown-kid"}, "unknown key id"),
        ({"alg": "HS256", "key": "x" * 32}, "unsupported alg"),
    ],
)
def test_bad_tokens_are_refused(env: Env, overrides: dict[str, Any], reason: str) -> None:
    token = env.issuer.token(env.pki.thumb_a, **overrides)
    r = env.session(token=token).get(env.api + "/organisations")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert reason.lower() in r.json()["errors"][0].lower()
    stats = env.admin().get(env.public + "/__sandbox/stats").json()
    assert stats["rejected_tokens"] == 1
    assert stats["requests_by_status"] == {"401": 1}


def test_missing_token_is_refused(env: Env) -> None:
    s = env.session()
    del s.headers["Authorization"]
    r = s.get(env.api + "/organisations")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def _statuses(env: Env, n: int) -> list[int]:
    s = env.session()
    out = []
    for _ in range(n):
        try:
            out.append(s.get(env.api + "/references/authorities").status_code)
        except requests.exceptions.RequestException:
            out.append(-1)
    return out


def test_faults_fire_at_their_rates_and_replay_by_seed(env: Env) -> None:
    admin = env.admin()
    faults = {"seed": 99, "error_rate": 0.2, "rate_limit_rate": 0.1, "retry_after": "seconds"}
    assert admin.put(env.public + "/__sandbox/faults", json=faults).status_code == 200
    assert admin.get(env.public + "/__sandbox/faults").json()["error_rate"] == 0.2
    first = _statuses(env, 400)
    counts = Counter(first)
    assert 20 <= counts[429] <= 65, counts  # expected 40
    assert 45 <= sum(counts[c] for c in (500, 502, 503, 504)) <= 105, counts  # expected 0.9 * 0.2 * 400 = 72
    assert {500, 502, 503, 504} <= set(counts)
    stats = admin.get(env.public + "/__sandbox/stats").json()
    assert stats["faults_injected"]["429"] == counts[429]
    admin.post(env.public + "/__sandbox/reset")
    admin.put(env.public + "/__sandbox/faults", json=faults)
    assert _statuses(env, 400) == first
    r = env.session().get(env.api + "/references/authorities")
    while r.status_code != 429:
        r = env.session().get(env.api + "/references/authorities")
    assert r.headers["Retry-After"] == "1"
    assert admin.put(env.public + "/__sandbox/faults", json={"error_rate": 2}).status_code == 400
    assert admin.put(env.public + "/__sandbox/faults", json={"bogus": 1}).status_code == 400


def test_http_date_retry_after(env: Env) -> None:
    env.admin().put(env.public + "/__sandbox/faults", json={"rate_limit_rate": 1, "retry_after": "http-date"})
    r = env.session().get(env.api + "/organisations")
    assert r.status_code == 429
    assert r.headers["Retry-After"].endswith("GMT")


def test_drop_truncates_the_body_and_closes(env: Env) -> None:
    env.admin().put(env.public + "/__sandbox/faults", json={"drop_rate": 1.0})
    ctx = ssl.create_default_context(cafile=str(env.pki.ca))
    ctx.load_cert_chain(*env.pki.client_a)
    port = int(env.api.rsplit(":", 1)[1])
    token = env.issuer.token(env.pki.thumb_a)
    with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(
            f"GET /organisations?size=20 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    length = int(next(h.split(":", 1)[1] for h in lines if h.lower().startswith("content-length")))
    assert len(body) == length // 2 < length
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        env.session().get(env.api + "/organisations")
    assert env.admin().get(env.public + "/__sandbox/stats").json()["faults_injected"]["drop"] == 2


def test_mutation_moves_total_size_during_a_paged_read(env: Env) -> None:
    admin = env.admin()
    admin.put(env.public + "/__sandbox/faults", json={"mutate_after_requests": 2})
    _, totals = _read_all(env.session(), env.api + "/organisations", 10)
    assert totals[:2] == [ORGS, ORGS]
    assert totals[-1] == ORGS + 1
    truth = _truth(env)
    assert truth["organisations"]["count"] == ORGS + 1
    assert truth["meta"]["mutations"] == 1
    assert admin.get(env.public + "/__sandbox/faults").json()["mutate_after_requests"] is None
    new = set(truth["organisations"]["ids"]) - set(build_dataset(SEED, ORGS).ground_truth()["organisations"]["ids"])
    assert new <= set(truth["participants"]["ids"])
    assert len(new) == 1
    admin.post(env.public + "/__sandbox/reset")
    assert _truth(env)["organisations"]["count"] == ORGS


def test_handshakes_counted_per_connection(env: Env) -> None:
    admin = env.admin()
    admin.post(env.public + "/__sandbox/reset")  # on this admin connection: public handshakes now 0
    s = env.session()
    for _ in range(5):
        assert s.get(env.api + "/references/authorities").status_code == 200
    stats = admin.get(env.public + "/__sandbox/stats").json()
    assert stats["tls_handshakes"] == {"mtls": 1, "public": 0}
    assert stats["requests"] == 5
    assert stats["tokens_seen"] == 1
    assert stats["requests_by_route"] == {"/references/authorities": 5}
    env.session().get(env.api + "/organisations/x/contacts")
    stats = admin.get(env.public + "/__sandbox/stats").json()
    assert stats["tls_handshakes"]["mtls"] == 2
    assert stats["tokens_seen"] == 2
    assert stats["requests_by_route"]["/organisations/{OrganisationId}/contacts"] == 1


def test_clients_paged_and_filtered(env: Env) -> None:
    s = env.session()
    truth = _truth(env)
    everything, _ = _read_all(s, env.api + "/clients", 13)
    assert sorted(c["client_id"] for c in everything) == truth["clients"]["ids"]
    cut = sorted(c["last_updated"] for c in everything)[len(everything) // 2]
    newer, _ = _read_all(s, env.api + "/clients", 50, startDate=cut)
    older, _ = _read_all(s, env.api + "/clients", 50, endDate=cut)
    assert len(newer) + len(older) == len(everything)
    assert all(c["last_updated"] >= cut for c in newer)
    active, _ = _read_all(s, env.api + "/clients", 50, status="Active")
    assert {c["status"] for c in active} == {"Active"}
    assert s.get(env.api + "/clients", params={"startDate": "yesterday"}).status_code == 400


def test_sigterm_stops_cleanly(env: Env) -> None:
    # last test in the module: stop the process and check it exits 0 and removes its ready file
    env.proc.send_signal(signal.SIGTERM)
    assert env.proc.wait(timeout=20) == 0
    assert not env.ready_file.exists()
    with contextlib.suppress(Exception):
        env.admin().get(env.public + "/__sandbox/stats", timeout=2)
