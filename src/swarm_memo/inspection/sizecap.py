"""``swarm-memo gc --max-bytes SIZE``: remove least-recently-written params sets until the
cache fits, never one that a live run holds claims on.

A set is *live* when some process holds a record lock on its ``claims.lock`` (tested
with a non-blocking lock of the whole file, released at once; the file is never created)
or, on object stores, when it has a lease object younger than a lease's lifetime.
"""

from __future__ import annotations

import os
import re
import time

from swarm_memo.cache.layout import SetPaths
from swarm_memo.cache.leases import LEASE_SECONDS
from swarm_memo.cache.listing import SetSummary, walk_files
from swarm_memo.errors import InspectError
from swarm_memo.stores.base import Store

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?b)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}


def parse_size(text: str) -> int:
    """``'10G'`` -> bytes (units K, M, G, T, P are powers of 1024; ``B``/``iB`` optional)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise InspectError(
            f"bad size {text!r}: use a number and an optional unit K, M, G or T "
            "(e.g. 10G, 500M, 1.5T; powers of 1024)"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _locked(path: str) -> bool:
    """Whether another process holds a record lock anywhere in the file at ``path``."""
    if fcntl is None:  # pragma: no cover - Windows: no claims between processes
        return False
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))  # never O_CREAT: a read
    except OSError:
        return False  # no lock file (or not ours to open): no claims held
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 0, 0)  # the whole file and beyond
        except OSError:
            return True
        fcntl.lockf(fd, fcntl.LOCK_UN, 0, 0)
        return False
    finally:
        os.close(fd)


def is_live(store: Store, set_id: str, now: float | None = None) -> bool:
    """Whether a running process holds claims on chunks of ``set_id``."""
    paths = SetPaths(set_id)
    lock = store.lock_path(paths.claims)
    if lock is not None and _locked(lock):
        return True
    now = time.time() if now is None else now
    return any(now - f.mtime < LEASE_SECONDS for f in walk_files(store, paths.leases))


def cache_bytes(store: Store) -> int:
    """Bytes of every file of the cache (quarantine and temp files included)."""
    return sum(f.size for f in walk_files(store, ""))


def over_cap(
    store: Store,
    sets: list[SetSummary],
    chosen: set[str],
    max_bytes: int,
    freed: int,
) -> tuple[list[SetSummary], list[SetSummary]]:
    """(sets to remove, live sets kept) so that the cache minus ``freed`` bytes (already
    planned) fits in ``max_bytes``: least recently written first, skipping live sets."""
    if max_bytes < 0:
        raise InspectError("--max-bytes must not be negative")
    size = cache_bytes(store) - freed
    remove: list[SetSummary] = []
    kept: list[SetSummary] = []
    for summary in sorted(sets, key=lambda s: (s.last_activity, s.set_id)):
        if size <= max_bytes:
            break
        if summary.set_id in chosen:
            continue
        if is_live(store, summary.set_id):
            kept.append(summary)
            continue
        remove.append(summary)
        size -= summary.bytes
    return remove, kept
