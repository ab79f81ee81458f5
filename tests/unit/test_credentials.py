"""Certificates and keys from file paths or PEM text, and the SSL contexts built from them."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import signal
import ssl
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from airflow_provider_raidiam import credentials
from airflow_provider_raidiam.credentials import (
    build_tls_material,
    certificate_thumbprint,
    load_certificate,
    load_private_key,
    load_signing_key,
    read_material,
)
from airflow_provider_raidiam.exceptions import ConfigurationError, CredentialError
from raidiam_sandbox.constants import KEY_PASSPHRASE
from raidiam_sandbox.pki import SandboxPki

ROOT = Path(__file__).resolve().parents[2]


def pem(path: Path) -> str:
    return path.read_text()


def certificate_numbers(pki: SandboxPki, name: str) -> rsa.RSAPublicNumbers:
    public = pki.certificate(name).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    return public.public_numbers()


def escaped(text: str) -> str:
    """PEM text the way env vars and some secrets backends carry it: one line with literal '\\n'."""
    return text.strip().replace("\n", "\\n")


def independent_thumbprint(path: Path) -> str:
    """x5t#S256 computed without the provider: DER from the PEM's base64 body, SHA-256, base64url."""
    lines = path.read_text().strip().splitlines()
    start = lines.index("-----BEGIN CERTIFICATE-----")
    end = lines.index("-----END CERTIFICATE-----")
    der = base64.b64decode("".join(lines[start + 1 : end]))
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


# -- file path vs PEM text -------------------------------------------------------------------------


def test_path_and_pem_text_and_escaped_pem_give_the_same_certificate(pki: SandboxPki) -> None:
    path = pki.cert("tls-client")

    from_path = load_certificate(str(path))
    from_text = load_certificate(pem(path))
    from_escaped = load_certificate(escaped(pem(path)))

    assert from_path == from_text == from_escaped
    assert from_path.subject.rfc4514_string() == pki.subject_dn("tls-client")


def test_escaped_pem_key_is_loaded(pki: SandboxPki) -> None:
    key = load_private_key(escaped(pem(pki.key("tls-client"))), None, "transport_private_key")

    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.public_key().public_numbers() == certificate_numbers(pki, "tls-client")


@pytest.mark.parametrize("separator", ["", " "], ids=["newlines-stripped", "newlines-as-spaces"])
def test_pem_key_pasted_into_a_single_line_field(pki: SandboxPki, separator: str) -> None:
    one_line = separator.join(pem(pki.key("tls-client")).strip().splitlines())

    key = load_private_key(one_line, None, "transport_private_key")
    material = build_tls_material(
        ca_bundle=None, transport_cert=str(pki.cert("tls-client")), transport_private_key=one_line, passphrase=None
    )

    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.public_key().public_numbers() == certificate_numbers(pki, "tls-client")
    assert material.certificate is not None


def test_read_material_expands_user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki: SandboxPki) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "cert.pem").write_bytes(pki.cert("tls-client").read_bytes())

    assert read_material("~/cert.pem", "transport_cert") == pki.cert("tls-client").read_bytes()


def test_missing_file_names_the_field_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"

    with pytest.raises(CredentialError) as caught:
        load_certificate(str(missing))

    message = str(caught.value)
    assert "transport_cert" in message
    assert str(missing) in message
    assert "does not exist on this worker" in message
    assert "PEM text" in message  # says the alternative
    assert isinstance(caught.value, ConfigurationError)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="is a directory, not a PEM file"):
        load_private_key(str(tmp_path), None, "transport_private_key")


def test_unreadable_file_says_permission_denied(
    tmp_path: Path, pki: SandboxPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(pki.key("tls-client").read_bytes())
    path.chmod(0)
    if os.geteuid() == 0:  # root reads any file: make the read fail the way it does for other users
        original = Path.read_bytes

        def read_bytes(self: Path) -> bytes:
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return original(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)

    with pytest.raises(CredentialError) as caught:
        load_private_key(str(path), None, "transport_private_key")

    assert "permission denied" in str(caught.value)
    assert "readable by the Airflow worker's user" in str(caught.value)


def test_not_pem_certificate(tmp_path: Path) -> None:
    path = tmp_path / "cert.der"
    path.write_bytes(b"\x30\x82\x01\x0a binary junk")

    with pytest.raises(CredentialError, match=r"transport_cert does not contain a PEM certificate"):
        load_certificate(str(path))


def test_key_given_where_certificate_expected(pki: SandboxPki) -> None:
    with pytest.raises(CredentialError) as caught:
        load_certificate(pem(pki.key("tls-client")))

    assert "does not contain a PEM certificate" in str(caught.value)
    assert "not the key" in str(caught.value)


def test_certificate_given_where_key_expected(pki: SandboxPki) -> None:
    with pytest.raises(CredentialError) as caught:
        load_private_key(pem(pki.cert("tls-client")), None, "transport_private_key")

    assert "transport_private_key does not contain a PEM private key" in str(caught.value)
    assert "not the certificate" in str(caught.value)


def test_chain_file_uses_the_leaf(pki: SandboxPki, extra_pki: Any) -> None:
    leaf = load_certificate(str(extra_pki.chain_cert))

    assert leaf == pki.certificate("tls-client")


# -- validity --------------------------------------------------------------------------------------


def test_expired_certificate(pki: SandboxPki) -> None:
    with pytest.raises(CredentialError) as caught:
        load_certificate(str(pki.cert("expired-client")))

    message = str(caught.value)
    assert "expired on" in message
    assert "CN=expired-client" in message
    assert "Issue a new transport certificate" in message


def test_not_yet_valid_certificate(pki: SandboxPki) -> None:
    with pytest.raises(CredentialError) as caught:
        load_certificate(str(pki.cert("not-yet-valid-client")))

    assert "is not valid before" in str(caught.value)
    assert "clock" in str(caught.value)


def test_expiring_soon_warns_but_loads(extra_pki: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=credentials.__name__):
        certificate = load_certificate(str(extra_pki.expiring_cert))

    assert certificate.subject.rfc4514_string() == "CN=expiring-soon"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == credentials.__name__]
    assert len(warnings) == 1
    assert "CN=expiring-soon" in warnings[0].getMessage()
    assert "renew it" in warnings[0].getMessage()


def test_valid_certificate_does_not_warn(pki: SandboxPki, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=credentials.__name__):
        load_certificate(str(pki.cert("tls-client")))

    assert [r for r in caplog.records if r.name == credentials.__name__] == []


# -- private keys and passphrases -------------------------------------------------------------------


def test_encrypted_key_with_right_passphrase(pki: SandboxPki, kit: Any) -> None:
    key = load_private_key(str(pki.encrypted_key), kit.KEY_PASSPHRASE, "transport_private_key")

    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.public_key().public_numbers() == certificate_numbers(pki, "tls-client")


def test_encrypted_key_without_passphrase_says_where_to_put_it(pki: SandboxPki) -> None:
    with pytest.raises(CredentialError) as caught:
        load_private_key(str(pki.encrypted_key), None, "transport_private_key")

    assert "transport_private_key is encrypted" in str(caught.value)
    assert "Password field" in str(caught.value)


@pytest.mark.parametrize("which", ["pkcs8", "traditional"])
def test_encrypted_key_with_wrong_passphrase(pki: SandboxPki, extra_pki: Any, which: str) -> None:
    path = pki.encrypted_key if which == "pkcs8" else extra_pki.traditional_encrypted_key

    with pytest.raises(CredentialError) as caught:
        load_private_key(str(path), "wrong-passphrase", "transport_private_key")

    assert "could not be decrypted" in str(caught.value)
    assert "passphrase (connection Password) is wrong" in str(caught.value)
    assert "wrong-passphrase" not in str(caught.value)


def test_passphrase_for_an_unencrypted_key_is_ignored(pki: SandboxPki) -> None:
    # One Password field serves both keys: an unencrypted one must still load when it is set.
    key = load_private_key(str(pki.key("tls-client")), "some-passphrase", "transport_private_key")

    assert isinstance(key, rsa.RSAPrivateKey)


def test_signing_key_types(pki: SandboxPki, extra_pki: Any) -> None:
    assert isinstance(load_signing_key(str(pki.signing_key("rsa")), None, "PS256"), rsa.RSAPrivateKey)
    assert isinstance(load_signing_key(str(pki.signing_key("rsa")), None, "RS256"), rsa.RSAPrivateKey)
    assert isinstance(load_signing_key(str(pki.signing_key("ec")), None, "ES256"), ec.EllipticCurvePrivateKey)


@pytest.mark.parametrize(
    ("key", "alg", "described"),
    [
        ("rsa", "ES256", "an RSA 2048-bit key"),
        ("ec", "PS256", "an EC secp256r1 key"),
        ("rsa_1024", "PS256", "an RSA 1024-bit key"),
        ("ec_p384", "ES256", "an EC secp384r1 key"),
    ],
)
def test_signing_key_not_fit_for_algorithm(pki: SandboxPki, extra_pki: Any, key: str, alg: str, described: str) -> None:
    paths = {
        "rsa": pki.signing_key("rsa"),
        "ec": pki.signing_key("ec"),
        "rsa_1024": extra_pki.rsa_1024_key,
        "ec_p384": extra_pki.ec_p384_key,
    }

    with pytest.raises(CredentialError) as caught:
        load_signing_key(str(paths[key]), None, alg)

    message = str(caught.value)
    assert f"signing_alg {alg} needs" in message
    assert described in message
    assert "change signing_alg" in message


# -- thumbprint ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tls-client", "other-client"])
def test_thumbprint_is_base64url_sha256_of_der(pki: SandboxPki, name: str) -> None:
    certificate = x509.load_pem_x509_certificate(pki.cert(name).read_bytes())

    thumbprint = certificate_thumbprint(certificate)

    assert thumbprint == independent_thumbprint(pki.cert(name))
    assert "=" not in thumbprint
    assert "+" not in thumbprint
    assert "/" not in thumbprint
    assert len(thumbprint) == 43


# -- build_tls_material ----------------------------------------------------------------------------


def test_server_only_material_has_strict_context() -> None:
    material = build_tls_material(ca_bundle=None, transport_cert=None, transport_private_key=None, passphrase=None)

    context = material.server_only_context
    assert material.mtls_context is None
    assert material.certificate is None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


@pytest.mark.parametrize("form", ["path", "pem", "escaped"])
def test_mtls_material_from_paths_or_pem_text(pki: SandboxPki, form: str) -> None:
    def value(path: Path) -> str:
        return {"path": str(path), "pem": pem(path), "escaped": escaped(pem(path))}[form]

    material = build_tls_material(
        ca_bundle=value(pki.ca_cert),
        transport_cert=value(pki.cert("tls-client")),
        transport_private_key=value(pki.key("tls-client")),
        passphrase=None,
    )

    assert material.mtls_context is not None
    assert material.mtls_context is not material.server_only_context
    for context in (material.server_only_context, material.mtls_context):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
        # The configured CA is trusted by both contexts.
        assert any(
            ca.get("subject") and ("commonName", "airflow-provider-raidiam sandbox CA") in sum(ca["subject"], ())
            for ca in context.get_ca_certs()
        )
    assert material.certificate is not None
    assert material.certificate.thumbprint == independent_thumbprint(pki.cert("tls-client"))
    assert material.certificate.subject == pki.subject_dn("tls-client")
    assert material.certificate.not_after == pki.certificate("tls-client").not_valid_after_utc


def test_mtls_material_with_encrypted_pem_key(pki: SandboxPki, kit: Any) -> None:
    material = build_tls_material(
        ca_bundle=None,
        transport_cert=pem(pki.cert("tls-client")),
        transport_private_key=pem(pki.encrypted_key),
        passphrase=kit.KEY_PASSPHRASE,
    )

    assert material.certificate is not None
    assert material.certificate.thumbprint == pki.thumbprint("tls-client")


def test_ec_transport_certificate(extra_pki: Any) -> None:
    material = build_tls_material(
        ca_bundle=None,
        transport_cert=str(extra_pki.ec_transport_cert),
        transport_private_key=str(extra_pki.ec_transport_key),
        passphrase=None,
    )

    assert material.certificate is not None
    assert material.certificate.subject == "CN=ec-transport"


def test_key_not_matching_certificate(pki: SandboxPki) -> None:
    with pytest.raises(CredentialError) as caught:
        build_tls_material(
            ca_bundle=None,
            transport_cert=str(pki.cert("tls-client")),
            transport_private_key=str(pki.key("other-client")),
            passphrase=None,
        )

    message = str(caught.value)
    assert "transport_private_key does not match transport_cert" in message
    assert "CN=tls-client" in message


def test_expired_certificate_is_refused_by_build(pki: SandboxPki) -> None:
    with pytest.raises(CredentialError, match="expired on"):
        build_tls_material(
            ca_bundle=None,
            transport_cert=str(pki.cert("expired-client")),
            transport_private_key=str(pki.key("expired-client")),
            passphrase=None,
        )


def test_ca_bundle_without_certificate(pki: SandboxPki) -> None:
    with pytest.raises(CredentialError, match="ca_bundle does not contain any PEM certificate"):
        build_tls_material(
            ca_bundle=pem(pki.key("ca")), transport_cert=None, transport_private_key=None, passphrase=None
        )


def test_corrupt_ca_bundle_is_a_credential_error() -> None:
    corrupt = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"

    with pytest.raises(CredentialError, match="ca_bundle"):
        build_tls_material(ca_bundle=corrupt, transport_cert=None, transport_private_key=None, passphrase=None)


# -- temporary files of PEM text -------------------------------------------------------------------


@pytest.fixture
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``tempfile`` at an empty directory of our own, so leftovers can be seen."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def loaded_files(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record, at the moment OpenSSL reads them, the files and modes ``load_cert_chain`` is given."""
    seen: list[dict[str, Any]] = []
    original = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        entry: dict[str, Any] = {"files": {}}
        for path in (certfile, keyfile):
            info = os.stat(path)
            entry["files"][path] = {
                "mode": stat.S_IMODE(info.st_mode),
                "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode),
                "content": Path(path).read_bytes(),
            }
        entry["password"] = password
        seen.append(entry)
        original(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    return seen


def test_pem_text_goes_to_private_files_removed_afterwards(
    pki: SandboxPki, private_tempdir: Path, loaded_files: list[dict[str, Any]]
) -> None:
    build_tls_material(
        ca_bundle=None,
        transport_cert=pem(pki.cert("tls-client")),
        transport_private_key=pem(pki.key("tls-client")),
        passphrase=None,
    )

    assert len(loaded_files) == 1
    files = loaded_files[0]["files"]
    assert len(files) == 2
    for path, info in files.items():
        assert Path(path).is_relative_to(private_tempdir)
        assert info["mode"] == 0o600, path
        assert info["dir_mode"] == 0o700, path
    contents = [info["content"] for info in files.values()]
    assert b"-----BEGIN CERTIFICATE-----" in contents[0]
    assert b"PRIVATE KEY-----" in contents[1]
    assert list(private_tempdir.iterdir()) == []


def test_mixed_path_and_pem_text_only_writes_the_text(
    pki: SandboxPki, private_tempdir: Path, loaded_files: list[dict[str, Any]]
) -> None:
    build_tls_material(
        ca_bundle=None,
        transport_cert=str(pki.cert("tls-client")),
        transport_private_key=pem(pki.key("tls-client")),
        passphrase=None,
    )

    cert_path, key_path = loaded_files[0]["files"]
    assert cert_path == str(pki.cert("tls-client"))
    assert Path(key_path).is_relative_to(private_tempdir)
    assert list(private_tempdir.iterdir()) == []


def test_paths_only_write_no_temporary_files(
    pki: SandboxPki, private_tempdir: Path, loaded_files: list[dict[str, Any]]
) -> None:
    build_tls_material(
        ca_bundle=None,
        transport_cert=str(pki.cert("tls-client")),
        transport_private_key=str(pki.key("tls-client")),
        passphrase=None,
    )

    assert list(loaded_files[0]["files"]) == [str(pki.cert("tls-client")), str(pki.key("tls-client"))]
    assert list(private_tempdir.iterdir()) == []


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain-key", "encrypted-key"])
def test_key_text_is_written_encrypted_under_a_one_time_passphrase(
    pki: SandboxPki, private_tempdir: Path, loaded_files: list[dict[str, Any]], encrypted: bool
) -> None:
    key_file, passphrase = (pki.encrypted_key, KEY_PASSPHRASE) if encrypted else (pki.key("tls-client"), None)
    original = serialization.load_pem_private_key(pki.key("tls-client").read_bytes(), None)
    original_der = original.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for _build in range(2):
        build_tls_material(
            ca_bundle=None,
            transport_cert=pem(pki.cert("tls-client")),
            transport_private_key=pem(key_file),
            passphrase=passphrase,
        )

    passwords = []
    for loaded in loaded_files:
        key_path = next(path for path in loaded["files"] if path.endswith("transport_key.pem"))
        on_disk: bytes = loaded["files"][key_path]["content"]
        password = loaded["password"]
        passwords.append(password)
        assert on_disk.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert base64.b64encode(original_der)[:64] not in on_disk.replace(b"\n", b"")
        for line in pem(pki.key("tls-client")).splitlines()[1:-1]:
            assert line.encode() not in on_disk
        with pytest.raises(TypeError, match="encrypted"):
            serialization.load_pem_private_key(on_disk, None)
        with pytest.raises(ValueError, match="password"):
            serialization.load_pem_private_key(on_disk, KEY_PASSPHRASE.encode())  # not the user's passphrase
        reloaded = serialization.load_pem_private_key(on_disk, password.encode())
        assert reloaded.private_numbers() == original.private_numbers()  # type: ignore[union-attr]
    assert len(set(passwords)) == 2, "a new passphrase every time"
    assert passphrase not in passwords
    assert list(private_tempdir.iterdir()) == []


LOAD_AND_STALL = """
import os, ssl, sys, time
from airflow_provider_raidiam.credentials import build_tls_material

def stall(self, certfile, keyfile=None, password=None):
    print(certfile, keyfile, sep="\\n", flush=True)
    time.sleep(600)  # killed long before

ssl.SSLContext.load_cert_chain = stall
build_tls_material(
    ca_bundle=None, transport_cert=os.environ["CERT_PEM"], transport_private_key=os.environ["KEY_PEM"], passphrase=None
)
"""


def test_key_file_left_by_a_killed_worker_is_useless(pki: SandboxPki, tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    environment = {
        **os.environ,
        "TMPDIR": str(temporary),
        "CERT_PEM": pem(pki.cert("tls-client")),
        "KEY_PEM": pem(pki.key("tls-client")),
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", LOAD_AND_STALL], env=environment, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert worker.stdout is not None
        cert_path, key_path = worker.stdout.readline().strip(), worker.stdout.readline().strip()
    finally:
        worker.send_signal(signal.SIGKILL)  # no chance to clean up
        worker.wait(timeout=60)
    assert worker.returncode == -signal.SIGKILL

    leftover = Path(key_path)
    assert leftover.is_relative_to(temporary)
    assert leftover.exists(), "SIGKILL leaves the file behind"
    on_disk = leftover.read_bytes()
    assert on_disk.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    for line in pem(pki.key("tls-client")).splitlines()[1:-1]:
        assert line.encode() not in on_disk
    with pytest.raises(TypeError, match="encrypted"):
        serialization.load_pem_private_key(on_disk, None)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(ssl.SSLError):
        context.load_cert_chain(cert_path, key_path, password="guessed")


def test_temporary_files_are_removed_when_openssl_fails(
    pki: SandboxPki, private_tempdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []

    def failing(self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        written.extend([certfile, keyfile])
        assert all(os.path.exists(path) for path in written)
        error = ssl.SSLError(1, "[SSL: KEY_VALUES_MISMATCH] key values mismatch")
        error.reason = "KEY_VALUES_MISMATCH"  # set by _ssl on every error it raises
        error.library = "SSL"
        raise error

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", failing)

    with pytest.raises(
        CredentialError, match="OpenSSL could not load transport_cert/transport_private_key: KEY_VALUES"
    ):
        build_tls_material(
            ca_bundle=None,
            transport_cert=pem(pki.cert("tls-client")),
            transport_private_key=pem(pki.key("tls-client")),
            passphrase=None,
        )

    assert len(written) == 2
    assert not any(os.path.exists(path) for path in written)
    assert list(private_tempdir.iterdir()) == []


def test_no_temporary_files_left_when_validation_fails(pki: SandboxPki, private_tempdir: Path) -> None:
    with pytest.raises(CredentialError):
        build_tls_material(
            ca_bundle=None,
            transport_cert=pem(pki.cert("tls-client")),
            transport_private_key=pem(pki.key("other-client")),
            passphrase=None,
        )

    assert list(private_tempdir.iterdir()) == []


def test_key_material_not_in_error_messages(pki: SandboxPki) -> None:
    key_text = pem(pki.key("other-client"))
    body_line = key_text.splitlines()[1]

    with pytest.raises(CredentialError) as caught:
        build_tls_material(
            ca_bundle=None,
            transport_cert=pem(pki.cert("tls-client")),
            transport_private_key=key_text,
            passphrase="pw-xyz",
        )

    assert body_line not in str(caught.value)
    assert "pw-xyz" not in str(caught.value)
