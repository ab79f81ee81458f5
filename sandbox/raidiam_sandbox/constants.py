"""Names shared by the sandbox's authorisation server, its Directory emulator, the tests and the demo."""

from __future__ import annotations

HOST = "127.0.0.1"
"""The only address the sandbox ever binds."""

DIRECTORY_AUDIENCE = "https://directory.sandbox.invalid"
"""``aud`` of the access tokens the sandbox issues (the Directory API's resource indicator)."""

SCOPES = ("directory:software", "directory:website")

TLS_CLIENT_ID = "sandbox-tls-client"
"""Registered with ``tls_client_auth``; its transport certificate is the PKI's ``tls-client``."""

PKJ_CLIENT_ID = "sandbox-pkj-client"
"""Registered with ``private_key_jwt`` (PS256/RS256, key ``signing-rsa``, kid ``SIGNING_KEY_ID``);
its transport certificate is the PKI's ``pkj-transport``."""

PKJ_EC_CLIENT_ID = "sandbox-pkj-ec-client"
"""Registered with ``private_key_jwt`` (ES256, key ``signing-ec``, kid ``SIGNING_EC_KEY_ID``);
its transport certificate is the PKI's ``pkj-transport``."""

OTHER_CLIENT_ID = "sandbox-other-client"
"""A second ``tls_client_auth`` client with its own certificate (``other-client``), for binding tests."""

SIGNING_KEY_ID = "sandbox-signing-rsa"
SIGNING_EC_KEY_ID = "sandbox-signing-ec"
KEY_PASSPHRASE = "sandbox-passphrase"  # noqa: S105 - a throw-away test key's passphrase
"""Passphrase of the PKI's encrypted copy of the ``tls-client`` key (``tls-client-encrypted.key``)."""
