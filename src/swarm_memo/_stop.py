"""Graceful stops: SIGTERM (Slurm's time limit, ``scancel``), SIGUSR1 (``sbatch --signal``),
Ctrl-C and a ``deadline`` all stop a run the same way.

The driver stops submitting, gives the exec chunks in flight ``grace_seconds`` to finish,
stores every finished point (memo chunks left incomplete become partial chunk files that
point-level reuse serves), then raises: :class:`KeyboardInterrupt` for Ctrl-C,
:class:`~swarm_memo.errors.RunInterrupted` otherwise (a non-zero exit for a batch job). A
second signal while stopping stops at once. Workers ignore these signals: the driver
decides. Handlers are installed only while a run computes, only in the main thread, and
the previous ones are restored afterwards.
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

from .errors import RunInterrupted, SpecError

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


class StopRequest:
    """Whether, and why, the current run should stop."""

    def __init__(self, deadline: float | datetime | None) -> None:
        self.signum: int | None = None
        if isinstance(deadline, datetime):
            deadline = deadline.timestamp() - time.time()
        self._deadline = None if deadline is None else time.monotonic() + deadline

    def __call__(self) -> bool:
        if self.signum is None and self._deadline is not None:
            return time.monotonic() >= self._deadline
        return self.signum is not None

    def error(self, stored: int) -> BaseException:
        """What the run raises once every finished point is stored."""
        done = f"{stored} finished points of unfinished chunks were stored as partial chunks"
        if self.signum == signal.SIGINT:
            return KeyboardInterrupt(f"swarm-memo: interrupted; {done}")
        why = "the deadline passed" if self.signum is None else signal.Signals(self.signum).name
        return RunInterrupted(
            f"swarm-memo: stopped because {why}; every finished chunk is stored and {done}; "
            "run again to compute only what is missing",
            signum=self.signum,
        )


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[None]:
    """Turn stop signals into ``stop`` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.signum is None:
            stop.signum = signum
            return
        if signum == signal.SIGINT:  # a second signal: stop at once
            raise KeyboardInterrupt
        name = signal.Signals(signum).name
        raise RunInterrupted(f"swarm-memo: stopped at once by a second {name}", signum=signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
