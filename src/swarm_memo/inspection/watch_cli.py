"""``swarm-memo progress`` and ``swarm-memo show``: watching sweeps from anywhere.

The commands are added to the ``swarm-memo`` group by :func:`register`, which receives
the group's shared pieces (argument and options, store opening, error handling), so this
module never imports :mod:`swarm_memo.cli`. The logic lives in :mod:`swarm_memo.inspection.watch`
and :mod:`swarm_memo.run.coverage`; both only read the cache and never unpickle.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, Protocol, TypeVar

import click

from swarm_memo.core.picture import LEGEND
from swarm_memo.core.textfmt import parse_duration
from swarm_memo.errors import InspectError
from swarm_memo.inspection.watch import format_progress, request_coverage, sweep_progress
from swarm_memo.stores.base import Store

_F = TypeVar("_F", bound=Callable[..., object])


class Decorator(Protocol):
    """A decorator of a command function that returns it, as click's options do."""

    def __call__(self, fn: _F, /) -> _F: ...


_P = ParamSpec("_P")
_R = TypeVar("_R")


class Wrapper(Protocol):
    """A decorator returning a function of the same signature (the CLI's error handling)."""

    def __call__(self, fn: Callable[_P, _R], /) -> Callable[_P, _R]: ...


CLEAR = "\x1b[H\x1b[2J"


def _since(text: str | None, now: float) -> float | None:
    if text is None or text == "all":
        return None
    try:
        return now - parse_duration(text)
    except InspectError as exc:
        raise InspectError(f"--since: {exc}") from None


def _progress_once(store: Store, prefix: str | None, since: str | None, as_json: bool) -> str:
    now = time.time()
    sweeps = sweep_progress(store, prefix, now, _since(since, now))
    if as_json:
        import json

        return json.dumps([s.to_json() for s in sweeps], indent=2, allow_nan=False)
    lines = format_progress(sweeps, now)
    if not lines:
        return "no recorded requests" + (f" in the last {since}" if since != "all" else "")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Kit:
    """What the ``swarm-memo`` group lends its commands: shared decorators and how to open
    a store."""

    root: Decorator
    options: Decorator
    as_json: Decorator
    open_store: Callable[[str, str | None], Store]
    errors_to_exit: Wrapper


def register(
    group: click.Group,
    root: Decorator,
    options: Decorator,
    as_json: Decorator,
    open_store: Callable[[str, str | None], Store],
    errors_to_exit: Wrapper,
) -> None:
    """Add ``progress`` and ``show`` to the ``swarm-memo`` command group."""
    kit = _Kit(root, options, as_json, open_store, errors_to_exit)
    _register_progress(group, kit)
    _register_show(group, kit)


def _register_progress(group: click.Group, kit: _Kit) -> None:
    @group.command("progress")
    @kit.root
    @click.argument("set_prefix", metavar="[SET_PREFIX]", required=False)
    @click.option(
        "--since",
        default="7d",
        show_default=True,
        metavar="AGE",
        help="Only requests started within AGE (e.g. 2h, 3d), or 'all'.",
    )
    @click.option("--watch", is_flag=True, help="Redraw every --interval seconds until Ctrl-C.")
    @click.option("--interval", default=5.0, show_default=True, type=float, metavar="SECONDS")
    @click.option(
        "--count", default=None, type=int, metavar="N", help="With --watch: stop after N redraws."
    )
    @kit.options
    @kit.as_json
    @kit.errors_to_exit
    def progress_command(
        cache_root: str, set_prefix: str | None, since: str, watch: bool, interval: float,
        count: int | None, storage_options: str | None, as_json: bool,
    ) -> None:  # fmt: skip
        """How far the recent sweeps of CACHE_ROOT are: per recorded request, the points
        stored of its total, points per minute over the last 10 minutes, an ETA, the
        hosts and pids that wrote in the last 5 minutes, failed points.

        SET_PREFIX restricts it to one params set (a digest prefix, as printed by `ls`).
        Reads chunk files' JSON metas and the runs' request records; never writes,
        never unpickles. With --watch the report is redrawn in place on a terminal and
        printed again, after a blank line, elsewhere.
        """
        store = kit.open_store(cache_root, storage_options)
        _redraw(lambda: _progress_once(store, set_prefix, since, as_json), watch, interval, count)


def _redraw(text: Callable[[], str], watch: bool, interval: float, count: int | None) -> None:
    """Print ``text()``; with ``watch``, again every ``interval`` seconds (in place on a
    terminal, after a blank line elsewhere) until Ctrl-C or ``count`` redraws."""
    tty = sys.stdout.isatty()
    drawn = 0
    while True:
        click.echo((CLEAR if watch and tty else "") + text())
        drawn += 1
        if not watch or (count is not None and drawn >= count):
            return
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return
        if not tty:
            click.echo("")


def _register_show(group: click.Group, kit: _Kit) -> None:
    @group.command("show")
    @kit.root
    @click.argument("set_prefix", metavar="SET_PREFIX")
    @click.option(
        "--axes",
        default=None,
        metavar="X,Y",
        help="The axes drawn across and down (default: the first two).",
    )
    @click.option(
        "--request",
        "request",
        default=None,
        metavar="DIGEST",
        help="The request to draw (a digest prefix; default: the newest).",
    )
    @kit.options
    @kit.as_json
    @kit.errors_to_exit
    def show_command(
        cache_root: str, set_prefix: str, axes: str | None, request: str | None,
        storage_options: str | None, as_json: bool,
    ) -> None:  # fmt: skip
        """Draw which points of a sweep are stored, missing or failed, over two axes.

        The sweep is the newest request recorded in the params set SET_PREFIX (or
        --request). Each cell aggregates the other axes: # all stored, . none, X some
        failed, 1-9 the tenths stored. Never writes, never unpickles.
        """
        store = kit.open_store(cache_root, storage_options)
        info, cover = request_coverage(store, set_prefix, request)
        names = [a.strip() for a in axes.split(",")] if axes else None
        picture = cover.picture(names)
        if as_json:
            import json

            out = {"set": info.set_id, "request": info.digest, **picture.to_json()}
            click.echo(json.dumps(out, indent=2, allow_nan=False, ensure_ascii=False))
            return
        click.echo(f"{info.set_id[:12]} request {info.digest}: {info.description}")
        click.echo(picture.summary())
        for line in picture.lines():
            click.echo(line)
        click.echo(LEGEND)
