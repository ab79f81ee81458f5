"""The Directory emulator's API gateway rate limit, and its log of every protected request.

Set with ``PUT /__sandbox/gateway`` (``GET`` returns the settings, counters and the request log):

``mode``
    ``off`` (default), ``fixed-window`` (at most ``rate * window`` requests per window of ``window``
    seconds), ``token-bucket`` (``rate`` tokens per second into a bucket of ``burst``, one per request,
    the AWS API Gateway model) or ``closed`` (every request refused).
``retry_after``
    ``none`` (Raidiam's documented behaviour), ``seconds`` (whole seconds until a request would be
    admitted, at least 1) or ``http-date``.

The limit is checked before anything else of a protected request (authentication included), like a
gateway in front of the API; a refused request gets HTTP 429 with Raidiam's documented text. The log
keeps, per protected request, the ``time.monotonic()`` of its arrival (the same clock as the client's on
this machine), its status and which TLS connection carried it, so a test can check from the server's
side that nothing was sent while a client said it was paused.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from email.utils import formatdate
from typing import Any

from raidiam_sandbox.request_body import body_fields

MODES = ("off", "fixed-window", "token-bucket", "closed")
RETRY_AFTER_MODES = ("none", "seconds", "http-date")
LOG_SIZE = 200_000


@dataclass(frozen=True)
class GatewayLimit:
    """The gateway's rate limit settings (``PUT /__sandbox/gateway`` replaces them all)."""

    mode: str = "off"
    rate: float = 100.0
    window: float = 1.0
    burst: float = 1.0
    retry_after: str = "none"

    @classmethod
    def parse(cls, raw: Any) -> GatewayLimit:
        """Validate a PUT body; raises ``ValueError`` with a readable message."""
        limit = cls(**body_fields(raw, cls))
        if limit.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}")
        if limit.retry_after not in RETRY_AFTER_MODES:
            raise ValueError(f"retry_after must be one of {list(RETRY_AFTER_MODES)}")
        for name in ("rate", "window", "burst"):
            value = getattr(limit, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
                raise ValueError(f"{name} must be a number > 0")
        if limit.mode == "fixed-window" and limit.rate * limit.window < 1:
            raise ValueError("fixed-window needs rate * window >= 1 (requests per window)")
        return limit


class Gateway:
    """Admits or refuses protected requests by the current :class:`GatewayLimit`; logs every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.limit = GatewayLimit()
        self._window = self._in_window = 0
        self._tokens = self._filled_at = 0.0
        self._reset_state(time.monotonic())
        self.log: deque[tuple[float, int, int]] = deque(maxlen=LOG_SIZE)
        self.refused = 0

    def configure(self, limit: GatewayLimit) -> None:
        """Replace the limit (the window or bucket starts full, now)."""
        with self._lock:
            self.limit = limit
            self._reset_state(time.monotonic())

    def clear(self) -> None:
        """Back to no limit, with an empty log."""
        with self._lock:
            self.limit = GatewayLimit()
            self._reset_state(time.monotonic())
            self.log.clear()
            self.refused = 0

    def admit(self, now: float) -> float | None:
        """``None`` when a request arriving at ``now`` passes, else seconds until one would."""
        with self._lock:
            limit = self.limit
            wait: float | None = None
            if limit.mode == "closed":
                wait = 1.0
            elif limit.mode == "fixed-window":
                window = math.floor(now / limit.window)
                if window != self._window:
                    self._window, self._in_window = window, 0
                if self._in_window >= limit.rate * limit.window:
                    wait = (window + 1) * limit.window - now
                else:
                    self._in_window += 1
            elif limit.mode == "token-bucket":
                self._tokens = min(limit.burst, self._tokens + (now - self._filled_at) * limit.rate)
                self._filled_at = now
                if self._tokens < 1:
                    wait = (1 - self._tokens) / limit.rate
                else:
                    self._tokens -= 1
            if wait is not None:
                self.refused += 1
            return wait

    def retry_after(self, wait: float) -> tuple[tuple[str, str], ...]:
        """The ``Retry-After`` header for a refusal, per the limit's ``retry_after`` mode."""
        mode = self.limit.retry_after
        if mode == "seconds":
            return (("Retry-After", str(max(1, math.ceil(wait)))),)
        if mode == "http-date":
            return (("Retry-After", formatdate(time.time() + wait + 1, usegmt=True)),)
        return ()

    def record(self, arrived: float, status: int, connection: int) -> None:
        """Log one protected request (deque appends are atomic)."""
        self.log.append((arrived, status, connection))

    def document(self) -> dict[str, Any]:
        """The ``GET /__sandbox/gateway`` document: settings, refusals and the request log."""
        with self._lock:
            return {**asdict(self.limit), "refused": self.refused, "requests": [list(entry) for entry in self.log]}

    def _reset_state(self, now: float) -> None:
        self._window = math.floor(now / self.limit.window)
        self._in_window = 0
        self._tokens = self.limit.burst
        self._filled_at = now
