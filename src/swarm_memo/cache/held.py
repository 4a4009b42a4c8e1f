"""What every kind of chunk claims keeps for one run: the names it holds, and whether
another run held a chunk it wanted (record locks: :mod:`swarm_memo.cache.claims`; lease
objects: :mod:`swarm_memo.cache.leases`)."""

from __future__ import annotations


class HeldClaims:
    """The chunk names one run holds claimed; subclasses claim and release one name."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self.contended = False
        """True once another run held a chunk this run wanted."""

    @property
    def held(self) -> int:
        """How many chunks this run holds claimed."""
        return len(self._held)

    def release(self, name: str) -> None:
        raise NotImplementedError

    def release_all(self) -> None:
        """Release every claim this run holds."""
        for name in list(self._held):
            self.release(name)
