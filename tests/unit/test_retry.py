"""The retry loop and the shared throttle, on a fake clock: the waits scheduled, not the time it took."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from airflow_provider_raidiam.exceptions import ThrottledError
from airflow_provider_raidiam.retry import RetryPolicy, retry_after_seconds
from airflow_provider_raidiam.throttle import BETA, Throttle


@pytest.fixture
def fake(fake_clock: Any) -> Any:
    return fake_clock


def policy(fake: Any, **overrides: Any) -> RetryPolicy:
    """A policy on the fake clock whose jitter is always at its maximum (so waits are exact)."""
    built: RetryPolicy = fake.policy(**overrides)
    return built


def response(status: int, **headers: str) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer.headers.update(headers)
    answer.url = "https://api.example.test/organisations"
    return answer


def scripted(*outcomes: requests.Response | BaseException) -> tuple[Callable[[float], requests.Response], list[float]]:
    """A ``send`` returning ``outcomes`` in turn; also returns the time left it was given on each attempt."""
    remaining: list[float] = []
    answers: Iterator[requests.Response | BaseException] = iter(outcomes)

    def send(left: float) -> requests.Response:
        remaining.append(left)
        outcome = next(answers)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return send, remaining


# -- Retry-After ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("7", 7.0), (" 3 ", 3.0), ("0", 0.0), ("soon", None), ("-1", None), ("", None)]
)
def test_retry_after_seconds(value: str, expected: float | None) -> None:
    assert retry_after_seconds(response(429, **{"Retry-After": value})) == expected


def test_retry_after_http_date(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_760_000_000.0  # urllib3's parser reads time.time(): freeze it, so a slow machine changes nothing
    monkeypatch.setattr(time, "time", lambda: now)
    when = email.utils.formatdate(now + 5, usegmt=True)
    assert retry_after_seconds(response(429, **{"Retry-After": when})) == 5.0
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert retry_after_seconds(response(429, **{"Retry-After": past})) == 0.0


def test_429_with_retry_after_pauses_exactly_that_long(fake: Any) -> None:
    send, _ = scripted(response(429, **{"Retry-After": "7"}), response(200))
    assert policy(fake, max_wait=10).call(send, describe="GET x").status_code == 200
    assert fake.sleeps == [7.0]


def test_retry_after_is_capped_by_max_wait(fake: Any) -> None:
    send, _ = scripted(response(429, **{"Retry-After": "3600"}), response(200))
    policy(fake, max_wait=2).call(send, describe="GET x")
    assert fake.sleeps == [2.0]


def test_503_with_retry_after_is_a_pause_not_a_failure(fake: Any) -> None:
    send, _ = scripted(*[response(503, **{"Retry-After": "1"})] * 5, response(200))
    assert policy(fake, attempts=2).call(send, describe="GET x").status_code == 200
    assert fake.sleeps == [1.0] * 5


def test_429_without_retry_after_pauses_exponentially(fake: Any) -> None:
    send, _ = scripted(*[response(429)] * 9, response(200))
    policy(fake, initial_pause=0.1, max_wait=5).call(send, describe="GET x")
    assert fake.sleeps == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


def test_throttled_answers_cost_no_attempt(fake: Any) -> None:
    send, _ = scripted(*[response(429)] * 20, response(200))
    assert policy(fake, attempts=2, max_wait=0.5).call(send, describe="GET x").status_code == 200


# -- the throttle budget ----------------------------------------------------------------------------


def test_a_server_refusing_everything_fails_after_throttle_timeout(fake: Any) -> None:
    send, _ = scripted(*[response(429, **{"x-fapi-interaction-id": "abc"})] * 100)
    with pytest.raises(ThrottledError) as caught:
        policy(fake, max_wait=4, throttle_timeout=30).call(send, describe="GET https://api.example.test/x")
    assert caught.value.status == 429
    assert caught.value.interaction_id == "abc"
    message = str(caught.value)
    assert "refused every request of this client for 30 s" in message
    assert "throttle_timeout (30 s)" in message
    assert fake.sleeps == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2] + [4.0] * 6  # refused for 30.3 s: no 13th pause


def test_an_accepted_request_restarts_the_throttle_budget(fake: Any) -> None:
    refusals = [response(429, **{"Retry-After": "4"})] * 7  # 28 s refused, then one accepted, then 28 s again
    send, _ = scripted(*refusals, response(200), *refusals, response(200))
    retry = policy(fake, throttle_timeout=30)
    throttle = retry.new_throttle()
    retry.call(send, describe="GET x", throttle=throttle)
    assert retry.call(send, describe="GET x", throttle=throttle).status_code == 200
    assert fake.sleeps == [4.0] * 14


# -- failures: attempts, backoff and the call's own deadline ----------------------------------------


def test_5xx_are_retried_with_backoff_until_the_attempts_are_spent(fake: Any) -> None:
    send, _ = scripted(*[response(500)] * 4)
    last = RetryPolicy(attempts=4, initial_wait=0.5, max_wait=1.5, clock=fake.clock(), jitter=lambda: 0.0).call(
        send, describe="GET x"
    )
    assert last.status_code == 500
    assert fake.sleeps == [0.5, 1.0, 1.5]


def test_backoff_jitter_adds_up_to_one_initial_wait(fake: Any) -> None:
    send, _ = scripted(response(502), response(502), response(200))
    RetryPolicy(initial_wait=0.2, clock=fake.clock(), jitter=lambda: 0.5).call(send, describe="GET x")
    assert fake.sleeps == [0.3, 0.5]


def test_retry_after_on_a_5xx_replaces_the_backoff(fake: Any) -> None:
    send, _ = scripted(response(500, **{"Retry-After": "3"}), response(200))
    policy(fake).call(send, describe="GET x")
    assert fake.sleeps == [3.0]


def test_transient_transport_errors_are_retried_and_the_last_reraised(fake: Any) -> None:
    send, _ = scripted(requests.ConnectionError("reset"), requests.ReadTimeout("slow"), requests.ConnectionError("x"))
    with pytest.raises(requests.ConnectionError, match="x"):
        policy(fake, attempts=3, initial_wait=0.1).call(send, describe="GET x")
    assert fake.sleeps == [0.2, 0.3]


def test_a_refused_certificate_is_not_retried(fake: Any) -> None:
    send, remaining = scripted(requests.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"))
    with pytest.raises(requests.exceptions.SSLError):
        policy(fake).call(send, describe="GET x")
    assert len(remaining) == 1
    assert fake.sleeps == []


def test_the_calls_deadline_bounds_retries_and_each_attempts_time(fake: Any) -> None:
    def slow_failure(left: float) -> requests.Response:
        seen.append(left)
        fake.now += 4.0  # each attempt takes 4 s
        return response(503)

    seen: list[float] = []
    retry = RetryPolicy(
        attempts=1000, max_elapsed=10.0, initial_wait=1.0, max_wait=1.0, clock=fake.clock(), jitter=lambda: 0
    )
    assert retry.call(slow_failure, describe="GET x").status_code == 503
    assert seen == [10.0, 5.0]  # 4 s + 1 s wait spent; a third attempt would start at 10 s: none
    assert fake.sleeps == [1.0]


def test_throttle_pauses_do_not_count_against_the_calls_deadline(fake: Any) -> None:
    send, remaining = scripted(*[response(429, **{"Retry-After": "5"})] * 4, response(500), response(200))
    retry = RetryPolicy(max_elapsed=3.0, initial_wait=1.0, clock=fake.clock(), jitter=lambda: 0)
    assert retry.call(send, describe="GET x").status_code == 200
    assert fake.sleeps == [5.0] * 4 + [1.0]
    assert remaining == [3.0] * 5 + [2.0]


def test_a_throttled_call_stops_once_its_own_time_is_spent(fake: Any) -> None:
    def slow_refusal(left: float) -> requests.Response:
        seen.append(left)
        fake.now += 2.0  # each attempt itself takes 2 s
        return response(429, **{"Retry-After": "1"})

    seen: list[float] = []
    retry = policy(fake, max_elapsed=5.0, throttle_timeout=1000)
    assert retry.call(slow_refusal, describe="GET x").status_code == 429
    assert seen == [5.0, 3.0, 1.0]  # the pauses in between do not count; 6 s of attempts do


def test_time_spent_preparing_is_not_the_calls_own_time(fake: Any) -> None:
    def slow_token() -> None:
        fake.now += 30.0  # e.g. waiting for a token renewal on a busy machine

    send, remaining = scripted(response(500), response(200))
    retry = RetryPolicy(max_elapsed=10.0, initial_wait=1.0, clock=fake.clock(), jitter=lambda: 0)
    assert retry.call(send, describe="GET x", prepare=slow_token).status_code == 200
    assert remaining == [10.0, 9.0]


# -- 401 renewals -----------------------------------------------------------------------------------


def test_401_is_retried_while_renew_says_so(fake: Any) -> None:
    send, remaining = scripted(response(401), response(401), response(401), response(200))
    calls: list[int] = []

    def renew(answer: requests.Response, renewals: int) -> bool:
        calls.append(renewals)
        return renewals < 2

    assert policy(fake).call(send, describe="GET x", renew=renew).status_code == 401
    assert calls == [0, 1, 2]
    assert len(remaining) == 3
    assert fake.sleeps == []


# -- the shared throttle ----------------------------------------------------------------------------


def test_a_refusal_pauses_every_later_request(fake: Any) -> None:
    throttle = Throttle(clock=fake.clock(), jitter=lambda: 1.0)
    first, second = throttle.acquire(), throttle.acquire()
    throttle.accepted(first)
    refusal = throttle.refused(second, 429, 2.0)
    assert refusal.pause == 2.0
    ticket = throttle.acquire()  # another worker: waits for the pause
    assert fake.sleeps == [2.0]
    assert ticket.waited == 2.0
    assert [(p.start, p.end, p.in_flight) for p in throttle.pauses] == [(1000.0, 1002.0, 0)]
    assert throttle.refusals == {429: 1}
    assert "1 x HTTP 429, 1 pauses (2.0 s)" in throttle.describe()


def test_refusals_of_requests_sent_before_the_reaction_lower_the_rate_once(fake: Any) -> None:
    throttle = Throttle(clock=fake.clock(), jitter=lambda: 1.0)
    for _ in range(40):  # 40 requests accepted over 2 s: 20/s
        throttle.accepted(throttle.acquire())
        fake.now += 0.05
    in_flight = [throttle.acquire() for _ in range(8)]
    fake.now += 0.01
    first = throttle.refused(in_flight[0], 429, None)
    assert first.fresh
    assert first.rate == pytest.approx(BETA * 20.5, rel=0.05)
    for ticket in in_flight[1:]:
        later = throttle.refused(ticket, 429, None)
        assert not later.fresh
        assert later.rate == first.rate
    assert len(throttle.pauses) == 1
    assert throttle.pauses[0].in_flight == 7


def test_while_everything_is_refused_only_the_pause_grows(fake: Any) -> None:
    throttle = Throttle(clock=fake.clock(), max_rate=40.0, jitter=lambda: 1.0)
    for _ in range(40):
        throttle.accepted(throttle.acquire())
    pauses, rates = [], []
    for _ in range(5):  # an outage: every request (each sent after the previous pause) is refused
        refusal = throttle.refused(throttle.acquire(), 429, None)
        pauses.append(round(refusal.pause, 6))
        rates.append(refusal.rate)
    assert pauses == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert rates == [pytest.approx(BETA * 40)] * 5, "lowered once for the whole episode"


def test_the_rate_grows_back_after_a_decrease_and_respects_max_rate(fake: Any) -> None:
    throttle = Throttle(clock=fake.clock(), max_rate=30.0)
    assert throttle.rate == 30.0
    for _ in range(60):
        throttle.accepted(throttle.acquire())
    assert fake.now == pytest.approx(1000.0 + 59 / 30)  # paced at 30/s from the start
    throttle.refused(throttle.acquire(), 429, 0.0)
    lowered = throttle.rate
    assert lowered is not None
    assert lowered == pytest.approx(BETA * 30, rel=0.05)
    rates = []
    for _ in range(200):
        throttle.accepted(throttle.acquire())
        rates.append(throttle.rate)
    assert rates == sorted(rates)
    assert rates[-1] == 30.0


# -- convergence on a simulated gateway -------------------------------------------------------------


class Gateway:
    """A simulated rate-limited gateway on the fake clock: a token bucket, or fixed one-second windows."""

    def __init__(self, fake: Any, rate: float, mode: str, burst: float = 1.0) -> None:
        self.fake, self.rate, self.mode, self.burst = fake, rate, mode, burst
        self.tokens, self.last, self.window, self.in_window = burst, fake.now, int(fake.now), 0
        self.accepted = self.refused = 0

    def send(self, _left: float) -> requests.Response:
        self.fake.now += 0.002  # the request's own latency
        now = self.fake.now
        if self.mode == "token-bucket":
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            ok = self.tokens >= 1
            self.tokens -= 1 if ok else 0
        else:
            if int(now) != self.window:
                self.window, self.in_window = int(now), 0
            ok = self.in_window < self.rate
            self.in_window += 1 if ok else 0
        self.accepted += ok
        self.refused += not ok
        return response(200 if ok else 429)


@pytest.mark.parametrize("mode", ["token-bucket", "fixed-window"])
@pytest.mark.parametrize("rate", [50, 100])
def test_the_adaptive_rate_converges_on_what_the_gateway_accepts(fake: Any, mode: str, rate: int) -> None:
    gateway = Gateway(fake, rate, mode, burst=rate / 10)
    retry = RetryPolicy(clock=fake.clock())
    throttle = retry.new_throttle()
    started, requests_needed = fake.now, 40 * rate
    for _ in range(requests_needed):
        assert retry.call(gateway.send, describe="GET x", throttle=throttle).status_code == 200
    simulated_time = fake.now - started  # the fake clock's time: what the client scheduled, not wall-clock
    assert gateway.accepted == requests_needed
    assert (gateway.accepted + gateway.refused) / gateway.accepted <= 1.05
    assert simulated_time <= 1.12 * requests_needed / rate, simulated_time
