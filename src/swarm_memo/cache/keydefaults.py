"""What keys a request: declared defaults and ignored arguments.

- ``ignore``: params keys passed to ``exec_fn`` but never part of the key (a Dask client,
  a log folder); they need no canonical encoding.
- ``defaults``: the value every run used before a name existed. A params key whose value
  encodes like its default is left out of the key, so the params set is the one stored
  before the key was added. An *axis* with a default: a point at the default value is
  also looked up, in the same params set, as the point without that axis (the chunk
  files of the sweep before the axis existed). Nothing is written for it: declaring a
  default changes no file, and removing it again only stops that lookup.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence

from swarm_memo.cache.index import Found, PointIndex
from swarm_memo.errors import SpecError, SpecTypeError
from swarm_memo.identity.grid import Chunk, strides
from swarm_memo.identity.hashing import encode, point_digest


def parse_ignore(ignore: object, axes: Iterable[str], where: str = "ignore") -> frozenset[str]:
    """Validate ``ignore`` (a sequence of names, none of them an axis)."""
    if isinstance(ignore, (str, bytes)) or not isinstance(ignore, Iterable):
        raise SpecTypeError(f"{where} must be a sequence of names; got {ignore!r:.80}")
    names = list(ignore)
    for name in names:
        if not isinstance(name, str):
            raise SpecTypeError(f"{where} must hold names (str); got {name!r:.80}")
    axes_named = sorted(set(names) & set(axes))
    if axes_named:
        raise SpecError(
            f"{where} names the axis {axes_named[0]!r}: axes are always part of the key"
        )
    return frozenset(names)


def parse_defaults(
    defaults: object, axes: Sequence[str], custom_points: bool, ignore: frozenset[str]
) -> dict[str, bytes]:
    """Validate ``defaults`` into name -> canonical encoding of its default value."""
    if defaults is None:
        return {}
    if not isinstance(defaults, Mapping):
        raise SpecTypeError(f"defaults must be a dict of name -> value; got {defaults!r:.80}")
    encoded: dict[str, bytes] = {}
    for name, value in defaults.items():
        if not isinstance(name, str):
            raise SpecTypeError(f"defaults keys must be names (str); got {name!r:.80}")
        if name in ignore:
            raise SpecError(f"defaults[{name!r}]: {name!r} is also in ignore; pick one")
        if name in axes and custom_points:
            raise SpecError(
                f"defaults[{name!r}]: a default for an axis needs the default "
                "enumerate_points (points as tuples in axis order)"
            )
        encoded[name] = encode(value, f"defaults[{name!r}]")
    return encoded


def key_params(
    params: dict[str, object], defaults: Mapping[str, bytes], ignore: frozenset[str]
) -> dict[str, object]:
    """``params`` without its ignored keys and the keys at their declared default."""
    if not defaults and not ignore:
        return params
    return {
        name: value
        for name, value in params.items()
        if name not in ignore
        and not (name in defaults and encode(value, f"params[{name!r}]") == defaults[name])
    }


def same_order(stored: Sequence[str], axes: Sequence[str], defaults: Mapping[str, bytes]) -> bool:
    """Whether a product file stored with the axes ``stored`` holds points of a request
    with ``axes``: the same axes in the same order, or those without some axes that have
    a default (their points at the default), in the same relative order."""
    stored = tuple(stored)
    if stored == tuple(axes):
        return True
    kept = tuple(a for a in axes if a in stored)
    return kept == stored and all(a in defaults for a in axes if a not in stored)


def _default_positions(chunk: Chunk, defaults: Mapping[str, bytes]) -> dict[int, int]:
    """Axis index -> position in the chunk's bin of that axis's default value."""
    places: dict[int, int] = {}
    for k, (axis, bin_index) in enumerate(chunk.origin):
        wanted = defaults.get(axis.name)
        if wanted is not None:
            encodings = axis.bin_encodings[bin_index]
            if wanted in encodings:
                places[k] = encodings.index(wanted)
    return places


def locate_defaulted(
    index: PointIndex, chunk: Chunk, taken: set[int], defaults: Mapping[str, bytes]
) -> list[Found]:
    """Stored files holding points of a product chunk at an axis default, stored without
    that axis (and without any other defaulted axis at its default): positions are flat
    indices in the chunk's product, never one in ``taken``."""
    places = _default_positions(chunk, defaults) if defaults else {}
    if not places:
        return []
    found: list[Found] = []
    taken = set(taken)
    subsets = [s for r in range(len(places), 0, -1) for s in itertools.combinations(places, r)]
    for dropped in subsets:
        kept = [k for k in range(len(chunk.axes)) if k not in dropped]
        if not kept:
            continue  # a point with no axis left is not stored as a chunk
        bins = [chunk.bins[k] for k in kept]
        hits = index.locate_product([chunk.axes[k] for k in kept], bins)
        if index.has_digests:
            hits += _by_digest(index, bins, hits)
        to_full = _full_positions(chunk, kept, {k: places[k] for k in dropped})
        for name, reduced, files in hits:
            pairs = [(to_full(r), f) for r, f in zip(reduced, files, strict=True)]
            pairs = [(p, f) for p, f in pairs if p not in taken]
            if pairs:
                taken.update(p for p, _ in pairs)
                found.append((name, [p for p, _ in pairs], [f for _, f in pairs]))
    return found


def _full_positions(chunk: Chunk, kept: list[int], fixed: dict[int, int]) -> Callable[[int], int]:
    """Flat position in the product of the ``kept`` axes' bins -> flat position in the
    chunk's product, with the other axes at the ``fixed`` positions."""
    lengths = [len(b) for b in chunk.bins]
    full_steps = strides(lengths)
    base = sum(place * full_steps[k] for k, place in fixed.items())
    kept_steps = strides([lengths[k] for k in kept])
    axes = [(kept_steps[i], lengths[k], full_steps[k]) for i, k in enumerate(kept)]

    def to_full(flat: int) -> int:
        return base + sum((flat // step) % length * full for step, length, full in axes)

    return to_full


def _by_digest(
    index: PointIndex, bins: Sequence[Sequence[object]], hits: list[Found]
) -> list[Found]:
    """Reduced points not found in product files, looked up by digest (partial chunks)."""
    done = {r for _, reduced, _ in hits for r in reduced}
    points = list(itertools.product(*bins))
    rest = [i for i in range(len(points)) if i not in done]
    if not rest:
        return []
    found = index.locate_points([point_digest(points[i]) for i in rest])
    return [(name, [rest[i] for i in req], files) for name, req, files in found]
