"""Certificates and keys given as a file path or as PEM text, turned into an ``ssl.SSLContext``.

OpenSSL loads a client certificate only from files. PEM text (from a secrets backend, so workers need no
files) is written to a private ``0700`` directory as ``0600`` files only for as long as OpenSSL needs to
read it, then removed, also on failure. A key is never written in clear: it is re-encrypted under a random
one-time passphrase that exists only in this process's memory, so a file left behind by a killed worker
(``SIGKILL`` leaves no chance to clean up) is useless.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import secrets
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from airflow_provider_raidiam.exceptions import CredentialError

log = logging.getLogger(__name__)

EXPIRY_WARNING = timedelta(days=30)
_PEM_MARKER = "-----BEGIN"
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


def _rewrap_pem_block(match: re.Match[str]) -> str:
    label, body = match.group(1), match.group(2)
    if ":" in body:  # legacy PEM with Proc-Type/DEK-Info headers: keep its own layout
        return match.group(0)
    data = "".join(body.split())
    lines = [data[index : index + 64] for index in range(0, len(data), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])


_PASTED_MATERIAL = re.compile(r"[A-Za-z0-9+/=\s]{64,}")


def is_pem_text(value: str) -> bool:
    """Whether a connection value holds PEM text rather than a file path."""
    return _PEM_MARKER in value


def _looks_like_material(value: str) -> bool:
    """Whether a value without a PEM header is more likely pasted key or certificate text than a path.

    Such a value must never be echoed in an error message (it may be a private key without its
    ``-----BEGIN`` line): multi-line text, very long text, or 64+ characters of only base64 alphabet.
    """
    return "\n" in value.strip() or len(value) > 1024 or _PASTED_MATERIAL.fullmatch(value.strip()) is not None


def read_material(value: str, field_name: str) -> bytes:
    """Return the PEM bytes of a connection value that is either a file path or PEM text."""
    if is_pem_text(value):
        # Secrets backends and env vars often carry PEM with literal "\n" escapes, and one-line form
        # fields lose the newlines altogether: OpenSSL needs the standard 64-column layout back.
        text = value.replace("\\n", "\n")
        return _PEM_BLOCK.sub(_rewrap_pem_block, text).strip().encode() + b"\n"
    path = Path(value).expanduser()
    try:
        return path.read_bytes()
    except OSError as error:
        raise _unreadable(value, str(path), field_name, error) from None


def _unreadable(value: str, path: str, field_name: str, error: OSError) -> CredentialError:
    """The error for a value that is not PEM text and cannot be read as a file; never echoes key material."""
    if _looks_like_material(value):
        return CredentialError(
            f"{field_name} holds text that is neither PEM (it has no '-----BEGIN ...-----' line) nor a file "
            "path; it is not shown here because it may be key material. Paste the whole PEM block, BEGIN and "
            "END lines included, or give the path of a PEM file."
        )
    if isinstance(error, FileNotFoundError):
        return CredentialError(
            f"{field_name}: file {path!r} does not exist on this worker. Give a path that exists where "
            "the task runs, or put the PEM text itself in the connection field."
        )
    if isinstance(error, IsADirectoryError):
        return CredentialError(f"{field_name}: {path!r} is a directory, not a PEM file.")
    if isinstance(error, PermissionError):
        return CredentialError(
            f"{field_name}: file {path!r} is not readable by this process (permission denied). "
            "Make it readable by the Airflow worker's user."
        )
    return CredentialError(  # e.g. ENAMETOOLONG
        f"{field_name}: the value cannot be read as a file path ({error.strerror or type(error).__name__}). "
        "Give the path of a PEM file, or the PEM text itself (BEGIN and END lines included)."
    )


def certificate_thumbprint(certificate: x509.Certificate) -> str:
    """RFC 8705 ``x5t#S256``: base64url (no padding) SHA-256 of the certificate's DER bytes."""
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class TransportCertificate:
    """What the provider needs to know about the configured transport certificate."""

    subject: str
    thumbprint: str
    not_after: datetime


@dataclass(frozen=True)
class TlsMaterial:
    """SSL contexts built once per connection and reused by every request.

    ``mtls_context`` presents the transport certificate (token and Directory API calls);
    ``server_only_context`` only verifies servers (discovery, public participants list).
    """

    server_only_context: ssl.SSLContext
    mtls_context: ssl.SSLContext | None = None
    certificate: TransportCertificate | None = field(default=None)


def load_certificate(value: str, field_name: str = "transport_cert") -> x509.Certificate:
    """Load the first certificate of a PEM file or text, checking its validity period."""
    data = read_material(value, field_name)
    try:
        certificate = x509.load_pem_x509_certificates(data)[0]
    except ValueError:
        raise CredentialError(
            f"{field_name} does not contain a PEM certificate (expected '-----BEGIN CERTIFICATE-----'). "
            "Check that the field holds the certificate, not the key or a DER/PKCS#12 file."
        ) from None
    now = datetime.now(UTC)
    subject = certificate.subject.rfc4514_string()
    if certificate.not_valid_after_utc <= now:
        raise CredentialError(
            f"{field_name} ({subject}) expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC. "
            "Issue a new transport certificate in the Directory and update the connection."
        )
    if certificate.not_valid_before_utc > now:
        raise CredentialError(
            f"{field_name} ({subject}) is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} "
            "UTC. Check the worker's clock, or wait until the certificate becomes valid."
        )
    if certificate.not_valid_after_utc - now < EXPIRY_WARNING:
        log.warning(
            "%s (%s) expires on %s UTC: renew it in the Directory soon.",
            field_name,
            subject,
            f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M}",
        )
    return certificate


def load_private_key(value: str, passphrase: str | None, field_name: str) -> PrivateKeyTypes:
    """Load a PEM private key (optionally encrypted with ``passphrase``)."""
    data = read_material(value, field_name)
    password = passphrase.encode() if passphrase else None
    try:
        return serialization.load_pem_private_key(data, password=password)
    except TypeError:
        if password is None:
            raise CredentialError(
                f"{field_name} is encrypted: put its passphrase in the connection's Password field "
                "('Private key passphrase' in the UI)."
            ) from None
        # The passphrase belongs to the other key; this one is not encrypted.
        return load_private_key(value, None, field_name)
    except ValueError:
        if b"ENCRYPTED" in data and password is not None:
            raise CredentialError(
                f"{field_name} could not be decrypted: the passphrase (connection Password) is wrong."
            ) from None
        raise CredentialError(
            f"{field_name} does not contain a PEM private key (expected '-----BEGIN PRIVATE KEY-----' or "
            "'-----BEGIN RSA/EC PRIVATE KEY-----'). Check that the field holds the key, not the certificate."
        ) from None


def load_signing_key(value: str, passphrase: str | None, algorithm: str) -> PrivateKeyTypes:
    """Load the ``private_key_jwt`` signing key and check it suits ``algorithm``."""
    key = load_private_key(value, passphrase, "signing_private_key")
    if algorithm in ("PS256", "RS256"):
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
            raise CredentialError(
                f"signing_alg {algorithm} needs an RSA signing key of at least 2048 bits; signing_private_key is "
                f"{_describe_key(key)}. Use the key of your signing certificate, or change signing_alg."
            )
    elif not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise CredentialError(
            f"signing_alg ES256 needs an EC P-256 signing key; signing_private_key is {_describe_key(key)}. "
            "Use the key of your signing certificate, or change signing_alg."
        )
    return key


def build_tls_material(
    *,
    ca_bundle: str | None,
    transport_cert: str | None,
    transport_private_key: str | None,
    passphrase: str | None,
) -> TlsMaterial:
    """Build the SSL contexts for a connection; verification is always on, TLS 1.2 minimum."""
    server_only = _server_context(ca_bundle)
    if transport_cert is None or transport_private_key is None:
        return TlsMaterial(server_only_context=server_only)

    certificate = load_certificate(transport_cert)
    key = load_private_key(transport_private_key, passphrase, "transport_private_key")
    if _public_der(key.public_key()) != _public_der(certificate.public_key()):
        raise CredentialError(
            f"transport_private_key does not match transport_cert ({certificate.subject.rfc4514_string()}): the "
            "key is for another certificate. Use the private key generated with this certificate's CSR."
        )
    mtls = _server_context(ca_bundle)
    with _files_for_openssl(transport_cert, transport_private_key, key, passphrase) as (cert_path, key_path, password):
        try:
            mtls.load_cert_chain(cert_path, key_path, password=password)
        except ssl.SSLError as error:
            raise CredentialError(
                f"OpenSSL could not load transport_cert/transport_private_key: {_ssl_reason(error)}."
            ) from None
    info = TransportCertificate(
        subject=certificate.subject.rfc4514_string(),
        thumbprint=certificate_thumbprint(certificate),
        not_after=certificate.not_valid_after_utc,
    )
    return TlsMaterial(server_only_context=server_only, mtls_context=mtls, certificate=info)


def _server_context(ca_bundle: str | None) -> ssl.SSLContext:
    """A verifying client context: the system trust store, or ONLY the configured CA bundle."""
    if ca_bundle is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        pem = read_material(ca_bundle, "ca_bundle").decode("ascii", errors="replace")
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise CredentialError(
                "ca_bundle does not contain any PEM certificate. Give the ecosystem's CA chain "
                "(root and issuing CAs) as a PEM file path or PEM text."
            )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_verify_locations(cadata=pem)
        except ssl.SSLError as error:
            raise CredentialError(
                f"ca_bundle contains a certificate OpenSSL cannot read ({_ssl_reason(error)}): check that "
                "the PEM blocks are complete and not corrupted."
            ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@contextlib.contextmanager
def _files_for_openssl(
    transport_cert: str, transport_private_key: str, key: PrivateKeyTypes, passphrase: str | None
) -> Iterator[tuple[str, str, str | None]]:
    """Yield (certificate path, key path, key password) for ``SSLContext.load_cert_chain``.

    Paths are used as they are. PEM text goes to ``0600`` files in a ``0700`` directory removed on exit;
    the key (``key``, already loaded) is written encrypted under a random one-time passphrase (PKCS#8 with
    the best encryption ``cryptography`` offers), never in clear.
    """
    if not is_pem_text(transport_cert) and not is_pem_text(transport_private_key):
        yield _expand(transport_cert), _expand(transport_private_key), passphrase
        return
    with tempfile.TemporaryDirectory(prefix="raidiam-") as directory:
        cert_path = _expand(transport_cert)
        if is_pem_text(transport_cert):
            cert_path = _write_private(directory, "transport_cert.pem", read_material(transport_cert, "transport_cert"))
        key_path, password = _expand(transport_private_key), passphrase
        if is_pem_text(transport_private_key):
            password = secrets.token_urlsafe(32)
            encrypted = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(password.encode()),
            )
            key_path = _write_private(directory, "transport_key.pem", encrypted)
        yield cert_path, key_path, password


def _expand(path: str) -> str:
    return str(Path(path).expanduser())


def _write_private(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return path


def _ssl_reason(error: ssl.SSLError) -> str:
    return str(getattr(error, "reason", None) or error)


def _public_der(public_key: object) -> bytes:
    serialize = getattr(public_key, "public_bytes", None)
    if serialize is None:
        return b""
    der: bytes = serialize(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def _describe_key(key: PrivateKeyTypes) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return f"an RSA {key.key_size}-bit key"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"an EC {key.curve.name} key"
    return f"a {type(key).__name__}"
