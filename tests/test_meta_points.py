"""Distinct point counts from chunk metas alone (the ``key`` / ``point_ids`` proposal)."""

from __future__ import annotations

import itertools
import random
from typing import Any

from swarm_memo.cache.chunk_meta import ChunkMeta
from swarm_memo.cache.meta_points import (
    PointCounter,
    axis_values,
    count_distinct_points,
    key_items,
    key_meta,
    point_ids_meta,
)
from swarm_memo.identity.hashing import point_digest


def product(**bins: list[Any]) -> ChunkMeta:
    axes = list(bins)
    points = 1
    for values in bins.values():
        points *= len(values)
    key = key_meta(tuple((a, tuple(v)) for a, v in bins.items()), axes)
    return ChunkMeta.parse({"product": True, "axes": axes, "points": points, "key": key})


def enumerated(points: list[Any]) -> ChunkMeta:
    ids = point_ids_meta(point_digest(p) for p in points)
    return ChunkMeta.parse({"product": False, "points": len(points), "point_ids": ids})


def test_same_points_in_several_chunk_files_count_once() -> None:
    first = [product(x=[1, 2], y=["a"]), product(x=[3], y=["a"])]
    rebinned = [product(x=[1, 2, 3], y=["a"]), product(x=[4], y=["a"])]
    assert count_distinct_points(first) == (3, True)
    assert count_distinct_points(first + rebinned) == (4, True)
    assert count_distinct_points(first + first) == (3, True)


def test_axis_order_does_not_matter() -> None:
    xy = product(x=[1, 2], y=[5, 6])
    yx = product(y=[5, 6], x=[2, 1])
    assert count_distinct_points([xy, yx]) == (4, True)


def test_values_count_by_canonical_identity() -> None:
    nan = float("nan")
    metas = [product(v=[1, 1.0, True, "1", None, -0.0, 0.0]), product(v=[nan]), product(v=[nan])]
    assert count_distinct_points(metas) == (8, True)
    assert count_distinct_points([product(v=[(1, 2)]), product(v=[(1, 2), (2, 1)])]) == (2, True)


def test_int_runs_and_lists_are_the_same_values() -> None:
    run = product(x=list(range(0, 100, 3)))
    assert run.key[0][1] == {"range": [0, 100, 3]}
    listed = product(x=[0, 3, 6])
    assert listed.key[0][1] == {"range": [0, 7, 3]}
    assert count_distinct_points([run, listed]) == (34, True)
    assert product(x=[3, 2, 1]).key[0][1] == {"range": [3, 0, -1]}
    assert product(x=[1, 2, 4]).key[0][1] == [1, 2, 4]


def test_enumerated_points_count_by_digest() -> None:
    metas = [enumerated([(1, 1), (1, 2)]), enumerated([(1, 2), (2, 2)]), enumerated([])]
    assert count_distinct_points(metas) == (3, True)


def test_chunks_without_identities_are_added_as_is_and_flagged() -> None:
    legacy = ChunkMeta.parse({"product": True, "points": 6, "axes": ["x"]})
    broken = ChunkMeta.parse({"product": False, "points": 2, "point_ids": "abc"})  # 3 chars
    assert count_distinct_points([product(x=[1, 2]), legacy, broken]) == (10, False)
    junk = ChunkMeta.parse({"product": True, "points": 2, "key": "junk"})
    assert count_distinct_points([junk]) == (2, False)


def test_fast_path_agrees_with_the_union() -> None:
    rng = random.Random(7)
    for _ in range(200):
        metas = []
        for _ in range(rng.randint(1, 6)):
            xs = sorted(rng.sample(range(8), rng.randint(1, 4)))
            ys = sorted(rng.sample("abc", rng.randint(1, 3)))
            metas.append(product(x=xs, y=ys))
        truth = {
            point
            for m in metas
            for point in itertools.product(*(key_items(dict(m.key or ())[a]) for a in ("x", "y")))
        }
        counter = PointCounter()
        for m in metas:
            counter.add(m)
        assert counter.total() == len(truth)


def test_axis_values_for_info() -> None:
    metas = [product(x=[1, 2], y=["a"]), product(x=[2, 3], y=[float("inf")])]
    values = axis_values(metas)
    assert values["x"] == [1, 2, 3]
    assert values["y"] == ["a", "inf"]
