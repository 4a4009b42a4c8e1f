"""Optional dependencies: the error raised when one is not installed."""

from __future__ import annotations


def missing_dependency(module: str, extra: str, what: str) -> ImportError:
    """The :class:`ImportError` raised when an optional dependency is not installed.

    Parameters
    ----------
    module
        The module that failed to import (``"pandas"``).
    extra
        The swarm-memo extra that installs it (``"pandas"``).
    what
        What needs it, for the message (``"swarm_memo.collate.concat_frames"``).

    Returns
    -------
    ImportError
        To be raised ``from`` the original error.
    """
    return ImportError(
        f"{what} needs {module}, which is not installed; "
        f'install it with: pip install "swarm-memo[{extra}]"',
        name=module,
    )
