"""The sandbox test PKI: files, certificate properties, idempotency."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from raidiam_sandbox.constants import KEY_PASSPHRASE, SIGNING_EC_KEY_ID, SIGNING_KEY_ID
from raidiam_sandbox.pki import BAD_CLIENT_NAMES, CLIENT_NAMES, SandboxPki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SandboxPki:
    return SandboxPki.generate(tmp_path_factory.mktemp("pki"))


def _eku(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _public_der(key: object) -> bytes:
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_generate_is_idempotent_and_load_reads_it(pki: SandboxPki) -> None:
    again = SandboxPki.generate(pki.directory)
    assert again.thumbprint("tls-client") == pki.thumbprint("tls-client")
    assert SandboxPki.load(pki.directory).ca_cert == pki.ca_cert


def test_load_refuses_an_incomplete_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        SandboxPki.load(tmp_path)


def test_missing_file_triggers_regeneration(tmp_path: Path) -> None:
    first = SandboxPki.generate(tmp_path)
    before = first.thumbprint("ca")
    first.key("other-client").unlink()
    assert not first.is_valid()
    second = SandboxPki.generate(tmp_path)
    assert second.is_valid()
    assert second.thumbprint("ca") != before


def test_private_keys_are_owner_only(pki: SandboxPki) -> None:
    keys = [pki.key(n) for n in ("ca", "server", *CLIENT_NAMES, *BAD_CLIENT_NAMES)]
    keys += [pki.encrypted_key, pki.signing_key("rsa"), pki.signing_key("ec"), pki.as_signing_jwks]
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_server_certificate(pki: SandboxPki) -> None:
    cert = pki.certificate("server")
    cert.verify_directly_issued_by(pki.certificate("ca"))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.IPv4Address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert _eku(cert) == {ExtendedKeyUsageOID.SERVER_AUTH}


def test_client_certificates(pki: SandboxPki) -> None:
    ca = pki.certificate("ca")
    dns = {pki.subject_dn(name) for name in CLIENT_NAMES}
    assert len(dns) == len(CLIENT_NAMES)
    for name in CLIENT_NAMES:
        cert = pki.certificate(name)
        cert.verify_directly_issued_by(ca)
        assert _eku(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}
        assert pki.subject_dn(name).startswith(f"CN={name},")
        key = serialization.load_pem_private_key(pki.key(name).read_bytes(), None)
        assert _public_der(key) == cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def test_bad_input_fixtures(pki: SandboxPki) -> None:
    now = dt.datetime.now(dt.UTC)
    assert pki.certificate("expired-client").not_valid_after_utc < now
    assert pki.certificate("not-yet-valid-client").not_valid_before_utc > now
    foreign = pki.certificate("foreign-client")
    foreign.verify_directly_issued_by(x509.load_pem_x509_certificate(pki.foreign_ca_cert.read_bytes()))
    with pytest.raises((InvalidSignature, ValueError)):
        foreign.verify_directly_issued_by(pki.certificate("ca"))


def test_encrypted_key_needs_the_passphrase(pki: SandboxPki) -> None:
    data = pki.encrypted_key.read_bytes()
    assert b"ENCRYPTED" in data
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(data, None)
    key = serialization.load_pem_private_key(data, KEY_PASSPHRASE.encode())
    plain = serialization.load_pem_private_key(pki.key("tls-client").read_bytes(), None)
    assert _public_der(key) == _public_der(plain)


def test_thumbprint_is_b64url_sha256_of_der(pki: SandboxPki) -> None:
    der = pki.certificate("tls-client").public_bytes(serialization.Encoding.DER)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert pki.thumbprint("tls-client") == expected
    assert "=" not in expected


def test_signing_jwks_match_the_keys(pki: SandboxPki) -> None:
    rsa_jwk = pki.signing_jwk("rsa")
    assert (rsa_jwk["kty"], rsa_jwk["kid"]) == ("RSA", SIGNING_KEY_ID)
    rsa_key = serialization.load_pem_private_key(pki.signing_key("rsa").read_bytes(), None)
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    assert rsa_key.key_size == 2048
    n = int.from_bytes(base64.urlsafe_b64decode(rsa_jwk["n"] + "=="), "big")
    assert n == rsa_key.public_key().public_numbers().n

    ec_jwk = pki.signing_jwk("ec")
    assert (ec_jwk["kty"], ec_jwk["crv"], ec_jwk["kid"]) == ("EC", "P-256", SIGNING_EC_KEY_ID)
    ec_key = serialization.load_pem_private_key(pki.signing_key("ec").read_bytes(), None)
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    x = int.from_bytes(base64.urlsafe_b64decode(ec_jwk["x"] + "=="), "big")
    assert x == ec_key.public_key().public_numbers().x
    assert pki.signing_key_id("ec") == SIGNING_EC_KEY_ID


def test_authorisation_server_signing_key_is_a_private_jwk(pki: SandboxPki) -> None:
    (key,) = json.loads(pki.as_signing_jwks.read_text())["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "PS256"
    assert {"d", "p", "q", "dp", "dq", "qi"} <= key.keys()
