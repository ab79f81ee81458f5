"""``once``: one build per instance even when threads race, and instances never wait for each other."""

from __future__ import annotations

import threading

from airflow_provider_raidiam.concurrency import once

WAIT = 60.0  # only a failure waits this long (a shared lock makes the second build wait out the first)


class Lazy:
    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        self.entered = entered
        self.release = release
        self.builds = 0

    @once
    def value(self) -> int:
        self.builds += 1
        self.entered.set()
        self.release.wait(WAIT)
        return self.builds


def test_two_instances_build_concurrently() -> None:
    first_entered, first_release = threading.Event(), threading.Event()
    second_entered = threading.Event()
    first = Lazy(first_entered, first_release)
    second = Lazy(second_entered, first_entered)  # released as soon as the first is building
    worker = threading.Thread(target=lambda: first.value)
    worker.start()
    try:
        assert first_entered.wait(WAIT)
        # the first instance is still building (holding its lock): the second must not wait for it
        assert second.value == 1
        assert worker.is_alive(), "the second instance waited for the first one's build to end"
    finally:
        first_release.set()
        worker.join()
    assert first.value == 1


def test_racing_threads_build_once_per_instance() -> None:
    entered, release = threading.Event(), threading.Event()
    lazy = Lazy(entered, release)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(lazy.value)) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert entered.wait(WAIT)
    release.set()
    for thread in threads:
        thread.join()
    assert results == [1, 1, 1, 1]
    assert lazy.builds == 1
