"""Thread-safe building blocks of the client: lazy attributes, counters and an ordered, bounded fan-out."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sized
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Generic, Protocol, TypeVar, overload

T = TypeVar("T")
R = TypeVar("R")
V = TypeVar("V")

PROGRESS_INTERVAL = 10.0


class once(Generic[V]):
    """``functools.cached_property`` that builds the value once even when threads race for it.

    (Python 3.12 removed cached_property's lock; fan-out workers may touch a client's lazy parts first.)
    Each instance builds under its own lock (kept in its ``__dict__``, created under a short global guard),
    so a slow build (e.g. discovery's network call) never blocks another instance.
    """

    _guard = threading.Lock()

    def __init__(self, func: Callable[[Any], V]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def _lock_of(self, values: dict[str, Any]) -> threading.RLock:
        key = f"_once_lock_{self.name}"
        with once._guard:
            lock: threading.RLock = values.setdefault(key, threading.RLock())
        return lock

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> once[V]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> V: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> V | once[V]:
        if instance is None:
            return self
        values = instance.__dict__
        if self.name not in values:
            with self._lock_of(values):
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

    Items are drawn from the iterable as calls finish: at most ``2 * max_workers`` calls are submitted and
    not yet finished at any time, so a huge (or endless) iterable costs no memory up front and an error
    stops the drawing. A fan-out started from inside one of its own workers runs inline (no nested pools,
    no deadlock). An error cancels the calls not started yet and, once the running ones end, the first
    error in input order is raised. Progress is logged every ``PROGRESS_INTERVAL`` seconds.

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
        total = len(items) if isinstance(items, Sized) else None
        iterator = iter(items)
        head = list(itertools.islice(iterator, 2))
        if len(head) <= 1 or getattr(self._worker, "active", False):
            return [func(item) for item in itertools.chain(head, iterator)]
        executor = self._get_executor()

        def run(item: T) -> R:
            self._worker.active = True
            try:
                return func(item)
            finally:
                self._worker.active = False

        todo = itertools.chain(head, iterator)
        window = 2 * self.max_workers
        ordered: deque[Future[R]] = deque()  # submitted and not collected yet, in input order
        running: set[Future[R]] = set()
        results: list[R] = []
        started = reported = time.monotonic()
        try:
            while True:
                for item in itertools.islice(todo, window - len(running)):
                    ordered.append(executor.submit(run, item))
                    running.add(ordered[-1])
                if not running:
                    return results
                done, running = wait(running, timeout=PROGRESS_INTERVAL, return_when=FIRST_COMPLETED)
                if any(future.exception() is not None for future in done):
                    break
                while ordered and ordered[0] not in running:
                    results.append(ordered.popleft().result())
                if time.monotonic() - reported >= PROGRESS_INTERVAL:
                    reported = time.monotonic()
                    rate = len(results) / (reported - started)
                    of = "" if total is None else f"/{total}"
                    self.log.info("Progress: %d%s done (%.0f/s)%s", len(results), of, rate, self._describe_progress())
        finally:
            for future in running:
                future.cancel()
        wait(ordered)  # after a failure, let the running calls end, then raise the first in input order
        for future in ordered:
            if not future.cancelled():
                future.result()
        raise AssertionError("unreachable: a call failed")  # pragma: no cover

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
