"""swarm-memo: evaluate a function over a grid in parallel chunks, cached in reusable chunks.

Examples
--------
>>> from swarm_memo import SwarmMemo
>>> memo = SwarmMemo("./cache", {"s": 2}, 4, exec_fn=lambda params, point: point[0])
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from swarm_memo._version import __version__
from swarm_memo.errors import (
    AxisOrderWarning,
    CacheMissError,
    CacheWarning,
    CodeChangedWarning,
    CollateError,
    CorruptChunkError,
    ExecError,
    InspectError,
    RunInterrupted,
    SpecError,
    SpecTypeError,
    StoreError,
    SwarmMemoError,
    TaskFailedError,
    UnhashableValueError,
    WorkerDiedError,
)

if TYPE_CHECKING:
    from swarm_memo._memo import SwarmMemo
    from swarm_memo.core.defaults import default_collate, default_merge
    from swarm_memo.core.diagnostics import Diagnostics, Status
    from swarm_memo.core.jobs import PointFailure
    from swarm_memo.inspection.browse import Cache, open_cache
    from swarm_memo.run.launch import Launch

_LAZY = {
    "Cache": ".inspection.browse",
    "open_cache": ".inspection.browse",
    "default_collate": ".core.defaults",
    "default_merge": ".core.defaults",
    "Diagnostics": ".core.diagnostics",
    "Status": ".core.diagnostics",
    "PointFailure": ".core.jobs",
    "Launch": ".run.launch",
    "SwarmMemo": "._memo",
}
"""Names imported on first use: a pool worker imports ``swarm_memo.execution.worker``
(and so this package) without the engine, which halves its start-up."""


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# A library's logger never prints unless the application configures logging.
logging.getLogger("swarm_memo").addHandler(logging.NullHandler())

__all__ = [
    "AxisOrderWarning",
    "Cache",
    "CacheMissError",
    "CacheWarning",
    "CodeChangedWarning",
    "CollateError",
    "CorruptChunkError",
    "Diagnostics",
    "ExecError",
    "InspectError",
    "Launch",
    "PointFailure",
    "RunInterrupted",
    "SpecError",
    "SpecTypeError",
    "Status",
    "StoreError",
    "SwarmMemo",
    "SwarmMemoError",
    "TaskFailedError",
    "UnhashableValueError",
    "WorkerDiedError",
    "__version__",
    "default_collate",
    "default_merge",
    "open_cache",
]
