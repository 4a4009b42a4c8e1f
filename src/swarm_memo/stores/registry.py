"""Opening a ``cache_root``: a local path, a ``file://`` URL, or any other URL.

:func:`open_store` parses the scheme of the ``cache_root`` (``C:\\data`` is a Windows path,
not a URL of scheme ``c``): no scheme or ``file`` gives a
:class:`~swarm_memo.stores.local.LocalStore`; a scheme registered with
:func:`register_store` gives what its factory builds; any other scheme an
:class:`~swarm_memo.stores.fsspec_store.FsspecStore` (``memory://``, ``s3://``, ...).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from swarm_memo.errors import SpecError, SpecTypeError
from swarm_memo.stores.base import Store
from swarm_memo.stores.local import LocalStore

StoreFactory = Callable[[str, dict[str, object] | None], Store]
"""Builds a store from a URL (scheme included) and the user's ``storage_options``."""

_FACTORIES: dict[str, StoreFactory] = {}
_SCHEME_TEXT = r"[A-Za-z][A-Za-z0-9+.\-]*"
_SCHEME = re.compile(rf"({_SCHEME_TEXT})://")


def register_store(scheme: str, factory: StoreFactory) -> None:
    """Open every ``cache_root`` of ``scheme`` with ``factory(url, storage_options)``.

    Schemes without a registered factory go to fsspec; ``file`` is always the local store.

    Parameters
    ----------
    scheme
        A URL scheme such as ``"s3"`` (case-insensitive).
    factory
        Called with the whole URL and the ``storage_options`` given to ``SwarmMemo``.

    Raises
    ------
    SpecError
        ``scheme`` is not a URL scheme, or is ``file``.
    """
    if not isinstance(scheme, str) or not re.fullmatch(_SCHEME_TEXT, scheme) or len(scheme) < 2:
        raise SpecError(f"a store scheme must be a URL scheme like 's3'; got {scheme!r}")
    if scheme.lower() == "file":
        raise SpecError("the 'file' scheme is always the local store; it cannot be replaced")
    if not callable(factory):
        raise SpecTypeError(f"a store factory must be callable; got {factory!r}")
    _FACTORIES[scheme.lower()] = factory


def unregister_store(scheme: str) -> None:
    """Forget the factory of ``scheme`` (its URLs go to fsspec again)."""
    _FACTORIES.pop(scheme.lower(), None)


def split_scheme(location: str) -> tuple[str | None, str]:
    """``(scheme, rest)`` of a URL, ``(None, location)`` for a local path.

    A scheme needs ``://`` and at least two characters, so ``C:\\data`` and ``C://data``
    (Windows drive letters) are local paths.
    """
    match = _SCHEME.match(location)
    if match is None or len(match.group(1)) < 2:
        return None, location
    return match.group(1).lower(), location[match.end() :]


def open_store(
    cache_root: str | os.PathLike[str],
    storage_options: dict[str, object] | None = None,
    *,
    durable: bool = True,
) -> Store:
    """The store of a ``cache_root``: a local path, a ``file://`` URL or another URL.
    ``durable=False`` makes a local store skip its fsyncs (object stores ignore it).

    Raises
    ------
    SpecError
        ``storage_options`` given with a local ``cache_root``; a local ``cache_root`` that
        is a file or a dangling symlink.
    """
    text = os.fspath(cache_root)
    if not isinstance(text, str):
        raise SpecTypeError(f"cache_root must be a str or path; got {cache_root!r}")
    scheme, rest = split_scheme(text)
    if scheme is None or scheme == "file":
        if storage_options:
            raise SpecError(
                "storage_options only apply to a URL cache_root (s3://..., memory://...); "
                f"cache_root {text!r} is a local path"
            )
        return LocalStore(rest if scheme == "file" else cache_root, durable=durable)
    factory = _FACTORIES.get(scheme)
    if factory is not None:
        return factory(text, storage_options)
    from swarm_memo.stores.fsspec_store import FsspecStore

    return FsspecStore(text, storage_options)
