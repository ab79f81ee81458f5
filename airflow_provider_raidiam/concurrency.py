"""Thread-safe building blocks of the client: lazy attributes, counters and an ordered, bounded fan-out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, Generic, Protocol, TypeVar, overload

T = TypeVar("T")
R = TypeVar("R")
V = TypeVar("V")

PROGRESS_INTERVAL = 10.0


class once(Generic[V]):
    """``functools.cached_property`` that builds the value once even when threads race for it.

    (Python 3.12 removed cached_property's lock; fan-out workers may touch a client's lazy parts first.)
    """

    def __init__(self, func: Callable[[Any], V]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__
        self.lock = threading.RLock()

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> once[V]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> V: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> V | once[V]:
        if instance is None:
            return self
        values = instance.__dict__
        if self.name not in values:
            with self.lock:
                if self.name not in values:
                    values[self.name] = self.func(instance)
        value: V = values[self.name]
        return value


class Counter:
    """A thread-safe counter."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.value += 1


class Logger(Protocol):
    """What the client needs of a logger (``logging.Logger`` and Airflow's task logger both fit)."""

    def debug(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...
    def info(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...
    def warning(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...


class FanOut:
    """Runs calls on at most ``max_workers`` threads and returns their results in input order.

    A fan-out started from inside one of its own workers runs inline (no nested pools, no deadlock).
    An error cancels the calls not started yet and, once the running ones end, the first error in
    input order is raised. Progress is logged every ``PROGRESS_INTERVAL`` seconds.

    :param describe_progress: extra text for progress lines (e.g. API calls and retries so far).
    """

    def __init__(self, max_workers: int, log: Logger, describe_progress: Callable[[], str] = lambda: "") -> None:
        self.max_workers = max_workers
        self.log = log
        self._describe_progress = describe_progress
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._worker = threading.local()

    def map(self, func: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[func(item) for item in items]``, concurrently."""
        items = list(items)
        if len(items) <= 1 or getattr(self._worker, "active", False):
            return [func(item) for item in items]
        executor = self._get_executor()

        def run(item: T) -> R:
            self._worker.active = True
            try:
                return func(item)
            finally:
                self._worker.active = False

        futures: list[Future[R]] = [executor.submit(run, item) for item in items]
        pending = set(futures)
        started = time.monotonic()
        try:
            while pending:
                done, pending = wait(pending, timeout=PROGRESS_INTERVAL, return_when=FIRST_EXCEPTION)
                if any(future.exception() is not None for future in done):
                    break
                if pending:
                    finished = len(futures) - len(pending)
                    rate = finished / (time.monotonic() - started)
                    self.log.info(
                        "Progress: %d/%d done (%.0f/s)%s", finished, len(futures), rate, self._describe_progress()
                    )
        finally:
            for future in pending:
                future.cancel()
        wait(futures)  # after a failure, let the running calls end, then raise the first in input order
        return [future.result() for future in futures]

    def _get_executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="raidiam")
            return self._executor

    def close(self) -> None:
        """Stop the worker threads (calls not started are cancelled)."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None
