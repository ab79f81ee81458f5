"""``RaidiamParticipantsChangeSensor``: wait, deferred, until the public participants list changes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_raidiam.triggers.participants import DEFAULT_POLL_INTERVAL, RaidiamParticipantsTrigger
from airflow_provider_raidiam.version_compat import BaseSensorOperator, Context


class RaidiamParticipantsChangeSensor(BaseSensorOperator):
    """Wait until the participants list differs from ``since_hash`` (or from what it was when the sensor started).

    Always deferrable: the waiting happens in the triggerer (:class:`RaidiamParticipantsTrigger`), not in a
    worker slot. Returns the trigger's event: ``{"participants_url", "sha256", "previous_sha256", "etag",
    "bytes"}`` (pass ``sha256`` as the next run's ``since_hash`` to miss no change between runs). The
    sensor's ``timeout`` bounds the wait (then the task fails, or is skipped with ``soft_fail``).

    :param participants_url: the list's URL; defaults to the connection's ``participants_url``. (templated)
    :param raidiam_conn_id: a ``raidiam`` connection, for ``participants_url``, ``ca_bundle`` and ``timeout``.
    :param ca_bundle: CA file path or PEM text to trust instead of the system store.
    :param since_hash: the SHA-256 to compare with, e.g. from a previous run's result. (templated)
    :param poll_interval: seconds between polls (``poke_interval`` is not used).
    """

    template_fields: Sequence[str] = ("participants_url", "raidiam_conn_id", "since_hash")

    def __init__(
        self,
        *,
        participants_url: str | None = None,
        raidiam_conn_id: str | None = None,
        ca_bundle: str | None = None,
        since_hash: str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.participants_url = participants_url
        self.raidiam_conn_id = raidiam_conn_id
        self.ca_bundle = ca_bundle
        self.since_hash = since_hash
        self.poll_interval = poll_interval

    def execute(self, context: Context) -> None:
        trigger = RaidiamParticipantsTrigger(
            participants_url=self.participants_url or None,
            raidiam_conn_id=self.raidiam_conn_id or None,
            ca_bundle=self.ca_bundle,
            since_hash=self.since_hash or None,
            poll_interval=self.poll_interval,
        )
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: log and return the change."""
        self.log.info("%s changed: sha256 %s", event["participants_url"], event["sha256"])
        return event
