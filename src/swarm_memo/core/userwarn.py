"""Warnings that point at the user's line, not at swarm-memo's.

A warning's ``stacklevel`` is counted from the frame that calls :func:`warnings.warn`; the
number of swarm-memo frames between the user's call and that point differs by path (a
method, a wrapped function, a frame helper). :func:`warn_user` counts them instead.
"""

from __future__ import annotations

import os
import sys
import warnings

_TOP_PACKAGE = (__package__ or __name__).partition(".")[0]
_PACKAGE_DIR = os.path.dirname(os.path.abspath(sys.modules[_TOP_PACKAGE].__file__ or "")) + os.sep
"""swarm-memo's own folder (subpackages included): frames under it are not the user's."""


def caller_stacklevel() -> int:
    """The ``stacklevel`` of the innermost frame outside swarm-memo, as seen from the
    function that calls this one."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def warn_user(message: str, category: type[Warning]) -> None:
    """Emit ``message`` attributed to the user's code that called into swarm-memo."""
    warnings.warn(message, category, stacklevel=caller_stacklevel())
