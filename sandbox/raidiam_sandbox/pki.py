"""Throw-away test PKI for the sandbox: a CA, a server certificate, client certificates and signing keys.

Everything is generated locally with ``cryptography``; nothing here is fit for anything but tests.
Subject DNs are given in RFC 4514 string form (``CN=tls-client,O=...,C=GB``), which is also the form
the sandbox authorisation server compares ``tls_client_auth_subject_dn`` against.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from raidiam_sandbox.constants import KEY_PASSPHRASE, SIGNING_EC_KEY_ID, SIGNING_KEY_ID

CLIENT_NAMES: Final = ("tls-client", "other-client", "pkj-transport")
"""Valid client (transport) certificates signed by the sandbox CA, each with its own subject DN."""

BAD_CLIENT_NAMES: Final = ("expired-client", "not-yet-valid-client", "foreign-client")
"""Client certificates a correct client must refuse to use or the server must refuse to accept."""

AS_SIGNING_KEY_ID: Final = "sandbox-as-signing"
"""``kid`` of the authorisation server's own token-signing key."""

_ORGANISATION = "airflow-provider-raidiam sandbox"
_VERSION = 2  # bump when the layout changes so old state dirs are regenerated
_MIN_REMAINING = dt.timedelta(days=7)
_PRIVATE_MODE = 0o600

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return _b64url(value.to_bytes(size, "big"))


def public_jwk(key: PrivateKey, kid: str) -> dict[str, str]:
    """The public JWK (``use: sig``) of an RSA or P-256 key, without ``alg`` so that the verifier may
    accept any algorithm that fits the key type."""
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        return {"kty": "RSA", "kid": kid, "use": "sig", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
    point = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "kid": kid,
        "use": "sig",
        "crv": "P-256",
        "x": _int_b64(point.x, 32),
        "y": _int_b64(point.y, 32),
    }


def _private_rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    priv = key.private_numbers()
    return {
        **public_jwk(key, kid),
        "d": _int_b64(priv.d),
        "p": _int_b64(priv.p),
        "q": _int_b64(priv.q),
        "dp": _int_b64(priv.dmp1),
        "dq": _int_b64(priv.dmq1),
        "qi": _int_b64(priv.iqmp),
    }


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "GB"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(tmp, flags, _PRIVATE_MODE if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, _PRIVATE_MODE if private else 0o644)
    os.replace(tmp, path)


def _key_pem(key: PrivateKey, passphrase: str | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class _Issuer:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


def _make_ca(common_name: str, now: dt.datetime) -> _Issuer:
    key = _rsa()
    name = _name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Issuer(cert, key)


def _make_leaf(
    issuer: _Issuer,
    common_name: str,
    *,
    server: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _rsa()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return builder.sign(issuer.key, hashes.SHA256()), key


@dataclass(frozen=True)
class SandboxPki:
    """Paths and facts of a sandbox PKI stored as PEM files in ``directory``.

    Create one with :meth:`generate` (idempotent) or open an existing one with :meth:`load`.
    Certificates are ``<name>.pem`` and their keys ``<name>.key`` (PKCS#8, mode 0600).
    """

    __test__ = False  # not a pytest test class

    directory: Path

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def generate(cls, directory: Path | str) -> SandboxPki:
        """Create the PKI in ``directory``, or reuse the one there if it is complete and still valid."""
        pki = cls(Path(directory).resolve())
        if pki.is_valid():
            return pki
        pki.directory.mkdir(parents=True, exist_ok=True)
        pki._generate()
        return pki

    @classmethod
    def load(cls, directory: Path | str) -> SandboxPki:
        """Open an existing PKI.

        :raises FileNotFoundError: the directory does not hold a complete, current PKI.
        """
        pki = cls(Path(directory).resolve())
        if not pki.is_valid():
            raise FileNotFoundError(
                f"No complete, valid sandbox PKI in {pki.directory}; create one with SandboxPki.generate()."
            )
        return pki

    # --- paths --------------------------------------------------------------------------------

    def cert(self, name: str) -> Path:
        """Path of the certificate ``<name>.pem`` (e.g. ``tls-client``, ``server``, ``ca``)."""
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        """Path of the unencrypted private key ``<name>.key``."""
        return self.directory / f"{name}.key"

    @property
    def ca_cert(self) -> Path:
        """The sandbox CA certificate: the trust anchor for both server and client certificates."""
        return self.cert("ca")

    @property
    def ca_key(self) -> Path:
        """The sandbox CA's private key."""
        return self.key("ca")

    @property
    def server_cert(self) -> Path:
        """Server certificate for ``127.0.0.1`` and ``localhost``."""
        return self.cert("server")

    @property
    def server_key(self) -> Path:
        """Private key of :attr:`server_cert`."""
        return self.key("server")

    @property
    def foreign_ca_cert(self) -> Path:
        """A CA the sandbox does not trust (issuer of ``foreign-client``)."""
        return self.cert("foreign-ca")

    @property
    def encrypted_key(self) -> Path:
        """The ``tls-client`` key encrypted with :data:`~.constants.KEY_PASSPHRASE`."""
        return self.directory / "tls-client-encrypted.key"

    def signing_key(self, kind: Literal["rsa", "ec"] = "rsa") -> Path:
        """``private_key_jwt`` signing key: RSA 2048 (PS256/RS256) or P-256 (ES256)."""
        return self.key(f"signing-{kind}")

    def signing_key_id(self, kind: Literal["rsa", "ec"] = "rsa") -> str:
        """The ``kid`` of a signing key."""
        return SIGNING_KEY_ID if kind == "rsa" else SIGNING_EC_KEY_ID

    def signing_jwk(self, kind: Literal["rsa", "ec"] = "rsa") -> dict[str, Any]:
        """Public JWK of a signing key, as registered for the ``private_key_jwt`` clients."""
        data: dict[str, Any] = json.loads((self.directory / f"signing-{kind}.jwk.json").read_text())
        return data

    @property
    def as_signing_jwks(self) -> Path:
        """Private JWK Set (JSON) of the authorisation server's own token-signing key."""
        return self.directory / "as-signing.jwks.json"

    # --- facts --------------------------------------------------------------------------------

    def certificate(self, name: str) -> x509.Certificate:
        """The parsed certificate ``<name>.pem``."""
        return x509.load_pem_x509_certificate(self.cert(name).read_bytes())

    def subject_dn(self, name: str) -> str:
        """RFC 4514 subject DN, the value registered as ``tls_client_auth_subject_dn``."""
        return self.certificate(name).subject.rfc4514_string()

    def thumbprint(self, name: str) -> str:
        """``x5t#S256``: base64url (no padding) SHA-256 of the certificate's DER bytes."""
        der = self.certificate(name).public_bytes(serialization.Encoding.DER)
        return _b64url(hashlib.sha256(der).digest())

    def is_valid(self) -> bool:
        """Whether every file is present, current in layout and not close to expiry."""
        marker = self.directory / "pki.json"
        try:
            if json.loads(marker.read_text()).get("version") != _VERSION:
                return False
            files = [self.cert(n) for n in ("ca", "server", "foreign-ca", *CLIENT_NAMES, *BAD_CLIENT_NAMES)]
            files += [self.key(n) for n in ("ca", "server", *CLIENT_NAMES, *BAD_CLIENT_NAMES)]
            files += [
                self.encrypted_key,
                self.signing_key("rsa"),
                self.signing_key("ec"),
                self.as_signing_jwks,
            ]
            files += [self.directory / "signing-rsa.jwk.json", self.directory / "signing-ec.jwk.json"]
            if not all(f.is_file() for f in files):
                return False
            deadline = dt.datetime.now(dt.UTC) + _MIN_REMAINING
            ca = self.certificate("ca")
            for name in ("ca", "server", *CLIENT_NAMES):
                cert = self.certificate(name)
                if cert.not_valid_after_utc < deadline:
                    return False
                if name != "ca":
                    cert.verify_directly_issued_by(ca)
            return self.certificate("not-yet-valid-client").not_valid_before_utc > deadline
        except (OSError, ValueError, TypeError):
            return False

    # --- generation ---------------------------------------------------------------------------

    def _generate(self) -> None:
        now = dt.datetime.now(dt.UTC)
        year = dt.timedelta(days=365)
        ca = _make_ca("airflow-provider-raidiam sandbox CA", now)
        foreign = _make_ca("untrusted foreign CA", now)

        def save(name: str, cert: x509.Certificate, key: PrivateKey | None) -> None:
            _write(self.cert(name), cert.public_bytes(serialization.Encoding.PEM))
            if key is not None:
                _write(self.key(name), _key_pem(key), private=True)

        save("ca", ca.cert, ca.key)
        save("foreign-ca", foreign.cert, None)
        start = now - dt.timedelta(hours=1)
        save("server", *_make_leaf(ca, "localhost", server=True, not_before=start, not_after=now + year))
        for name in CLIENT_NAMES:
            cert, key = _make_leaf(ca, name, server=False, not_before=start, not_after=now + year)
            save(name, cert, key)
            if name == "tls-client":
                _write(self.encrypted_key, _key_pem(key, KEY_PASSPHRASE), private=True)
        past = now - dt.timedelta(days=30)
        save(
            "expired-client",
            *_make_leaf(ca, "expired-client", server=False, not_before=past, not_after=now - dt.timedelta(days=1)),
        )
        future = now + dt.timedelta(days=3650)
        save(
            "not-yet-valid-client",
            *_make_leaf(ca, "not-yet-valid-client", server=False, not_before=future, not_after=future + year),
        )
        save(
            "foreign-client",
            *_make_leaf(foreign, "foreign-client", server=False, not_before=start, not_after=now + year),
        )

        signing_keys: dict[str, tuple[PrivateKey, str]] = {
            "rsa": (_rsa(), SIGNING_KEY_ID),
            "ec": (ec.generate_private_key(ec.SECP256R1()), SIGNING_EC_KEY_ID),
        }
        for kind, (signer, kid) in signing_keys.items():
            _write(self.key(f"signing-{kind}"), _key_pem(signer), private=True)
            jwk = json.dumps(public_jwk(signer, kid), indent=2).encode()
            _write(self.directory / f"signing-{kind}.jwk.json", jwk)
        as_jwks = {"keys": [{**_private_rsa_jwk(_rsa(), AS_SIGNING_KEY_ID), "alg": "PS256"}]}
        _write(self.as_signing_jwks, json.dumps(as_jwks).encode(), private=True)
        _write(self.directory / "pki.json", json.dumps({"version": _VERSION}).encode())
