"""``RaidiamParticipantsTrigger``: fires when the public participants list changes.

Usable in an ``AssetWatcher`` (Airflow 3 event-driven scheduling: a DAG scheduled on the asset runs when
the list changes, not on a clock) and by :class:`~airflow_provider_raidiam.sensors.participants.
RaidiamParticipantsChangeSensor`. Each poll is one GET, conditional (``If-None-Match``) when the server
sent an ``ETag``; the body's SHA-256 is compared with the last one seen. All I/O is asyncio (``httpx``);
the only blocking work, building the SSL context once, runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.connection_fields import DEFAULT_TIMEOUT
from airflow_provider_raidiam.credentials import build_tls_material
from airflow_provider_raidiam.exceptions import ConfigurationError, RaidiamError
from airflow_provider_raidiam.limits import DEFAULT_ATTEMPT_DEADLINE, DEFAULT_MAX_RESPONSE_BYTES
from airflow_provider_raidiam.participants_watch import check_participants_url, fetch_version, new_async_client
from airflow_provider_raidiam.version_compat import BaseEventTrigger, BaseHook, TriggerEvent

DEFAULT_POLL_INTERVAL = 300.0
STATE_KEY = "raidiam_participants_sha256"
"""Asset-state key under which a watcher remembers the last digest (Airflow 3.3+), across triggerer restarts."""


@dataclass(frozen=True)
class _Target:
    url: str
    ssl_context: ssl.SSLContext
    timeout: float
    max_bytes: int
    attempt_deadline: float


class RaidiamParticipantsTrigger(BaseEventTrigger):
    """Poll the public participants list and fire a :class:`TriggerEvent` each time its content changes.

    The first read sets the baseline (no event) unless ``since_hash`` gives one; in an ``AssetWatcher`` on
    Airflow 3.3+ the last digest seen is also kept in the watched asset's state, so a change made while
    the triggerer was down still fires. The digest is remembered once the triggerer has taken the event,
    so delivery is at least once: a triggerer stopped in between fires that change again. A failed poll
    (network error, error status, a body that is not a JSON array, too large or too slow) is logged and
    retried at the next interval: it never fires.

    Event payload: ``{"participants_url", "sha256", "previous_sha256", "etag", "bytes"}``.

    :param participants_url: the list's URL; defaults to the connection's ``participants_url``.
    :param raidiam_conn_id: a ``raidiam`` connection, for ``participants_url``, ``ca_bundle`` and ``timeout``.
    :param ca_bundle: CA file path or PEM text to trust instead of the system store (or the connection's).
    :param poll_interval: seconds between polls.
    :param since_hash: the digest to compare the first read with (e.g. ``sha256`` of a previous event).
    :param timeout: seconds a connect or read may wait (default: the connection's, else 30).
    :param max_bytes: the largest body accepted, after decompression (default: the connection's
        ``max_response_bytes``, else 64 MiB).
    :param attempt_deadline: seconds one poll may take in all (default: the connection's, else 120).
    """

    def __init__(
        self,
        *,
        participants_url: str | None = None,
        raidiam_conn_id: str | None = None,
        ca_bundle: str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        since_hash: str | None = None,
        timeout: float | None = None,
        max_bytes: int | None = None,
        attempt_deadline: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if participants_url is None and raidiam_conn_id is None:
            raise ConfigurationError("RaidiamParticipantsTrigger needs participants_url or raidiam_conn_id.")
        if participants_url is not None:
            check_participants_url(participants_url)
        for name, value in (
            ("poll_interval", poll_interval),
            ("timeout", timeout),
            ("attempt_deadline", attempt_deadline),
        ):
            if value is not None and (isinstance(value, bool) or not 0 < value < math.inf):
                raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}.")
        if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
            raise ConfigurationError(f"max_bytes must be a positive integer, got {max_bytes!r}.")
        self.participants_url = participants_url
        self.raidiam_conn_id = raidiam_conn_id
        self.ca_bundle = ca_bundle
        self.poll_interval = float(poll_interval)
        self.since_hash = since_hash
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.attempt_deadline = attempt_deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and keyword arguments (configuration only, so a watcher's identity is stable)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "participants_url": self.participants_url,
                "raidiam_conn_id": self.raidiam_conn_id,
                "ca_bundle": self.ca_bundle,
                "poll_interval": self.poll_interval,
                "since_hash": self.since_hash,
                "timeout": self.timeout,
                "max_bytes": self.max_bytes,
                "attempt_deadline": self.attempt_deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll forever; yield one event per change."""
        target = await self._target()
        url = target.url
        seen = self.since_hash or await self._remembered()
        etag: str | None = None
        async with new_async_client(target.ssl_context, target.timeout) as client:
            while True:
                try:
                    version = await fetch_version(
                        client, url, etag=etag, max_bytes=target.max_bytes, deadline=target.attempt_deadline
                    )
                except (RaidiamError, httpx.HTTPError) as error:
                    self.log.warning("Participants poll failed (%s); trying again in %.0fs", error, self.poll_interval)
                else:
                    if version is not None:
                        etag = version.etag
                        if seen is None:
                            self.log.info("Watching %s (sha256 %s, %d bytes)", url, version.digest, version.size)
                        elif version.digest != seen:
                            self.log.info("%s changed: sha256 %s -> %s", url, seen, version.digest)
                            yield TriggerEvent(  # type: ignore[no-untyped-call]
                                {
                                    "participants_url": url,
                                    "sha256": version.digest,
                                    "previous_sha256": seen,
                                    "etag": version.etag,
                                    "bytes": version.size,
                                }
                            )
                        if version.digest != seen:
                            seen = version.digest
                            await self._remember(seen)
                await asyncio.sleep(self.poll_interval)

    async def _target(self) -> _Target:
        """Where and how to poll: the connection's values unless the trigger's own are given."""
        url, ca_bundle = self.participants_url, self.ca_bundle
        timeout, max_bytes, deadline = self.timeout, self.max_bytes, self.attempt_deadline
        if self.raidiam_conn_id is not None:
            settings = RaidiamSettings.from_connection(await _connection(self.raidiam_conn_id))
            url = url or settings.participants_url
            ca_bundle = ca_bundle or settings.ca_bundle
            timeout = timeout or settings.timeout
            max_bytes = max_bytes or settings.max_response_bytes
            deadline = deadline or settings.attempt_deadline
        if url is None:
            raise ConfigurationError(
                f"No participants URL: set participants_url on the trigger or on connection {self.raidiam_conn_id!r}."
            )
        # Building the SSL context reads files: a worker thread, so the triggerer's event loop never waits.
        material = await asyncio.to_thread(
            build_tls_material, ca_bundle=ca_bundle, transport_cert=None, transport_private_key=None, passphrase=None
        )
        return _Target(
            url=check_participants_url(url),
            ssl_context=material.server_only_context,
            timeout=timeout or DEFAULT_TIMEOUT,
            max_bytes=max_bytes or DEFAULT_MAX_RESPONSE_BYTES,
            attempt_deadline=deadline or DEFAULT_ATTEMPT_DEADLINE,
        )

    async def _remembered(self) -> str | None:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return None
        value = await store.aget(STATE_KEY)
        return value if isinstance(value, str) else None

    async def _remember(self, digest: str) -> None:
        store = getattr(self, "asset_state_store", None)
        if store is not None:
            await store.aset(STATE_KEY, digest)


async def _connection(conn_id: str) -> Any:
    """The connection, fetched without blocking the event loop (older task SDKs lack ``aget_connection``)."""
    aget = getattr(BaseHook, "aget_connection", None)
    if aget is not None:
        return await aget(conn_id)
    return await asyncio.to_thread(BaseHook.get_connection, conn_id)
