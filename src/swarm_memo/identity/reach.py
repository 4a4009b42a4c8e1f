"""What a code fingerprint reaches through globals (see :mod:`._fingerprint`).

Every name a function's code spells (``co_names``, nested code included) that is bound in
its globals becomes an entry ``(module, name) -> fingerprint bytes of the value``, the
module written as "" for the fingerprinted callable's own module (so a script run as
``__main__`` and imported as ``sweep`` gives the same entries). Each ``(namespace, name)``
is visited once and each value written once per fingerprint, so cycles (mutual recursion)
terminate and a helper shared by many paths costs once; entries are sorted by their
bytes, so neither traversal order, dict order nor hash seeds change the result. A user
module bound to a name is followed with the same spelled names (``mod.helper``); a name
missing from the globals but imported as a user module (``import mod`` inside the
function) likewise. Dunder names (``__name__``, ``__file__``) are where, not what: skipped.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping

from swarm_memo.identity.hashing import encode, encode_into
from swarm_memo.identity.libraries import imported_user_module, library_module


def _home_module(fn: object) -> object:
    """The module ``fn`` is defined in: its globals are entries keyed by name alone."""
    while isinstance(fn, (functools.partial, types.MethodType, staticmethod, classmethod)):
        fn = fn.func if isinstance(fn, functools.partial) else fn.__func__
    return getattr(
        fn if isinstance(fn, (type, types.FunctionType)) else type(fn), "__module__", None
    )


_LOOKUPS = frozenset(
    {"getattr", "globals", "vars", "locals", "eval", "exec", "__import__", "import_module"}
    | {"attrgetter", "__dict__"}
)
"""Names of lookups by a computed name: what they reach is not spelled, so not followed."""


def _names(code: types.CodeType) -> tuple[str, ...]:
    """Every name the code and its nested code use (globals, attributes, imports)."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _names(const)
    return tuple(dict.fromkeys(names))


class Reach:
    """What one fingerprint reaches through globals: each ``(namespace, name)`` written
    once as an entry, the entries sorted by their bytes (so traversal order, dict order
    and hash seeds do not matter)."""

    def __init__(self, root: object, write: Callable[[object, Reach], bytes]) -> None:
        self.root = root
        self._write = write  # the fingerprint bytes of a value, its globals queued here
        self.home = _home_module(root)
        self._queue: list[tuple[Mapping[str, object], tuple[str, ...]]] = []
        self._seen: set[tuple[int, str]] = set()
        self._followed: set[int] = set()
        self._bodies: dict[int, bytes] = {}  # id(value) -> its entry body, this call only
        self._kept: list[object] = []  # keeps the ids above from being reused
        self.blind = False
        """Set when a value was written by its type alone (its state not seen)."""

    def follow(self, fn: types.FunctionType) -> None:
        """Queue the names ``fn``'s code uses, to be looked up in its globals."""
        if id(fn) not in self._followed:
            self._followed.add(id(fn))
            self._kept.append(fn)
            names = _names(fn.__code__)
            self._queue.append((fn.__globals__, names))
            self.blind |= not _LOOKUPS.isdisjoint(names)

    def write_entries(self, out: bytearray) -> None:
        entries: list[bytes] = []
        while self._queue:
            namespace, names = self._queue.pop()
            for name in names:
                entry = self._entry(namespace, name, names)
                if entry is not None:
                    entries.append(entry)
        encode_into("globals", "name", out)
        out += len(entries).to_bytes(8, "big")
        for entry in sorted(entries):
            out += len(entry).to_bytes(8, "big") + entry

    def _entry(
        self, namespace: Mapping[str, object], name: str, names: tuple[str, ...]
    ) -> bytes | None:
        if name.startswith("__") and name.endswith("__"):
            return None  # module metadata (__name__, __file__): where, not what
        value = namespace.get(name, _MISSING)
        module = namespace.get("__name__")
        if value is _MISSING:  # ``import pkg.mod`` inside the function
            imported = imported_user_module(name)
            if imported is None:
                return None
            (namespace, value), module = imported, "sys.modules"
        if (id(namespace), name) in self._seen:
            return None
        self._seen.add((id(namespace), name))
        key = encode(("" if module == self.home else str(module), name))
        if isinstance(value, types.ModuleType) and not library_module(value.__name__):
            self._queue.append((vars(value), names))  # ``mod.helper``: the same names in mod
            return key + b"u" + encode(value.__name__)
        return key + self._body(value)

    def _body(self, value: object) -> bytes:
        body = self._bodies.get(id(value))
        if body is None:
            # b"S": recursion into the fingerprinted callable itself
            body = b"S" if value is self.root else self._write(value, self)
            self._bodies[id(value)] = body
            self._kept.append(value)
        return body


_MISSING = object()
