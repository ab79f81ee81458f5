"""The retry policy of every HTTP call: plain data, one loop, an injectable clock.

Three kinds of answers are retried, each its own way:

* **throttled** (HTTP 429, or 503 with ``Retry-After``): the :class:`~airflow_provider_raidiam.throttle.Throttle`
  shared by the client's workers pauses them all and lowers their rate. Throttling costs no attempt: the
  call fails only when the gateway has refused *every* request for ``throttle_timeout`` seconds;
* **failed** (other 5xx, connection errors and timeouts): retried with exponential, jittered backoff (or
  the response's ``Retry-After``, capped) at most ``attempts`` times in all, and never past
  ``max_elapsed`` seconds of the call's own time (throttle pauses not counted);
* **refused token** (HTTP 401): retried when the caller's ``renew`` callback renewed the token.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from urllib3.exceptions import InvalidHeader
from urllib3.util import Retry

from airflow_provider_raidiam.exceptions import ThrottledError
from airflow_provider_raidiam.http import INTERACTION_HEADER
from airflow_provider_raidiam.http import RETRY_STATUSES as RETRY_STATUSES  # the retry policy's name for it
from airflow_provider_raidiam.throttle import Clock, Throttle

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
_RETRY_AFTER_PARSER = Retry()

Send = Callable[[float], requests.Response]
"""Sends one attempt; its argument is the time left of the call's own deadline, in seconds."""


def is_transient_error(error: BaseException) -> bool:
    """Whether a transport error may pass on retry (a refused certificate never does)."""
    if isinstance(error, requests.exceptions.SSLError):
        text = str(error).lower()
        return "eof" in text or "reset" in text or "timed out" in text
    return isinstance(error, TRANSIENT_ERRORS)


def retry_after_seconds(response: requests.Response) -> float | None:
    """Seconds to wait per the response's ``Retry-After`` (delta-seconds or HTTP-date), if it has a valid one."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(_RETRY_AFTER_PARSER.parse_retry_after(value))
    except (InvalidHeader, ValueError, OverflowError):
        return None


def is_throttled(response: requests.Response, retry_after: float | None) -> bool:
    """Whether the server asks the whole client to slow down: HTTP 429, or 503 with ``Retry-After``."""
    return response.status_code == 429 or (response.status_code == 503 and retry_after is not None)


@dataclass(frozen=True)
class RetryPolicy:
    """How calls are retried (see the module docstring), as plain data.

    :param attempts: attempts in all for failed answers (throttled ones do not count).
    :param max_elapsed: seconds a call may spend on its attempts and backoff waits, throttle pauses not
        counted; no retry is started that would begin after it, and an attempt gets at most what is left.
    :param initial_wait: first backoff in seconds; doubles each attempt, plus up to as much jitter.
    :param max_wait: cap of one wait or pause, ``Retry-After`` included.
    :param throttle_timeout: seconds the server may refuse every request (429) before the call fails
        with :class:`~airflow_provider_raidiam.exceptions.ThrottledError`.
    :param initial_pause: first shared pause after a 429 without ``Retry-After``; doubles while refused.
    :param clock: time source and sleep (tests inject a recording one).
    :param jitter: random numbers in [0, 1) for the jitter.
    """

    attempts: int = 6
    max_elapsed: float = 120.0
    initial_wait: float = 0.25
    max_wait: float = 20.0
    throttle_timeout: float = 300.0
    initial_pause: float = 0.1
    clock: Clock = field(default_factory=Clock)
    jitter: Callable[[], float] = random.random

    def new_throttle(self, max_rate: float | None = None) -> Throttle:
        """A throttle with this policy's clock and pauses, to share between the calls of one client."""
        return Throttle(
            clock=self.clock,
            max_rate=max_rate,
            initial_pause=self.initial_pause,
            max_pause=self.max_wait,
            jitter=self.jitter,
        )

    def backoff(self, failures: int) -> float:
        """The wait before retry number ``failures`` (1 = the first retry)."""
        return min(self.max_wait, self.initial_wait * 2.0 ** (failures - 1)) + self.jitter() * self.initial_wait

    def call(
        self,
        send: Send,
        *,
        describe: str,
        throttle: Throttle | None = None,
        retry_status: Callable[[requests.Response], bool] | None = None,
        renew: Callable[[requests.Response, int], bool] | None = None,
        prepare: Callable[[], object] | None = None,
    ) -> requests.Response:
        """Call ``send`` until it returns an answer that is not retried, or the policy is spent.

        Returns the last response (the caller turns an error status into a typed error); re-raises the
        last transport error when the retries are spent without a response.

        :param throttle: the client's shared throttle (default: one for this call alone).
        :param retry_status: which responses count as failed (default: 429 and 5xx).
        :param renew: called with a 401 response and the renewals so far; returns whether it renewed the
            token, so the call is tried again.
        :param prepare: called before each wait for the throttle, e.g. to renew a token first (a worker
            that waited for a renewal after its turn came would send in a burst with the others).
        :raises ThrottledError: the server refused every request for ``throttle_timeout`` seconds.
        """
        should_retry = retry_status or (lambda response: response.status_code in RETRY_STATUSES)
        throttle = throttle or self.new_throttle()
        clock = self.clock
        started = clock.now()
        held = 0.0  # seconds spent waiting for the throttle or in prepare: not the call's own time
        failures = renewals = 0
        outcome: requests.Response | BaseException | None = None
        while True:
            waiting_since = clock.now()
            if prepare is not None:
                prepare()
            ticket = throttle.acquire()
            held += clock.now() - waiting_since
            spent = clock.now() - started - held
            if outcome is not None and spent >= self.max_elapsed:
                throttle.finished(ticket)
                return _last(outcome)  # a throttled or renewed call that used up its own time
            try:
                outcome = response = send(max(self.max_elapsed - spent, 0.0))
            except Exception as error:
                throttle.finished(ticket)
                if not is_transient_error(error):
                    raise
                outcome, reason, retry_after = error, type(error).__name__, None
            else:
                retry_after = retry_after_seconds(response)
                if is_throttled(response, retry_after):
                    refusal = throttle.refused(ticket, response.status_code, retry_after)
                    if refusal.refused_for >= self.throttle_timeout:
                        raise throttled_error(response, describe, refusal.refused_for, self.throttle_timeout)
                    rate = f", rate limit {refusal.rate:.1f}/s" if refusal.rate is not None else ""
                    log.info(
                        "%s throttled (HTTP %d); every request paused %.2fs%s",
                        describe,
                        response.status_code,
                        refusal.pause,
                        rate,
                    )
                    continue
                throttle.accepted(ticket)
                if response.status_code == 401 and renew is not None and renew(response, renewals):
                    renewals += 1
                    continue
                if not should_retry(response):
                    return response
                reason = f"HTTP {response.status_code}"
            failures += 1
            delay = self._retry_delay(failures, started, held, retry_after)
            if delay is None:
                return _last(outcome)
            log.warning("%s failed (%s); retry %d/%d in %.2fs", describe, reason, failures, self.attempts - 1, delay)
            clock.sleep(delay)

    def _retry_delay(self, failures: int, started: float, held: float, retry_after: float | None) -> float | None:
        """The wait before the next attempt, or ``None`` when the attempts or the call's time are spent."""
        if failures >= self.attempts:
            return None
        delay = self.backoff(failures) if retry_after is None else min(retry_after, self.max_wait)
        if self.clock.now() - started - held + delay >= self.max_elapsed:
            return None
        return delay


def _last(outcome: requests.Response | BaseException) -> requests.Response:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def throttled_error(response: requests.Response, describe: str, refused_for: float, limit: float) -> ThrottledError:
    """The error of a call the server kept throttling for longer than ``throttle_timeout``."""
    interaction_id = response.headers.get(INTERACTION_HEADER)
    return ThrottledError(
        f"{describe}: the server refused every request of this client for {refused_for:.0f} s (last answer "
        f"HTTP {response.status_code}: rate limited), longer than throttle_timeout ({limit:g} s). The client "
        "already paused and slowed down; run the task again later, raise the connection extra "
        "'throttle_timeout', or ask the server's operator about the client's rate limit."
        + (f" ({INTERACTION_HEADER}={interaction_id})" if interaction_id else ""),
        status=response.status_code,
        interaction_id=interaction_id,
        url=response.url,
    )
