"""Graceful stops: SIGTERM (Slurm's time limit, ``scancel``), SIGUSR1 (``sbatch --signal``),
Ctrl-C and a ``deadline`` all stop a run the same way.

The driver says at once that it stops (``stopping: waiting up to 20 s for 2 running points;
Ctrl-C again to stop now``), starts no new point (workers drop the exec chunks queued to
them), gives the points running ``grace_seconds`` to finish, stores every finished point
(memo chunks left incomplete become partial chunk files that point-level reuse serves),
says how many points of the request are stored (``4 of 6 points stored; run again to
compute the remaining 2``), then raises: :class:`KeyboardInterrupt` for Ctrl-C,
:class:`~swarm_memo.errors.RunInterrupted` otherwise (a non-zero exit for a batch job).

A second signal skips the rest of the grace period (running points are abandoned), never
the storing of points already finished: one that lands while points are being stored
takes effect once they are stored. A third stops at once. Handlers are installed only
while a run computes, only in the main thread, and stay until every finished point is
stored; the previous ones are restored afterwards.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import FrameType
from typing import Any

from swarm_memo.errors import RunInterrupted, SpecError

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1") if hasattr(signal, name)
)


def parse_deadline(value: Any) -> float | datetime | None:
    """``deadline=``: None, seconds from the start of each call, or a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise SpecError(
            f"deadline must be None, a number of seconds > 0 or a datetime; got {value!r}"
        )
    return float(value)


def _signal_name(signum: int | None) -> str:
    return "the deadline" if signum is None else signal.Signals(signum).name


def _again(signum: int | None) -> str:
    if signum == signal.SIGINT:
        return "Ctrl-C again to stop now"
    if signum is None:
        return "Ctrl-C or SIGTERM to stop now"
    return f"send {_signal_name(signum)} again to stop now"


class StopRequest:
    """Whether, and why, the current run should stop; the signals it got while stopping.

    ``signals`` counts the stop signals received. The first one asks for a graceful
    stop; the second makes :meth:`hurry` true (the engine gives up the running points) and
    raises at once unless points are being stored (:meth:`storing`); the third raises at
    once wherever it lands.
    """

    def __init__(self, deadline: float | datetime | None) -> None:
        self.signum: int | None = None
        self.signals = 0
        self.forced = False
        """A signal stopped the run at once (nothing more is stored after it)."""
        self._storing = 0
        self._hurry = False
        self._hurried_by: int | None = None
        if isinstance(deadline, datetime):
            deadline = deadline.timestamp() - time.time()
        self._deadline = None if deadline is None else time.monotonic() + deadline

    def __call__(self) -> bool:
        if self.signum is None and self._deadline is not None:
            return time.monotonic() >= self._deadline
        return self.signum is not None

    def hurry(self) -> bool:
        """A second signal came: give up the points still running."""
        return self._hurry

    @property
    def is_storing(self) -> bool:
        return self._storing > 0

    @contextmanager
    def storing(self) -> Iterator[None]:
        """Finished points are being stored: a second signal waits until they are."""
        self._storing += 1
        try:
            yield
        finally:
            self._storing -= 1

    def on_signal(self, signum: int) -> None:
        """What a stop signal does (called by the handler, in the main thread)."""
        self.signals += 1
        if self.signals == 1:
            self.signum = signum
            return
        self._hurry = True
        self._hurried_by = signum
        if self.signals == 2 and self.is_storing:
            return  # the engine gives up the running points once these are stored
        self.forced = self.signals > 2
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        which = "second" if self.signals == 2 else "third"
        name = _signal_name(signum)
        raise RunInterrupted(f"swarm-memo: stopped at once by a {which} {name}", signum=signum)

    def stopping_line(self, running: int, grace: float) -> str:
        """The line printed once the run notices the stop."""
        why = "" if self.signum is not None else " (the deadline passed)"
        if running == 0:
            return f"stopping{why}: storing the finished points"
        plural = "" if running == 1 else "s"
        return (
            f"stopping{why}: waiting up to {grace:g} s for {running} running point{plural}; "
            f"{_again(self.signum)}"
        )

    def error(self, stored: int, total: int) -> BaseException:
        """What the run raises once every finished point is stored."""
        left = total - stored
        done = f"{stored} of {total} points stored; run again to compute the remaining {left}"
        if left <= 0:
            done = f"all {total} points stored"
        if self._hurry:
            which = "third" if self.forced else "second"
            how = f"stopped at once by a {which} {_signal_name(self._hurried_by)}"
        elif self.signum == signal.SIGINT:
            how = "interrupted"
        else:
            why = "the deadline passed" if self.signum is None else _signal_name(self.signum)
            how = f"stopped because {why}"
        if self.signum == signal.SIGINT or self._hurried_by == signal.SIGINT:
            return KeyboardInterrupt(f"swarm-memo: {how}; {done}")
        return RunInterrupted(f"swarm-memo: {how}; {done}", signum=self.signum)


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[None]:
    """Turn stop signals into ``stop`` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.on_signal(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
