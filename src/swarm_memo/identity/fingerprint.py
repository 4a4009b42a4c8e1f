"""A fingerprint of what a callable computes, to notice that ``exec_fn`` has changed.

:func:`code_fingerprint` digests the *behaviour-defining* parts of a callable: bytecode,
constants (nested code objects included: lambdas, comprehensions, inner functions), the
names it uses, its signature shape, defaults, and the values it closes over. It leaves
out where the code sits: file name, line numbers, module and qualified name, docstring.
So moving a function down its file, or running ``python sweep.py`` and then importing
``sweep.exec_fn`` from a notebook, keeps the fingerprint; editing the body changes it.

It also follows what the callable *reaches* through its globals (:mod:`._reach`): every
name of its code (``co_names``, nested code included) bound in its module is written as
an entry ``(module, name) -> value``, and so on from each function reached, with cycles
and shared helpers written once. Helpers (functions, classes with their methods and
attributes, callable objects, ``functools.wraps`` wrappers) defined in the user's own code
are fingerprinted like the callable; module-level values by their canonical encoding;
``mod.helper`` through a user module ``mod`` follows the code's names in ``mod``.
Library code (:mod:`._libraries`: the standard library, installed distributions and
swarm-memo itself) is recorded by qualified name and installed version, never descended.

What it does not see (documented limits):

- **Values without a canonical encoding** (an open file, a model object) contribute only
  their type (with the code of that type when it is the user's): changing such a value
  does not change the fingerprint. The callable itself (a callable instance, the object
  of a bound method) contributes its attributes too.
- **Names the code does not spell**: ``globals()["f"]``, ``getattr(mod, name)``, a module
  reached only through a closure, and dunder names (``__name__``, ``__file__``).
- **A call's own state changes.** :func:`call_fingerprint` (what calls are keyed and
  stamped with) maps the fingerprint a function had after a call ran it back to the one
  the call ran with, in this process: a list it appends to is not a code change.
- **Python minor versions** compile to different bytecode, so ``sys.version_info[:2]`` is
  part of the fingerprint: upgrading Python counts as a code change.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import sys
import types
from collections.abc import Callable
from typing import Any, TypeVar

from swarm_memo.errors import UnhashableValueError
from swarm_memo.identity.hashing import digest_bytes, encode, encode_into
from swarm_memo.identity.libraries import library_file, library_label, library_module
from swarm_memo.identity.reach import Reach

_T = TypeVar("_T")

FINGERPRINT_VERSION = 2
"""2: follows globals into the user's own code; libraries by name and version."""

_BEHAVIOUR_FLAGS = (
    inspect.CO_VARARGS
    | inspect.CO_VARKEYWORDS
    | inspect.CO_GENERATOR
    | inspect.CO_COROUTINE
    | inspect.CO_ITERABLE_COROUTINE
    | inspect.CO_ASYNC_GENERATOR
)
"""co_flags that change behaviour (not CO_NESTED, not ``from __future__`` flags)."""

_C_CALLABLES = (
    types.BuiltinFunctionType,
    types.BuiltinMethodType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)
_CALLABLE_VALUES = (
    *_C_CALLABLES,
    types.FunctionType,
    types.MethodType,
    functools.partial,
    staticmethod,
    classmethod,
    type,
)
"""Values fingerprinted as code rather than encoded as data."""
_CLASS_METADATA = frozenset(
    {
        "__module__",
        "__qualname__",
        "__doc__",
        "__dict__",
        "__weakref__",
        "__annotations__",
        "__slotnames__",  # added by copyreg when an instance is first pickled
    }
)


def code_fingerprint(fn: Callable[..., object]) -> bytes:
    """Return a 16-byte digest of what ``fn`` computes.

    Parameters
    ----------
    fn
        A function, lambda, closure, ``functools.partial``, bound method, callable
        instance, class or builtin.

    Returns
    -------
    bytes
        ``DIGEST_SIZE`` bytes; equal for the same code wherever it was defined or
        imported from, in any process, under any ``PYTHONHASHSEED``.

    Examples
    --------
    >>> def scale(k):
    ...     return lambda p, x: x * k
    >>> code_fingerprint(scale(10)) == code_fingerprint(scale(100))
    False
    """
    return _fingerprint(fn)[0]


def seeing_fingerprint(fn: Callable[..., object]) -> bytes | None:
    """:func:`code_fingerprint` when it saw the state of everything ``fn`` reaches; None
    when it met a value it sees only by its type (see the limits above: an object without
    a canonical encoding, a slotted or C callable) or could not be taken. What stands for
    a call's *result* (a custom enumerator's points) needs this one: a change the
    fingerprint cannot see would otherwise go unnoticed."""
    try:
        digest, blind = _fingerprint(fn)
    except Exception:  # a proxy whose attributes raise, nesting beyond the recursion limit
        return None
    return None if blind else digest


def _fingerprint(fn: Callable[..., object]) -> tuple[bytes, bool]:
    """The fingerprint, and whether a value was seen only by its type."""
    out = bytearray(b"swarm-memo-code")
    encode_into((FINGERPRINT_VERSION, tuple(sys.version_info[:2])), "version", out)
    reach = Reach(fn, _value_bytes)
    _Fingerprinter(out, reach).callable_(fn)
    reach.write_entries(out)
    return digest_bytes(bytes(out)), reach.blind


_OWN_STATE: dict[bytes, bytes] = {}
"""Fingerprint a function had after a call ran it -> the one it was called with."""
_OWN_STATE_LIMIT = 4096


def call_fingerprint(fn: Callable[..., object]) -> str:
    """The fingerprint (hex) a call of ``fn`` is keyed and stamped with: taken now, so
    an edit made since the last call is seen; but when ``fn``'s only change since a call
    of this process is what that call's own run did to the state it holds (a list it
    appends to, a memo dict it fills), the fingerprint that call ran with."""
    fingerprint = code_fingerprint(fn)
    return _OWN_STATE.get(fingerprint, fingerprint).hex()


def ran(fn: Callable[..., object], code: str) -> None:
    """Record, after a call keyed by ``code`` ran ``fn``, the state ``fn`` left behind."""
    after = code_fingerprint(fn)
    if after.hex() != code:
        if len(_OWN_STATE) >= _OWN_STATE_LIMIT:
            del _OWN_STATE[next(iter(_OWN_STATE))]
        _OWN_STATE[after] = bytes.fromhex(code)


def _name(value: object) -> str:
    # The qualified name without the module: ``__main__`` for a script and ``sweep``
    # once imported name the same class.
    return str(getattr(value, "__qualname__", None) or getattr(value, "__name__", "?"))


class _Fingerprinter:
    """Writes the fingerprint bytes of callables and values into ``out``."""

    def __init__(self, out: bytearray, reach: Reach) -> None:
        self.out = out
        self.reach = reach
        self._active: dict[int, int] = {}  # id of a callable being written -> its number
        self._entered = 0

    def _str(self, text: str) -> None:
        encode_into(text, "name", self.out)

    def _guarded(self, obj: _T, write: Callable[[_T], None]) -> None:
        """``write(obj)``, or a back-reference when ``obj`` is met again inside itself."""
        number = self._active.get(id(obj))
        if number is not None:
            self.out += b"R" + number.to_bytes(4, "big")
            return
        self._active[id(obj)] = self._entered
        self._entered += 1
        try:
            write(obj)
        finally:
            del self._active[id(obj)]

    def callable_(self, fn: object) -> None:
        """Write what ``fn`` computes."""
        self._guarded(fn, self._dispatch)

    def _dispatch(self, fn: object) -> None:
        out = self.out
        if isinstance(fn, types.FunctionType):
            if library_module(fn.__module__) or library_file(fn.__code__.co_filename):
                out += b"L"
                self._str(library_label(fn.__module__, _name(fn)))
            else:
                self._function(fn)
        elif isinstance(fn, functools.partial):
            out += b"P"
            self.callable_(fn.func)
            self.value(fn.args)
            self.value(fn.keywords)
        elif isinstance(fn, types.MethodType):
            out += b"M"
            self.callable_(fn.__func__)
            self._bound(fn.__self__)
        elif isinstance(fn, type):
            self._class(fn)
        elif isinstance(fn, (staticmethod, classmethod)):
            out += b"W"
            self.callable_(fn.__func__)
        else:
            self._other_callable(fn)

    def _other_callable(self, fn: object) -> None:
        """C callables, library wrappers, callable instances, opaque C objects."""
        out = self.out
        if isinstance(fn, _C_CALLABLES):
            out += b"B"
            owner = getattr(fn, "__self__", None)
            module = getattr(fn, "__module__", None) or type(owner).__module__
            self._str(f"{module}.{_name(fn)}")
            if owner is not None and not isinstance(owner, types.ModuleType):
                self._bound(owner)  # e.g. config.get: depends on that dict
        elif library_module(type(fn).__module__) and callable(_wrapped(fn)):
            out += b"w"  # a library's wrapper (functools.lru_cache): the code it wraps
            self._str(library_label(type(fn).__module__, _name(type(fn))))
            self.callable_(_wrapped(fn))
        elif hasattr(fn, "__dict__") or _encodable(fn):
            out += b"I"  # a callable instance: its class's code and its own state
            self._bound(fn)
        else:  # a C callable object without state we can read (a numpy ufunc)
            self.reach.blind = True
            out += b"O"
            self._str(f"{type(fn).__module__}.{_name(type(fn))}:{_name(fn)}")

    def _function(self, fn: types.FunctionType) -> None:
        self.out += b"f"
        self.reach.follow(fn)
        doc = fn.__doc__ if isinstance(fn.__doc__, str) else None
        self._code(fn.__code__, doc)
        self.value(fn.__defaults__)
        self.value(fn.__kwdefaults__)
        cells = fn.__closure__ or ()
        self.out += len(cells).to_bytes(4, "big")
        for cell in cells:
            try:
                content = cell.cell_contents
            except ValueError:  # a cell not yet filled (a recursive inner function)
                self.out += b"E"
            else:
                self.value(content)

    def _code(self, code: types.CodeType, doc: str | None = None) -> None:
        out = self.out
        out += b"c"
        encode_into(code.co_code, "co_code", out)
        encode_into(getattr(code, "co_exceptiontable", b""), "co_exceptiontable", out)
        nargs = code.co_argcount + code.co_kwonlyargcount
        flags = code.co_flags & _BEHAVIOUR_FLAGS
        nargs += bool(flags & inspect.CO_VARARGS) + bool(flags & inspect.CO_VARKEYWORDS)
        counts = (code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, flags)
        encode_into(counts, "counts", out)
        encode_into(code.co_varnames[:nargs], "argument names", out)
        encode_into(code.co_names, "co_names", out)
        consts = code.co_consts
        if doc is not None and consts[:1] == (doc,):
            consts = (None, *consts[1:])  # a docstring does not change behaviour
        self._consts(consts)

    def _consts(self, consts: tuple[object, ...] | frozenset[object]) -> None:
        if isinstance(consts, frozenset):  # `x in {1, 2}`: order by bytes, not by hash
            entries = []
            for const in consts:
                sub = self._sub()
                sub._consts((const,))
                entries.append(bytes(sub.out))
            self._sorted("frozenset", entries)
            return
        out = self.out
        out += b"t" + len(consts).to_bytes(4, "big")
        for const in consts:
            if isinstance(const, types.CodeType):
                self._code(const)
            elif isinstance(const, (tuple, frozenset)):
                self._consts(const)
            elif isinstance(const, complex):
                encode_into(("complex", const.real, const.imag), "const", out)
            elif const is Ellipsis:
                out += b"."
            else:
                encode_into(const, "const", out)

    def _class(self, cls: type) -> None:
        self.out += b"K"
        for klass in cls.__mro__:
            if klass is object:
                continue
            if library_module(klass.__module__):
                self._str(library_label(klass.__module__, klass.__qualname__))
                continue
            self._str(klass.__qualname__)
            attributes = {k: v for k, v in vars(klass).items() if k not in _CLASS_METADATA}
            self.value(attributes)

    def _bound(self, obj: object) -> None:
        """The object a method runs on: its class's code, then its value or attributes."""
        if isinstance(obj, type):
            self.callable_(obj)
            return
        self.out += b"o"
        self.callable_(type(obj))
        if _encodable(obj):
            self.value(obj)
        else:
            state = getattr(obj, "__dict__", None)
            if not isinstance(state, dict) or _slotted(type(obj)):
                self.reach.blind = True  # slots (or C state) are not read
            self.value(dict(state) if isinstance(state, dict) else None)

    def value(self, value: Any) -> None:
        """Write a default, closure or attribute value; never raises."""
        out = self.out
        cls = type(value)
        if isinstance(value, _CALLABLE_VALUES):
            out += b"C"
            self.callable_(value)
        elif cls in (list, tuple):
            self._guarded(value, self._sequence)
        elif cls in (dict, set, frozenset):
            self._guarded(value, self._unordered)
        elif isinstance(value, property):
            out += b"p"
            self.value((value.fget, value.fset, value.fdel))
        elif dataclasses.is_dataclass(value):
            out += b"D"
            self._str(_name(cls))
            self.value({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
        elif isinstance(value, enum.Enum):
            out += b"e"
            self._str(_name(cls))
            self.value(value.value)
        elif isinstance(value, types.ModuleType):
            out += b"m"
            library = library_module(value.__name__)
            self.reach.blind |= not library  # a user module by name: its code not followed
            self._str(library_label(value.__name__) if library else value.__name__)
        else:
            try:
                encoding = encode(value)
            except UnhashableValueError:
                self._opaque(value)
            else:
                out += b"v" + encoding

    def _opaque(self, value: object) -> None:
        """A value without a canonical encoding: its type, with that type's code when it
        is the user's (its state is not seen); a library's wrapper of a function
        (``functools.lru_cache``) as the function it wraps."""
        cls = type(value)
        library = library_module(cls.__module__)
        if library and callable(_wrapped(value)):
            self.out += b"C"
            self.callable_(value)
            return
        self.reach.blind = True
        self.out += b"?"
        self._str(_name(cls))
        if not library:
            self.callable_(cls)

    def _sequence(self, value: list[object] | tuple[object, ...]) -> None:
        self.out += b"l" if type(value) is list else b"t"
        self.out += len(value).to_bytes(8, "big")
        for item in value:
            self.value(item)

    def _unordered(self, value: dict[object, object] | set[object] | frozenset[object]) -> None:
        """A dict or set: entries written separately, then sorted by their bytes."""
        pairs = value.items() if isinstance(value, dict) else ((v,) for v in value)
        entries = []
        for pair in pairs:
            sub = self._sub()
            for part in pair:
                sub.value(part)
            entries.append(bytes(sub.out))
        self._sorted(type(value).__name__, entries)

    def _sub(self) -> _Fingerprinter:
        """A fingerprinter writing to its own buffer, sharing this one's cycle guard."""
        sub = _Fingerprinter(bytearray(), self.reach)
        sub._active, sub._entered = self._active, self._entered
        return sub

    def _sorted(self, kind: str, entries: list[bytes]) -> None:
        self._str(kind)
        self.out += len(entries).to_bytes(8, "big")
        for entry in sorted(entries):
            self.out += len(entry).to_bytes(8, "big") + entry


def _value_bytes(value: object, reach: Reach) -> bytes:
    """The fingerprint bytes of a value reached through globals."""
    sub = _Fingerprinter(bytearray(), reach)
    sub.value(value)
    return bytes(sub.out)


def _wrapped(fn: object) -> object:
    """``fn.__wrapped__``, or None (also when a proxy's ``__getattr__`` fails)."""
    try:
        return getattr(fn, "__wrapped__", None)
    except Exception:
        return None


def _slotted(cls: type) -> bool:
    """Whether instances of ``cls`` hold state in slots (not in ``__dict__``)."""
    for klass in cls.__mro__:
        slots = vars(klass).get("__slots__", ())
        names = (slots,) if isinstance(slots, str) else slots
        if any(name not in ("__dict__", "__weakref__") for name in names):
            return True
    return False


def _encodable(value: object) -> bool:
    try:
        encode(value)
    except UnhashableValueError:
        return False
    return True
