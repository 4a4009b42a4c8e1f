"""Placeholder until the fingerprint module lands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._hashing import digest_bytes


def code_fingerprint(fn: Callable[..., Any]) -> bytes:
    code = getattr(fn, "__code__", None)
    return digest_bytes(code.co_code if code is not None else repr(type(fn)).encode())
