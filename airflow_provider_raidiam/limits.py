"""Bounded responses: at most ``max_response_bytes`` after decompression, within a wall-clock deadline per attempt.

On its own, requests reads a whole body into memory (a 500 MiB body, or a 0.5 MB gzip bomb that inflates to
500 MiB), and its timeout applies to each socket read, so a body dripped one byte a second runs for hours.
The session's adapter (:class:`~airflow_provider_raidiam.http.SslContextAdapter`) therefore reads every
response through this module:

* :func:`read_body` streams the body, decompressed by urllib3 a chunk at a time, and stops as soon as it
  holds more than ``max_response_bytes`` (:class:`~airflow_provider_raidiam.exceptions.ResponseTooLargeError`);
* every socket read of the status line, headers and body waits at most until the attempt's
  :class:`Deadline` (connect and TLS handshake get at most the time left when the attempt starts), and a
  passed deadline is a :class:`~airflow_provider_raidiam.exceptions.ResponseDeadlineError`.

In both cases the connection is closed, never returned half-read to the pool.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
from urllib3.connection import HTTPSConnection

from airflow_provider_raidiam.exceptions import ResponseDeadlineError, ResponseTooLargeError

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""64 MiB: over ten times a 1,000-record page of software statements, and of today's public participants list."""

DEFAULT_ATTEMPT_DEADLINE = 120.0
"""Seconds one HTTP attempt (connect, headers and body) may take."""

CHUNK_BYTES = 64 * 1024
"""Decompressed bytes read at a time: the most a gzip bomb can inflate to before the next size check."""

Clock = Callable[[], float]


class Deadline:
    """A point in time, ``seconds`` after creation on ``clock``, that no socket read waits beyond.

    :param clock: a monotonic clock in seconds; tests inject their own.
    """

    def __init__(self, seconds: float, clock: Clock = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        """Seconds left (zero or negative once passed)."""
        return self._end - self._clock()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.remaining() <= 0

    def socket_timeout(self, timeout: float | None) -> float:
        """The timeout for the next socket operation: ``timeout``, cut to the time left.

        :raises TimeoutError: the deadline has passed (socket timeouts are ``TimeoutError`` too).
        """
        remaining = self.remaining()
        if remaining <= 0:
            raise TimeoutError(f"the attempt deadline of {self.seconds:g}s has passed")
        return remaining if timeout is None else min(timeout, remaining)


@dataclass(frozen=True)
class ResponseLimits:
    """The bounds every response of a session is read within.

    :param max_bytes: most body bytes accepted, counted after decompression.
    :param attempt_deadline: seconds one attempt (connect, headers and body) may take.
    :param clock: the clock deadlines are measured on.
    """

    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    attempt_deadline: float = DEFAULT_ATTEMPT_DEADLINE
    clock: Clock = field(default=time.monotonic, repr=False)

    def start_attempt(self) -> Deadline:
        """The deadline of an attempt starting now."""
        return Deadline(self.attempt_deadline, self.clock)


def read_body(response: requests.Response, max_bytes: int, deadline: Deadline) -> bytes:
    """Read the (streamed) body of ``response``, decompressed, within ``max_bytes`` and ``deadline``.

    :raises ResponseTooLargeError: the body holds more than ``max_bytes`` bytes after decompression, or
        declares so in ``Content-Length``; the connection is closed without reading further.
    :raises ResponseDeadlineError: the deadline passed before the body was complete.
    """
    declared = response.headers.get("Content-Length", "")
    if "Content-Encoding" not in response.headers and declared.isdigit() and int(declared) > max_bytes:
        response.close()
        raise _too_large(response, max_bytes, f"declares a {int(declared):,}-byte body (Content-Length), more")
    body = bytearray()
    for chunk in response.iter_content(CHUNK_BYTES):
        body += chunk
        if len(body) > max_bytes:
            response.close()
            raise _too_large(response, max_bytes, "sent more")
        if deadline.expired():
            response.close()
            raise deadline_error(response.request, deadline)
    return bytes(body)


def _too_large(response: requests.Response, max_bytes: int, what: str) -> ResponseTooLargeError:
    decompressed = " after decompression" if "Content-Encoding" in response.headers else ""
    return ResponseTooLargeError(
        f"{response.request.method} {response.url} {what} than the {max_bytes:,}-byte limit on a response"
        f"{decompressed}; it was refused and the connection closed. If a Directory response is really this "
        "large, raise the connection extra 'max_response_bytes' (or read smaller pages with 'page_size').",
        limit=max_bytes,
        status=response.status_code,
        url=response.url,
    )


def deadline_error(request: requests.PreparedRequest, deadline: Deadline) -> ResponseDeadlineError:
    """The error for an attempt that ran out of time (the caller closes the connection)."""
    return ResponseDeadlineError(
        f"{request.method} {request.url} did not complete within the {deadline.seconds:g}s deadline of one "
        "attempt (connect, headers and body); the connection was closed. The server is stalling or very "
        "slow: try again later, or raise the connection extra 'attempt_deadline' if its answers are "
        "legitimately this slow.",
        deadline=deadline.seconds,
        url=request.url,
    )


# -- socket reads that respect the deadline ------------------------------------------------------------

_current_deadline: ContextVar[Deadline | None] = ContextVar("raidiam_attempt_deadline", default=None)


@contextlib.contextmanager
def attempt_within(deadline: Deadline) -> Iterator[None]:
    """Connections opened and responses started in this block (this thread) read within ``deadline``."""
    token = _current_deadline.set(deadline)
    try:
        yield
    finally:
        _current_deadline.reset(token)


class _DeadlineReader(io.RawIOBase):
    """A socket's raw reader (``raw``, from ``makefile``) whose every read times out at the deadline at the latest."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._raw = raw
        self._socket = sock
        self._deadline = deadline
        self._read_timeout = sock.gettimeout()
        self._timeout = self._read_timeout

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: Any) -> int | None:
        timeout = self._deadline.socket_timeout(self._read_timeout)
        if timeout != self._timeout:
            self._socket.settimeout(timeout)
            self._timeout = timeout
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()  # releases the socket's reference, as the plain reader would
        super().close()


class _DeadlineHTTPResponse(http.client.HTTPResponse):
    """Reads the status line, headers and body within the deadline of the attempt that started it."""

    def __init__(self, sock: Any, debuglevel: int = 0, method: str | None = None, url: str | None = None) -> None:
        super().__init__(sock, debuglevel, method, url)
        deadline = _current_deadline.get()
        if deadline is not None:  # nothing was read yet: put the deadline between the buffer and the socket
            self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, deadline))


class DeadlineHTTPSConnection(HTTPSConnection):
    """urllib3's HTTPS connection whose responses read within the current attempt's deadline."""

    response_class = _DeadlineHTTPResponse


class DeadlineHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    """An HTTPS pool of :class:`DeadlineHTTPSConnection`."""

    ConnectionCls = DeadlineHTTPSConnection


def connect_within(timeout: Any, deadline: Deadline) -> tuple[float, float] | tuple[float, None]:
    """requests' ``timeout`` (seconds, or a (connect, read) pair) with the connect part cut to the deadline."""
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    connect = deadline.socket_timeout(connect)
    return (connect, None) if read is None else (connect, read)
