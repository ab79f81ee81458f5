"""Local sandbox for tests, the demo and benchmarks: a real oidc-provider authorisation server with an
mTLS listener, a Directory API emulator, and the test PKI both use. Never for production."""

from airflow_provider_raidiam.sandbox.pki import TestPki
from airflow_provider_raidiam.sandbox.runner import Sandbox, SandboxError

__all__ = ["Sandbox", "SandboxError", "TestPki"]
