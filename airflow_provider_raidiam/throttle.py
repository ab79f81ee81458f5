"""One gateway throttle per client identity, shared by every worker: one pause for all, an adaptive rate.

When the gateway answers HTTP 429 (or 503 with ``Retry-After``), every worker stops until the gateway is
expected to accept again: the ``Retry-After`` it sent (capped), else an exponential, jittered pause that
grows while every request is refused. From the first 429 on, requests also wait for a slot of a
client-side rate limiter whose rate adapts the way the AWS SDKs' "adaptive" retry mode does: on a 429 it
drops to ``BETA`` times the rate that was refused, then grows back along a CUBIC curve (flat
near the old maximum, faster beyond it, Ha, Rhee and Xu 2008), so the fan-out settles just under what
the gateway accepts without being told. ``max_rate`` caps it from the start.

Only responses to requests sent after the last reaction count as a new signal: the workers already in
flight when a 429 arrives do not lower the rate once each. The rate is lowered once per episode of
refusals; while the gateway refuses everything (an outage, a window not over yet), only the pause grows.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

BETA = 0.8
"""Rate after a 429, as a share of the rate the gateway was accepting."""
CUBIC_C = 0.4
"""CUBIC's scaling constant (the AWS SDKs' value): how fast the rate grows back, in requests/s³."""
MIN_RATE = 0.25
"""Requests per second: the adaptive rate never goes below this (pauses still grow while refused)."""
RATE_WINDOW = 2.0
"""Seconds of responses the client's sending rate is measured over."""
MIN_SPAN = 0.01
"""Seconds: the shortest span a sending rate is measured over (two answers at once are no rate)."""


@dataclass(frozen=True)
class Clock:
    """Time source and sleep of the retry machinery; tests inject their own to see the waits scheduled."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class Ticket:
    """Permission to send one request: when it was granted, and how long the throttle held it back."""

    granted_at: float
    waited: float


@dataclass
class Pause:
    """One shared pause: from ``start`` to ``end`` (clock seconds) no worker sends a request.

    ``in_flight`` is how many requests were already sent and not yet answered when it began: the most
    the server can receive during the pause.
    """

    start: float
    end: float
    in_flight: int


@dataclass(frozen=True)
class Refusal:
    """The throttle's reaction to one refused request."""

    pause: float
    """Seconds from now until every worker may send again."""
    refused_for: float
    """Seconds since the gateway last accepted a request from this client."""
    fresh: bool
    """Whether this refusal was a new signal (the request was sent after the last reaction)."""
    rate: float | None
    """The rate limit now, requests per second (``None``: not limiting)."""


class Throttle:
    """Shared pause and adaptive rate limit for every request of one client identity to one server.

    Thread-safe. Each request takes a :class:`Ticket` from :meth:`acquire` (which waits for the pause and
    for a rate slot), and reports its outcome with :meth:`accepted`, :meth:`refused` or :meth:`finished`.

    :param max_rate: requests per second never to exceed (``None``: only what the gateway allows).
    :param initial_pause: first pause without ``Retry-After``, doubled for each further refusal in a row.
    :param max_pause: cap of one pause, ``Retry-After`` included.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_rate: float | None = None,
        initial_pause: float = 0.1,
        max_pause: float = 20.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.clock = clock or Clock()
        self.max_rate = max_rate
        self.initial_pause = initial_pause
        self.max_pause = max_pause
        self._jitter = jitter
        self._lock = threading.Lock()
        self._rate = max_rate
        self._last_max = 0.0
        self._decreased_at: float | None = None
        self._reacted_at = -math.inf
        self._next_slot = -math.inf
        self._paused_until = -math.inf
        self._pause_epoch = 0
        self._in_a_row = 0
        self._refused_since: float | None = None
        self._answered_times: deque[float] = deque(maxlen=4096)
        self._in_flight = 0
        self.pauses: deque[Pause] = deque(maxlen=1000)
        """The latest shared pauses (overlapping ones merged), oldest first."""
        self.paused_seconds = 0.0
        """Total time every worker was paused."""
        self.refusals: Counter[int] = Counter()
        """Refused responses by HTTP status (429, or 503 with ``Retry-After``)."""

    @property
    def rate(self) -> float | None:
        """The current rate limit in requests per second, or ``None`` while not limiting."""
        return self._rate

    def acquire(self) -> Ticket:
        """Wait until this request may be sent (no pause, a free rate slot) and take its ticket."""
        clock = self.clock
        first = clock.now()
        while True:
            with self._lock:
                now = clock.now()
                start = max(now, self._paused_until)
                if self._rate is not None:
                    start = max(start, self._next_slot)
                    self._next_slot = start + 1.0 / self._rate
                epoch = self._pause_epoch
                if start <= now:
                    self._in_flight += 1
                    return Ticket(now, now - first)
            clock.sleep(start - now)
            with self._lock:
                now = clock.now()
                if self._pause_epoch == epoch or now >= self._paused_until:
                    self._in_flight += 1
                    return Ticket(now, now - first)
            # A pause began while this request waited for its slot: queue again behind the pause.

    def accepted(self, ticket: Ticket) -> None:
        """The gateway let the request through (whatever the server answered then)."""
        with self._lock:
            now = self.clock.now()
            self._in_flight -= 1
            self._in_a_row = 0
            self._refused_since = None
            self._answered_times.append(now)
            if self._decreased_at is not None:
                self._rate = self._grown_rate(now)

    def finished(self, ticket: Ticket) -> None:
        """The request got no response (a transport error): neither accepted nor refused."""
        with self._lock:
            self._in_flight -= 1

    def refused(self, ticket: Ticket, status: int, retry_after: float | None) -> Refusal:
        """The gateway refused the request: pause every worker and, on a new 429, lower the rate.

        :param retry_after: the response's ``Retry-After`` in seconds, if it had one.
        """
        with self._lock:
            now = self.clock.now()
            self._in_flight -= 1
            self.refusals[status] += 1
            self._answered_times.append(now)
            if self._refused_since is None:
                self._refused_since = now
            fresh = ticket.granted_at >= self._reacted_at
            if fresh:
                self._reacted_at = now
                self._in_a_row += 1
                if status == 429 and self._in_a_row == 1:
                    self._decrease(now)  # once per episode: while everything is refused, only the pause grows
            if retry_after is not None:
                pause = min(retry_after, self.max_pause)
            elif fresh:
                backoff = min(self.max_pause, self.initial_pause * 2.0 ** (self._in_a_row - 1))
                pause = backoff * (0.5 + 0.5 * self._jitter())
            else:
                pause = 0.0  # the pause this request was sent before already answers it
            self._pause_until(now, now + pause)
            return Refusal(
                pause=max(0.0, self._paused_until - now),
                refused_for=now - self._refused_since,
                fresh=fresh,
                rate=self._rate,
            )

    def describe(self) -> str:
        """How much the client has been throttled, for progress lines ("" when never)."""
        with self._lock:
            if not self.refusals:
                return ""
            refused = ", ".join(f"{count} x HTTP {status}" for status, count in sorted(self.refusals.items()))
            rate = f", rate limit {self._rate:.1f}/s" if self._rate is not None else ""
            return f"; throttled: {refused}, {len(self.pauses)} pauses ({self.paused_seconds:.1f} s){rate}"

    def _pause_until(self, now: float, until: float) -> None:
        if until <= self._paused_until or until <= now:
            return
        if self._paused_until > now and self.pauses:
            self.paused_seconds += until - self._paused_until
            self.pauses[-1].end = until
        else:
            self.paused_seconds += until - now
            self.pauses.append(Pause(start=now, end=until, in_flight=self._in_flight))
        self._paused_until = until
        self._pause_epoch += 1

    def _sending_rate(self, now: float) -> float | None:
        times = self._answered_times
        while times and times[0] < now - RATE_WINDOW:
            times.popleft()
        if len(times) < 2:
            return None
        return len(times) / max(now - times[0], MIN_SPAN)

    def _decrease(self, now: float) -> None:
        # The rate that was just refused; before the first refusal, the rate the client was sending at.
        basis = self._rate if self._rate is not None else self._sending_rate(now)
        if basis is None:
            return  # refused before anything was accepted: nothing to measure yet, the pause grows instead
        self._last_max = basis
        self._decreased_at = now
        self._rate = self._capped(BETA * basis)
        self._next_slot = max(self._next_slot, now)

    def _grown_rate(self, now: float) -> float:
        assert self._decreased_at is not None
        plateau = math.cbrt(self._last_max * (1 - BETA) / CUBIC_C)
        rate = self._last_max + CUBIC_C * (now - self._decreased_at - plateau) ** 3
        measured = self._sending_rate(now)
        if measured is not None:
            rate = min(rate, 2 * measured)  # never run far ahead of what is being sent
        return self._capped(rate)

    def _capped(self, rate: float) -> float:
        rate = max(MIN_RATE, rate)
        return rate if self.max_rate is None else min(rate, self.max_rate)
