"""Bounded responses at unit level: size after decompression, and the per-attempt deadline on an injected clock.

HTTP is stubbed with ``responses`` below the session's real adapter (``SslContextAdapter.send`` runs, and reads
the stubbed body through :func:`read_body`). The socket-level deadline is tested on a socket pair. The same
guarantees are proven over real TLS against the hostile peer in ``tests/integration/test_bounded_responses.py``.
"""

from __future__ import annotations

import gzip
import io
import socket
import ssl
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from airflow_provider_raidiam.boundary import AllowedOrigins
from airflow_provider_raidiam.exceptions import ApiError, ResponseDeadlineError, ResponseTooLargeError
from airflow_provider_raidiam.http import new_session
from airflow_provider_raidiam.limits import (
    CHUNK_BYTES,
    DEFAULT_ATTEMPT_DEADLINE,
    DEFAULT_MAX_RESPONSE_BYTES,
    Deadline,
    ResponseLimits,
    _DeadlineReader,
    connect_within,
)

URL = "https://directory.example.test/organisations"
MiB = 1024 * 1024


class FakeClock:
    """A clock that only moves when told to (``advance``), or by ``tick`` on every reading."""

    def __init__(self, tick: float = 0.0) -> None:
        self.now = 1000.0
        self.tick = tick
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def gzip_of_zeros(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"0" * MiB
    parts = [compressor.compress(block) for _ in range(size // MiB)]
    return b"".join([*parts, compressor.flush()])


class ClockedBody(io.RawIOBase):
    """A body of ``chunks`` reads of CHUNK_BYTES; every read advances ``clock`` by ``seconds``."""

    def __init__(self, clock: FakeClock, chunks: int, seconds: float) -> None:
        self.clock, self.left, self.seconds, self.reads = clock, chunks, seconds, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left == 0:
            return 0
        self.left -= 1
        self.reads += 1
        self.clock.advance(self.seconds)
        size = min(len(buffer), CHUNK_BYTES)
        buffer[:size] = b"0" * size
        return size


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def session(**limits: Any) -> requests.Session:
    allowed = AllowedOrigins([URL])
    return new_session(ssl.create_default_context(), pool_maxsize=2, allowed=allowed, limits=ResponseLimits(**limits))


# -- size -------------------------------------------------------------------------------------------


def test_gzip_bomb_is_refused_after_decompressing_little_more_than_the_limit(mocked: responses.RequestsMock) -> None:
    bomb = gzip_of_zeros(64 * MiB)
    assert len(bomb) < MiB / 4  # a small download ...
    mocked.add(responses.GET, URL, body=bomb, headers={"Content-Encoding": "gzip"}, content_type="application/json")

    with pytest.raises(ResponseTooLargeError) as caught:
        session(max_bytes=MiB).get(URL, timeout=5)

    error = caught.value
    assert isinstance(error, ApiError)
    assert (error.limit, error.status, error.url) == (MiB, 200, URL)
    message = str(error)
    assert f"GET {URL}" in message
    assert "than the 1,048,576-byte limit on a response after decompression" in message
    assert "max_response_bytes" in message, "the message says how to raise the limit"


def test_large_plain_body_is_refused(mocked: responses.RequestsMock) -> None:
    # Streamed without Content-Length (a generator body), so the limit is found while reading.
    mocked.add(responses.GET, URL, body=io.BufferedReader(io.BytesIO(b"x" * (3 * MiB))))

    with pytest.raises(ResponseTooLargeError, match="sent more than the 1,048,576-byte limit"):
        session(max_bytes=MiB).get(URL, timeout=5)


def test_declared_content_length_over_the_limit_is_refused_before_reading(mocked: responses.RequestsMock) -> None:
    body = ClockedBody(FakeClock(), chunks=32, seconds=0.0)
    mocked.add(responses.GET, URL, body=io.BufferedReader(body), headers={"Content-Length": str(32 * CHUNK_BYTES)})

    with pytest.raises(
        ResponseTooLargeError,
        match=r"declares a 2,097,152-byte body \(Content-Length\), more than the 1,048,576-byte limit",
    ):
        session(max_bytes=MiB).get(URL, timeout=5)

    assert body.reads == 0, "not one byte of the body was read"


def test_error_responses_are_bounded_too(mocked: responses.RequestsMock) -> None:
    mocked.add(responses.GET, URL, status=500, body=b"e" * (2 * MiB), content_type="text/plain")

    with pytest.raises(ResponseTooLargeError) as caught:
        session(max_bytes=MiB).get(URL, timeout=5)

    assert caught.value.status == 500


def test_body_up_to_the_limit_is_read_whole(mocked: responses.RequestsMock) -> None:
    document = b'{"data": "' + b"0" * (MiB - 12) + b'"}'
    assert len(document) == MiB
    mocked.add(responses.GET, URL, body=gzip.compress(document), headers={"Content-Encoding": "gzip"})

    response = session(max_bytes=MiB).get(URL, timeout=5)

    assert response.content == document
    assert response.json()["data"] == "0" * (MiB - 12)


def test_defaults_are_well_above_real_directory_responses() -> None:
    # A 1,000-record page of software statements is a few MB; the public participants list a few more.
    assert (64 * MiB, 120.0) == (DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_ATTEMPT_DEADLINE)
    assert ResponseLimits() == ResponseLimits(64 * MiB, 120.0)


# -- time: the body reader checks the injected clock between chunks --------------------------------------


def test_body_reading_stops_at_the_deadline(mocked: responses.RequestsMock) -> None:
    clock = FakeClock()
    body = ClockedBody(clock, chunks=100, seconds=10.0)  # 6.4 MB at 10 s per 64 KiB: 1,000 s in all
    mocked.add(responses.GET, URL, body=io.BufferedReader(body, CHUNK_BYTES))
    started = clock.now

    with pytest.raises(ResponseDeadlineError) as caught:
        session(attempt_deadline=25.0, clock=clock).get(URL, timeout=5)

    assert clock.now - started >= 25.0, "raised only once the deadline had passed"
    assert body.reads == 3, "and at the first check after it: chunk 3 ended at 30 s, nothing more was read"
    error = caught.value
    assert (error.deadline, error.url) == (25.0, URL)
    assert "within the 25s deadline of one attempt" in str(error)
    assert "raise the connection extra 'attempt_deadline'" in str(error)
    assert isinstance(error, requests.Timeout), "retry policies see an ordinary timeout"


def test_body_within_the_deadline_is_read(mocked: responses.RequestsMock) -> None:
    clock = FakeClock()
    body = ClockedBody(clock, chunks=4, seconds=10.0)
    mocked.add(responses.GET, URL, body=io.BufferedReader(body, CHUNK_BYTES))

    response = session(attempt_deadline=45.0, clock=clock).get(URL, timeout=5)

    assert len(response.content) == 4 * CHUNK_BYTES


# -- time: every socket read waits until the deadline at most --------------------------------------------


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    client, server = socket.socketpair()
    client.settimeout(30.0)
    yield client, server
    client.close()
    server.close()


def test_socket_reads_stop_at_the_deadline_while_a_server_drips(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = socket_pair
    server.sendall(b"x" * 100)  # the data is there: only the deadline can stop the reader
    clock = FakeClock(tick=1.0)  # every reading of the clock is one more second: a 1 byte/s drip
    deadline = Deadline(10.0, clock)
    reader = _DeadlineReader(client.makefile("rb", buffering=0), client, deadline)
    received = bytearray()

    def read_byte() -> None:
        buffer = bytearray(1)
        reader.readinto(buffer)
        received.extend(buffer)

    for _second in range(9):
        read_byte()
    with pytest.raises(TimeoutError, match="deadline of 10s has passed"):
        read_byte()

    assert deadline.expired()
    assert bytes(received) == b"x" * 9, "one byte per second until the 10th second, then nothing"


def test_socket_read_timeout_is_cut_to_the_time_left(socket_pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = socket_pair
    server.sendall(b"abc")
    clock = FakeClock()
    reader = _DeadlineReader(client.makefile("rb", buffering=0), client, Deadline(100.0, clock))

    reader.readinto(bytearray(1))
    assert client.gettimeout() == 30.0, "far from the deadline the read timeout is unchanged"

    clock.advance(98.5)
    reader.readinto(bytearray(1))
    assert client.gettimeout() == pytest.approx(1.5), "near it, a read waits only for the time left"


def test_connect_timeout_is_cut_to_the_deadline() -> None:
    clock = FakeClock()
    deadline = Deadline(5.0, clock)

    assert connect_within(30.0, deadline) == (5.0, 30.0)
    assert connect_within((2.0, 30.0), deadline) == (2.0, 30.0)
    clock.advance(6.0)
    with pytest.raises(TimeoutError):
        connect_within(30.0, deadline)
