"""Which code is the user's own and which is a library, for :mod:`._fingerprint`.

The fingerprint of a function follows what it reaches in the user's own code (scripts,
notebooks, test files, the user's modules and packages, wherever they live) and stops at
libraries, which it records by name and version instead. A *library* is:

- a builtin or frozen module, or code whose file lives under one of the interpreter's
  install folders: ``sysconfig`` paths ``stdlib``, ``platstdlib``, ``purelib`` and
  ``platlib`` of both ``sys.prefix`` and ``sys.base_prefix``, and ``site``'s
  site-packages folders (so the standard library and installed distributions);
- swarm-memo itself, wherever it is installed from.

A package installed in editable mode from the user's checkout is the user's code.
"""

from __future__ import annotations

import contextlib
import functools
import os
import site
import sys
import sysconfig
import types
from collections.abc import Mapping

_OWN_PACKAGE = __name__.partition(".")[0]
_INSTALL_PATHS = ("stdlib", "platstdlib", "purelib", "platlib")


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    """Folders (normalised, ending with a separator) holding library code."""
    folders: list[str] = []
    for base in dict.fromkeys((sys.prefix, sys.base_prefix, sys.exec_prefix)):
        bases = {"base": base, "platbase": base, "installed_base": base}
        paths = sysconfig.get_paths(vars={**bases, "installed_platbase": base})
        folders += [paths[key] for key in _INSTALL_PATHS if key in paths]
    folders += [path for key in _INSTALL_PATHS if (path := sysconfig.get_path(key))]
    with contextlib.suppress(AttributeError):  # an embedded ``site`` without these
        folders += [*site.getsitepackages(), site.getusersitepackages()]
    roots = {os.path.join(_normalised(folder), "") for folder in folders if folder}
    return tuple(sorted(roots))


def _normalised(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


@functools.lru_cache(maxsize=4096)
def library_file(filename: str) -> bool:
    """True when code compiled from ``filename`` is a library's (``co_filename``)."""
    if filename.startswith("<frozen"):
        return True
    if filename.startswith("<"):  # <stdin>, <string>, a notebook cell: the user's
        return False
    path = _normalised(filename)
    return any(path.startswith(root) for root in _library_roots())


def library_module(name: object) -> bool:
    """True when the module called ``name`` is a library (see the module docstring).

    ``__main__`` (a script, a notebook) and a module that is not imported (a namespace
    given to ``exec``) are the user's.
    """
    if not isinstance(name, str) or name in ("__main__", "__mp_main__"):
        return False
    top = name.partition(".")[0]
    if top == _OWN_PACKAGE or name in sys.builtin_module_names or name == "builtins":
        return True
    module = sys.modules.get(name)
    if not isinstance(module, types.ModuleType):  # not imported: judge by its package
        return top != name and library_module(top)
    spec = getattr(module, "__spec__", None)
    if getattr(spec, "origin", None) in ("built-in", "frozen"):
        return True
    file = getattr(module, "__file__", None)
    if isinstance(file, str):
        return library_file(file)
    paths = list(getattr(module, "__path__", None) or ())  # a namespace package
    return bool(paths) and all(isinstance(p, str) and library_file(p) for p in paths)


def imported_user_module(name: str) -> tuple[Mapping[str, object], types.ModuleType] | None:
    """``(sys.modules, module)`` when ``name`` is an imported module of the user's."""
    module = sys.modules.get(name)
    if isinstance(module, types.ModuleType) and not library_module(name):
        return sys.modules, module
    return None


def library_label(module: object, qualname: str = "") -> str:
    """``module.qualname`` and, outside the standard library, the installed version of
    its top-level package: what a fingerprint records of library code."""
    name = module if isinstance(module, str) else "?"
    version = _version(name.partition(".")[0])
    dotted = f"{name}.{qualname}" if qualname else name
    return f"{dotted}=={version}" if version else dotted


@functools.cache
def _version(top: str) -> str:
    """The version of a top-level package: its ``__version__``, else its installed
    distribution's; "" for the standard library or when neither is found."""
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return ""
    version = getattr(sys.modules.get(top), "__version__", None)
    if isinstance(version, str):
        return version
    from importlib import metadata  # ~50 ms to import: only when needed, once

    try:
        return str(metadata.version(top))
    except (metadata.PackageNotFoundError, ValueError):
        return ""
