"""The chunk meta fields ``swarm-memo ls``/``info`` need, until ``_codec`` writes them.

``ChunkRecord.meta()`` is patched to add ``key`` and ``point_ids`` (see
``swarm_memo._meta_points``) the way the proposal asks the codec to; once the codec
writes them itself, the patch changes nothing (``setdefault``).
"""

from __future__ import annotations

from typing import Any

import pytest

from swarm_memo._codec import ChunkRecord
from swarm_memo._hashing import point_digest
from swarm_memo._meta_points import key_meta, point_ids_meta


def use_proposed_meta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make chunk files written from now on carry the proposed meta fields."""
    real = ChunkRecord.meta

    def meta(self: ChunkRecord) -> dict[str, Any]:
        out = real(self)
        out.setdefault("key", key_meta(self.chunk_key, self.axes))
        if self.points is not None:
            out.setdefault("point_ids", point_ids_meta(point_digest(p) for p in self.points))
        return out

    monkeypatch.setattr(ChunkRecord, "meta", meta)
