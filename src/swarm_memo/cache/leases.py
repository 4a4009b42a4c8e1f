"""Claims on object stores: lease objects created only if absent (S3's conditional PUT).

A run claims a chunk by creating ``<set-id>/leases/<chunk name>`` with
``write_if_absent`` (``If-None-Match: *``): exactly one creator wins. The lease names its
owner (host, pid, run id) and an expiry, which a background thread renews while the run
holds it; the run deletes it once the chunk is written (or given up). A lease that has
expired, or whose owner is a dead process on this host, is stale: the next run deletes
it and claims the chunk. Expiries are wall-clock times, so the machines sharing a cache
need roughly synchronised clocks (a skew of a few seconds only shortens or lengthens a
lease).

Like every claim, a lease only steers work: two runs taking over one stale lease at the
same moment may both compute the chunk (a duplicate, never a wrong result).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from typing import Any

from swarm_memo.cache.held import HeldClaims
from swarm_memo.cache.params_set import logger
from swarm_memo.stores.base import Store

LEASE_SECONDS = 60.0
"""How long a lease lasts unless renewed (shorter when ``claim_timeout`` is shorter)."""
MIN_LEASE_SECONDS = 1.0
RECHECK_SECONDS = 0.5
"""A chunk found claimed by another run is not asked about again for this long (a run
waiting on other runs' chunks would otherwise send two requests per poll)."""
_HOST = socket.gethostname()


def lease_seconds(claim_timeout: float | None) -> float:
    """A lease never outlives ``claim_timeout``: a stale one blocks no longer than that."""
    if claim_timeout is None:
        return LEASE_SECONDS
    return max(MIN_LEASE_SECONDS, min(LEASE_SECONDS, claim_timeout))


class LeaseClaims(HeldClaims):
    """The chunk claims held by one run as lease objects under ``prefix``."""

    def __init__(self, store: Store, prefix: str, claim_timeout: float | None) -> None:
        super().__init__()
        self._store = store
        self._prefix = prefix
        self._seconds = lease_seconds(claim_timeout)
        self._run = uuid.uuid4().hex
        self._busy: dict[str, float] = {}  # chunk claimed elsewhere -> when to ask again
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def between_processes(self) -> bool:
        return True

    def _key(self, name: str) -> str:
        return f"{self._prefix}/{name}"

    def _lease(self) -> bytes:
        owner = {"host": _HOST, "pid": os.getpid(), "run": self._run}
        return json.dumps({**owner, "expires": time.time() + self._seconds}).encode()

    def try_claim(self, name: str) -> bool:
        """Claim a chunk; False while another run's live lease holds it."""
        with self._lock:
            if name in self._held:
                return True
        if time.monotonic() < self._busy.get(name, 0.0):
            self.contended = True
            return False
        key = self._key(name)
        if not self._store.write_if_absent(key, self._lease(), durable=False):
            current = _parse(self._store.read(key))
            if current is not None and not _stale(current):
                self.contended = True
                self._busy[name] = time.monotonic() + RECHECK_SECONDS
                return False
            if current is not None:
                logger.info("swarm-memo: taking over the stale claim %s", self._store.url(key))
            self._store.delete(key)
            if not self._store.write_if_absent(key, self._lease(), durable=False):
                self.contended = True
                return False  # another run took it over first
        with self._lock:
            self._held.add(name)
        self._busy.pop(name, None)
        self._start_renewing()
        return True

    def release(self, name: str) -> None:
        with self._lock:
            if name not in self._held:
                return
            self._held.discard(name)
        try:
            self._store.delete(self._key(name))
        except Exception as exc:  # it expires; never fail a run over it
            logger.debug("swarm-memo: cannot remove the claim %s (%s)", name, exc)

    def release_all(self) -> None:
        self._stop.set()  # the renewer stops
        super().release_all()

    # ------------------------------------------------------------------ renewal

    def _start_renewing(self) -> None:
        with self._lock:
            if self._renewer is not None:
                return
            self._stop.clear()
            self._renewer = threading.Thread(
                target=self._renew_loop, name="swarm-memo-leases", daemon=True
            )
            self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            with self._lock:
                names = list(self._held)
            for name in names:
                try:
                    self._renew(name)
                except Exception as exc:  # a missed renewal only shortens the lease
                    logger.debug("swarm-memo: cannot renew the claim %s (%s)", name, exc)
        with self._lock:
            self._renewer = None

    def _renew(self, name: str) -> None:
        """Extend a held lease, unless another run has taken it over meanwhile."""
        key = self._key(name)
        current = _parse(self._store.read(key))
        with self._lock:
            still_held = name in self._held
        if still_held and current is not None and current.get("run") == self._run:
            self._store.write(key, self._lease(), durable=False)


def _parse(data: bytes | None) -> dict[str, Any] | None:
    """A lease's content; an unreadable one counts as stale (``{}``), a missing one None."""
    if data is None:
        return None
    try:
        lease = json.loads(data)
    except ValueError:
        return {}
    return lease if isinstance(lease, dict) else {}


def _stale(lease: dict[str, Any]) -> bool:
    """Expired, unreadable, or held by a process of this host that no longer exists."""
    expires = lease.get("expires")
    if not isinstance(expires, (int, float)) or expires < time.time():
        return True
    pid = lease.get("pid")
    if lease.get("host") != _HOST or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by another user
        return False
    return False
