"""Where a cache's files live: the one module that builds their keys.

::

    cache_root/
      .gitignore                      "*"
      <set-id>/                       one folder per (params, cache_version)
        params.json                   a plain-text description of the params
        chunks/<name>.chunk           one file per memo chunk (or partial chunk)
        index/<time>-<id>.idx         index segments: which points each chunk file holds
        requests/<start>-<run>.*.json the requests runs made (progress, coverage)
        leases/<name>                 chunk claims on stores without locks
        claims.lock                   chunk claims between processes (record locks)
        claim_grid.json               the bins claims cover (the first claiming run's)
      .quarantine/<set-id>/...        damaged files moved aside, never deleted

Keys are relative to the cache root, ``/``-separated, for any :class:`Store`.
"""

from __future__ import annotations

from dataclasses import dataclass

CHUNK_SUFFIX = ".chunk"
PARAMS_FILE = "params.json"
OLD_PARAMS_FILE = "params.pkl"
"""The params of swarm-memo 0.1 (a pickle): recognised, never loaded."""
CLAIMS_FILE = "claims.lock"
CLAIM_GRID_FILE = "claim_grid.json"
QUARANTINE = ".quarantine"


@dataclass(frozen=True)
class SetPaths:
    """The keys of one params set's files and folders."""

    set_id: str

    @property
    def root(self) -> str:
        return self.set_id

    @property
    def chunks(self) -> str:
        return f"{self.set_id}/chunks"

    @property
    def index(self) -> str:
        return f"{self.set_id}/index"

    @property
    def requests(self) -> str:
        return f"{self.set_id}/requests"

    @property
    def leases(self) -> str:
        return f"{self.set_id}/leases"

    @property
    def claims(self) -> str:
        return f"{self.set_id}/{CLAIMS_FILE}"

    @property
    def claim_grid(self) -> str:
        return f"{self.set_id}/{CLAIM_GRID_FILE}"

    @property
    def params(self) -> str:
        return f"{self.set_id}/{PARAMS_FILE}"

    @property
    def old_params(self) -> str:
        return f"{self.set_id}/{OLD_PARAMS_FILE}"

    def chunk(self, name: str) -> str:
        """The key of the chunk file ``name``."""
        return f"{self.chunks}/{name}{CHUNK_SUFFIX}"

    @property
    def folders(self) -> tuple[str, ...]:
        """Every folder of the set, deepest first after the chunks (``clear`` empties
        them all)."""
        return (self.chunks, self.index, self.requests, self.leases)

    @property
    def files(self) -> tuple[str, ...]:
        """The set's own files outside its folders."""
        return (self.params, self.claims, self.claim_grid)


def quarantine_key(key: str) -> str:
    """Where a damaged file at ``key`` is moved (a suffix keeps every copy apart)."""
    return f"{QUARANTINE}/{key}"
