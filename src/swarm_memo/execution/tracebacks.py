"""Worker tracebacks that point at the user's file.

A function defined in a script or a notebook travels to workers by value (cloudpickle),
which names its code ``<dynamic-code>``: a worker's traceback then reads
``File "<dynamic-code>", line 6, in simulate``. The line numbers are kept, so the driver,
which has the function, puts back the real file and the source line.
"""

from __future__ import annotations

import functools
import linecache
import re
import types
from collections.abc import Iterator

__all__ = ["with_real_files"]

_DYNAMIC = re.compile(r'^(\s*)File "<dynamic-code>", line (\d+), in (.+)$')


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and the code of the functions, lambdas and comprehensions inside it."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _functions(fn: object, depth: int = 0) -> Iterator[types.FunctionType]:
    """The user's functions behind ``fn`` (through partials and callable objects, such as
    the wrappers of ``run_wrap``), and the same module's functions it names."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if not isinstance(fn, types.FunctionType):
        if depth < 2:
            for value in getattr(fn, "__dict__", {}).values():
                yield from _functions(value, depth + 1)
        call = next((vars(k)["__call__"] for k in type(fn).__mro__ if "__call__" in vars(k)), None)
        if not isinstance(call, types.FunctionType):
            return
        fn = call
    yield fn
    for name in fn.__code__.co_names:
        helper = fn.__globals__.get(name)
        if isinstance(helper, types.FunctionType) and helper.__module__ == fn.__module__:
            yield helper


def _locate(fn: object) -> list[tuple[str, int, int, str]]:
    """``(name, first line, last line, file)`` of every code object behind ``fn``."""
    found = []
    for function in _functions(fn):
        for code in _codes(function.__code__):
            lines = [line for _, _, line in code.co_lines() if line is not None]
            if lines and not code.co_filename.startswith("<"):
                found.append((code.co_name, min(lines), max(lines), code.co_filename))
    return found


def with_real_files(trace: str, fn: object) -> str:
    """``trace`` with each ``<dynamic-code>`` frame of ``fn``'s code given its real file
    and source line (frames it cannot place are left as they are)."""
    if "<dynamic-code>" not in trace:
        return trace
    try:
        places = _locate(fn)
    except Exception:  # an unusual callable: leave the traceback as the worker wrote it
        return trace
    out = []
    for line in trace.splitlines():
        match = _DYNAMIC.match(line)
        where = None
        if match:
            number, name = int(match.group(2)), match.group(3)
            where = next((f for n, lo, hi, f in places if n == name and lo <= number <= hi), None)
        if match is None or where is None:
            out.append(line)
            continue
        indent = match.group(1)
        out.append(f'{indent}File "{where}", line {number}, in {name}')
        source = linecache.getline(where, number).strip()
        if source:
            out.append(f"{indent}  {source}")
    return "\n".join(out) + ("\n" if trace.endswith("\n") else "")
