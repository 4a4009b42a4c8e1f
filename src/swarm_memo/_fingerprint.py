"""A fingerprint of what a callable computes, to notice that ``exec_fn`` has changed.

:func:`code_fingerprint` digests the *behaviour-defining* parts of a callable: bytecode,
constants (nested code objects included: lambdas, comprehensions, inner functions), the
names it uses, its signature shape, defaults, and the values it closes over. It leaves
out where the code sits: file name, line numbers, module and qualified name, docstring.
So moving a function down its file, or running ``python sweep.py`` and then importing
``sweep.exec_fn`` from a notebook, keeps the fingerprint; editing the body changes it.

What it does not see (documented limits):

- **Globals are not followed.** A helper function or module constant that the callable
  reads through its globals is named (``co_names``) but its code/value is not included.
- **Values without a canonical encoding** (a closure over an open file, a model object)
  contribute only their type's qualified name: changing such a value does not change the
  fingerprint. Callable instances and bound methods contribute their attributes too.
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
from typing import Any

from ._hashing import digest_bytes, encode, encode_into
from .errors import UnhashableValueError

FINGERPRINT_VERSION = 1

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


def code_fingerprint(fn: Callable[..., Any]) -> bytes:
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
    out = bytearray(b"swarm-memo-code")
    encode_into((FINGERPRINT_VERSION, tuple(sys.version_info[:2])), "version", out)
    _Fingerprinter(out).callable_(fn)
    return digest_bytes(bytes(out))


def _name(value: Any) -> str:
    # The qualified name without the module: ``__main__`` for a script and ``sweep``
    # once imported name the same class.
    return str(getattr(value, "__qualname__", None) or getattr(value, "__name__", "?"))


class _Fingerprinter:
    """Writes the fingerprint bytes of callables and values into ``out``."""

    def __init__(self, out: bytearray) -> None:
        self.out = out
        self._active: dict[int, int] = {}  # id of a callable being written -> its number
        self._entered = 0

    def _str(self, text: str) -> None:
        encode_into(text, "name", self.out)

    def _guarded(self, obj: Any, write: Callable[[Any], None]) -> None:
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

    def callable_(self, fn: Any) -> None:
        """Write what ``fn`` computes."""
        self._guarded(fn, self._dispatch)

    def _dispatch(self, fn: Any) -> None:
        out = self.out
        if isinstance(fn, types.FunctionType):
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
        elif isinstance(fn, _C_CALLABLES):
            out += b"B"
            owner = getattr(fn, "__self__", None)
            module = getattr(fn, "__module__", None) or type(owner).__module__
            self._str(f"{module}.{_name(fn)}")
            if owner is not None and not isinstance(owner, types.ModuleType):
                self._bound(owner)  # e.g. config.get: depends on that dict
        elif hasattr(fn, "__dict__") or _encodable(fn):
            out += b"I"  # a callable instance: its class's code and its own state
            self._bound(fn)
        else:  # a C callable object without state we can read (a numpy ufunc)
            out += b"O"
            self._str(f"{type(fn).__module__}.{_name(type(fn))}:{_name(fn)}")

    def _function(self, fn: types.FunctionType) -> None:
        self.out += b"f"
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

    def _consts(self, consts: tuple[Any, ...] | frozenset[Any]) -> None:
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
            if klass.__module__ == "builtins":
                self._str(f"builtins.{klass.__qualname__}")
                continue
            self._str(klass.__qualname__)
            attributes = {k: v for k, v in vars(klass).items() if k not in _CLASS_METADATA}
            self.value(attributes)

    def _bound(self, obj: Any) -> None:
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
            self._str(value.__name__)
        else:
            try:
                encoding = encode(value)
            except UnhashableValueError:
                out += b"?"  # no canonical encoding: only its type discriminates
                self._str(_name(cls))
            else:
                out += b"v" + encoding

    def _sequence(self, value: list[Any] | tuple[Any, ...]) -> None:
        self.out += b"l" if type(value) is list else b"t"
        self.out += len(value).to_bytes(8, "big")
        for item in value:
            self.value(item)

    def _unordered(self, value: dict[Any, Any] | set[Any] | frozenset[Any]) -> None:
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
        sub = _Fingerprinter(bytearray())
        sub._active, sub._entered = self._active, self._entered
        return sub

    def _sorted(self, kind: str, entries: list[bytes]) -> None:
        self._str(kind)
        self.out += len(entries).to_bytes(8, "big")
        for entry in sorted(entries):
            self.out += len(entry).to_bytes(8, "big") + entry


def _encodable(value: Any) -> bool:
    try:
        encode(value)
    except UnhashableValueError:
        return False
    return True
