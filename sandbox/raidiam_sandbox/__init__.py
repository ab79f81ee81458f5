"""Local sandbox for tests, the demo and benchmarks: a real oidc-provider authorisation server with an
mTLS listener, a Directory API emulator, and the test PKI both use. Never for production."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raidiam_sandbox.pki import SandboxPki
    from raidiam_sandbox.runner import Sandbox, SandboxError

__all__ = ["Sandbox", "SandboxError", "SandboxPki"]

# Imported on first use: pytest loads this package's plugin before coverage starts measuring.
_HOMES = {
    "Sandbox": "raidiam_sandbox.runner",
    "SandboxError": "raidiam_sandbox.runner",
    "SandboxPki": "raidiam_sandbox.pki",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
