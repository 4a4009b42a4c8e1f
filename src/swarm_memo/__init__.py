"""swarm-memo: evaluate a function over a grid in parallel chunks, cached in reusable chunks.

Examples
--------
>>> from swarm_memo import SwarmMemo
>>> memo = SwarmMemo("./cache", {"s": 2}, 4, exec_fn=lambda params, point: point[0])
"""

from __future__ import annotations

import logging

from ._browse import Cache, open_cache
from ._defaults import default_collate, default_merge
from ._diagnostics import Diagnostics, Status
from ._jobs import PointFailure
from ._launch import Launch
from ._memo import SwarmMemo
from ._version import __version__
from .errors import (
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
