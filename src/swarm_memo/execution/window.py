"""How many exec chunks a run keeps in flight, and where finished ones report.

The window starts at about two exec chunks per worker and grows by one each time a
worker reports waiting between two exec chunks while the engine had more to send (the
driver or the transport is too slow to keep it fed), up to
:data:`MAX_IN_FLIGHT_PER_WORKER`.
"""

from __future__ import annotations

from collections.abc import Hashable
from concurrent.futures import Future
from queue import Empty, SimpleQueue
from typing import Any

MAX_IN_FLIGHT_PER_WORKER = 8
"""The window never grows beyond this many exec chunks per worker (memory bound)."""
IDLE_SHARE = 0.05
IDLE_FLOOR_SECONDS = 50e-6
"""A worker that waited longer than ``IDLE_SHARE`` of its exec chunk's duration plus
this floor, between two exec chunks, was starved: the window grows by one."""


class Window:
    """How many exec chunks to keep in flight; grows while workers are starved.

    Workers report when each exec chunk started and finished by their own clock; the
    wait between two exec chunks of one worker thread is time it spent idle.
    """

    def __init__(self, workers: int, per_worker: int) -> None:
        self.size = max(2, per_worker * workers)
        self.limit = max(self.size, MAX_IN_FLIGHT_PER_WORKER * workers)
        self._last_finish: dict[Hashable, float] = {}

    def observe(self, worker: Hashable, started: float, finished: float, fed: bool) -> None:
        """Record one exec chunk; ``fed``: the engine had more to submit meanwhile."""
        previous = self._last_finish.get(worker)
        self._last_finish[worker] = finished
        if previous is None or not fed or self.size >= self.limit:
            return
        idle = started - previous
        if idle > IDLE_SHARE * (finished - started) + IDLE_FLOOR_SECONDS:
            self.size += 1


class Completions:
    """Where finished futures report: one wake-up per burst of completions, without
    installing a waiter on every pending future at each wait."""

    def __init__(self) -> None:
        self._queue: SimpleQueue[Future[Any]] = SimpleQueue()

    def watch(self, future: Future[Any]) -> None:
        future.add_done_callback(self._queue.put)

    def wait(self, timeout: float | None) -> set[Future[Any]]:
        """The futures done since the last call; blocks until one is (or ``timeout``)."""
        try:
            done = {self._queue.get(timeout=timeout)}
        except Empty:
            return set()
        while True:
            try:
                done.add(self._queue.get_nowait())
            except Empty:
                return done
