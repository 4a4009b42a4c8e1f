"""The ``swarm-memo`` command: list, describe, verify and clean a cache.

A thin click layer over :mod:`swarm_memo.cache.listing` (reading a cache),
:mod:`swarm_memo.inspection.maintenance` (verify, gc) and :mod:`swarm_memo.core.textfmt`
(formatting), which hold the logic. Every command goes through the cache's store, so a
local folder, an ``s3://`` or a ``memory://`` URL work alike (``--storage-options``
passes credentials or an endpoint to fsspec). ``ls``, ``info`` and ``verify`` modify
nothing and never unpickle anything. User errors (missing cache root, unknown or
ambiguous digest, bad ``--older-than``) print one line on stderr and exit with code 2;
``verify`` exits with 1 when it finds a damaged file.
"""

from __future__ import annotations

import functools
import json
import pprint
import sys
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

import click

from swarm_memo._version import __version__
from swarm_memo.cache.listing import SetSummary, describe_set, list_sets, open_cache
from swarm_memo.core.textfmt import (
    abbreviate,
    distinguishing_params,
    format_age,
    format_bytes,
    iso_time,
    parse_duration,
    short_repr,
)
from swarm_memo.errors import InspectError, SpecError
from swarm_memo.inspection.maintenance import GcPlan, plan_gc, run_gc, verify_cache
from swarm_memo.inspection.sizecap import parse_size
from swarm_memo.inspection.watch_cli import register as register_watch_commands
from swarm_memo.stores.base import Store

P = ParamSpec("P")
R = TypeVar("R")

EXIT_PROBLEMS = 1
EXIT_USAGE = 2

_ROOT = click.argument("cache_root", metavar="CACHE_ROOT", type=str)
_JSON = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON on stdout instead of text."
)
_OPTIONS = click.option(
    "--storage-options",
    "storage_options",
    metavar="JSON",
    default=None,
    help="fsspec options of a URL cache root, as a JSON object "
    '(e.g. \'{"endpoint_url": "http://localhost:9000"}\').',
)


def _open(cache_root: str, storage_options: str | None) -> Store:
    """The cache's store; the options are parsed from JSON."""
    options: dict[str, object] | None = None
    if storage_options is not None:
        try:
            loaded = json.loads(storage_options)
        except ValueError as exc:
            raise InspectError(f"--storage-options is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise InspectError(f"--storage-options must be a JSON object; got {storage_options!r}")
        options = loaded
    return open_cache(cache_root, options)


def _errors_to_exit(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn user errors and OS errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (InspectError, SpecError, OSError) as exc:
            click.echo(f"swarm-memo: error: {exc}", err=True)
            raise click.exceptions.Exit(EXIT_USAGE) from None

    return wrapper


def _print_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="swarm-memo")
def cli() -> None:
    """Inspect and clean a swarm-memo cache.

    CACHE_ROOT is the folder or URL given to SwarmMemo(cache_root=...); for a URL
    (s3://..., memory://...), --storage-options passes what SwarmMemo's storage_options
    did. A params set is named by
    its digest; any unique prefix of it (as printed by `ls`) is accepted.
    """


# --------------------------------------------------------------------------- ls


def _table(rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _params_text(summary: SetSummary, width: int) -> str:
    if summary.params_error is not None:
        return f"<{summary.params_error}>"
    return short_repr(summary.params, width)


@cli.command("ls")
@_ROOT
@_OPTIONS
@_JSON
@_errors_to_exit
def ls_command(cache_root: str, storage_options: str | None, as_json: bool) -> None:
    """List the params sets of CACHE_ROOT, most recently written first.

    One row per set: short digest, chunk files, points, bytes on disk, time of the newest
    chunk file, cache version and params (abbreviated).
    """
    summaries = list_sets(_open(cache_root, storage_options))
    if as_json:
        _print_json([s.to_json() for s in summaries])
        return
    if not summaries:
        click.echo(f"no params sets in {cache_root}")
        return
    rows = [["DIGEST", "CHUNKS", "POINTS", "BYTES", "LAST WRITTEN", "VERSION", "PARAMS"]]
    readable = [s.params if s.params_error is None else None for s in summaries]
    distinct = distinguishing_params(readable, 60)  # the keys that tell the sets apart
    for s, text in zip(summaries, distinct, strict=True):
        rows.append(
            [
                s.short,
                str(s.chunks),
                f"{s.points}" if s.points_exact else f"~{s.points}",
                format_bytes(s.bytes),
                iso_time(s.last_written) or "-",
                abbreviate(str(s.cache_version), 20) if s.params_error is None else "?",
                text if text is not None else _params_text(s, 60),
            ]
        )
    for line in _table(rows, right=(1, 2, 3)):
        click.echo(line)
    total = sum(s.bytes for s in summaries)
    click.echo(f"{len(summaries)} params set(s), {format_bytes(total)}")
    bad = [s for s in summaries if s.unreadable_chunks]
    for s in bad:
        click.echo(
            f"warning: {s.short} has {s.unreadable_chunks} unreadable chunk file(s) "
            "(not counted in POINTS); run `swarm-memo verify`"
        )


# --------------------------------------------------------------------------- info


@cli.command("info")
@_ROOT
@click.argument("digest")
@_OPTIONS
@_JSON
@_errors_to_exit
def info_command(cache_root: str, digest: str, storage_options: str | None, as_json: bool) -> None:
    """Show one params set: its params in full and the values stored per axis.

    DIGEST is the set's digest or any unique prefix of it. Reads the meta block of every
    chunk file of the set (never the pickled outputs).
    """
    detail = describe_set(_open(cache_root, storage_options), digest)
    if as_json:
        _print_json(detail.to_json())
        return
    s = detail.summary
    fields = [
        ("params set", s.set_id),
        ("path", s.path),
        ("cache version", str(s.cache_version) if s.params_error is None else "?"),
        ("chunks", str(s.chunks)),
        ("points", str(s.points) + ("" if s.points_exact else " (or fewer)")),
        ("bytes", f"{s.bytes} ({format_bytes(s.bytes)})"),
        ("last written", iso_time(s.last_written) or "-"),
    ]
    if detail.axis_order:
        fields.append(("axis order", ", ".join(detail.axis_order)))
    seconds = detail.compute_seconds
    fields.append(("compute time", f"{seconds:.3f}s" if seconds < 60 else format_age(seconds)))
    hosts = ", ".join(f"{host} ({n} files)" for host, n in sorted(detail.hosts.items()))
    fields.append(("hosts", hosts or "-"))
    for label, value in fields:
        click.echo(f"{label + ':':<15}{value}")
    click.echo("params:")
    if s.params_error is not None:
        click.echo(f"  <{s.params_error}>")
    else:
        for line in pprint.pformat(s.params, width=96, sort_dicts=True).splitlines():
            click.echo(f"  {line}")
    click.echo("axes:")
    if not detail.keys_recorded:
        click.echo("  (some chunk files do not record their axis values: older format)")
    elif not detail.axes:
        click.echo("  (no readable chunk file)")
    name_width = max((len(a.name) for a in detail.axes), default=0)
    for axis in detail.axes:
        click.echo(f"  {axis.name:<{name_width}}  {axis.count} value(s): {axis.preview()}")
    for path, reason in detail.bad_chunks:
        click.echo(f"unreadable chunk file {path}: {reason}")


# --------------------------------------------------------------------------- verify


@cli.command("verify")
@_ROOT
@_OPTIONS
@_JSON
@_errors_to_exit
def verify_command(cache_root: str, storage_options: str | None, as_json: bool) -> None:
    """Check every chunk file of CACHE_ROOT and report each damaged one.

    Checks that each file is readable, has the right magic, size and checksum, that its
    meta is readable and names the params set of its folder and the cache version of the
    set's params.json. Nothing is modified and nothing is unpickled. Files written by a
    newer swarm-memo, quarantined and leftover temp files are listed for information.
    Exit code: 0 if every file is fine, 1 otherwise.
    """
    report = verify_cache(_open(cache_root, storage_options))
    if as_json:
        _print_json(report.to_json())
    else:
        for problem in report.problems:
            click.echo(f"BAD {problem.path}: {problem.reason}")
        for note in report.notes:
            click.echo(f"note: {note.path}: {note.reason}")
        if report.quarantined:
            size = sum(f.size for f in report.quarantined)
            click.echo(
                f"info: {len(report.quarantined)} quarantined file(s) ({format_bytes(size)}) "
                f"in {report.quarantine_path}; `swarm-memo gc --quarantine` removes them"
            )
        if report.temp_files:
            click.echo(
                f"info: {len(report.temp_files)} leftover temp file(s) from interrupted "
                "writes; `swarm-memo gc` removes those older than 1 hour:"
            )
            for f in report.temp_files:
                age = format_age(report.checked_at - f.mtime)
                click.echo(f"  {f.path} ({format_bytes(f.size)}, {age} old)")
        verdict = "OK" if report.ok else f"{len(report.problems)} problem(s) found"
        click.echo(
            f"checked {report.chunks_checked} chunk file(s) in {report.sets} params set(s): "
            f"{verdict}"
        )
    if not report.ok:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


# --------------------------------------------------------------------------- gc


def _parse_max_bytes(text: str) -> int:
    try:
        return parse_size(text)
    except InspectError as exc:
        raise InspectError(f"--max-bytes: {exc}") from None


def _describe_plan(plan: GcPlan, verb: str) -> None:
    for s in plan.sets:
        click.echo(
            f"{verb} params set {s.short} ({s.chunks} chunks, {format_bytes(s.bytes)}, "
            f"last written {iso_time(s.last_written) or '-'}): {_params_text(s, 60)}"
        )
    for f in plan.temp_files:
        age = format_age(plan.planned_at - f.mtime)
        click.echo(f"{verb} temp file {f.path} ({format_bytes(f.size)}, {age} old)")
    if plan.quarantine_dir is not None:
        size = sum(f.size for f in plan.quarantine)
        click.echo(
            f"{verb} quarantine {plan.quarantine_dir} "
            f"({len(plan.quarantine)} files, {format_bytes(size)})"
        )


@cli.command("gc")
@_ROOT
@click.option(
    "--older-than",
    metavar="AGE",
    help="Remove the params sets whose newest chunk file is older than AGE "
    "(a number and a unit: s, m, h or d, e.g. 30d).",
)
@click.option(
    "--params",
    "digests",
    metavar="DIGEST",
    multiple=True,
    help="Remove this params set (a digest or unique prefix; repeatable). "
    "With --older-than, only if it is that old.",
)
@click.option(
    "--max-bytes",
    metavar="SIZE",
    help="Then remove the least recently written params sets until the cache fits in SIZE "
    "(e.g. 10G, 500M; powers of 1024), never one a running process holds claims on.",
)
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@click.option(
    "--quarantine", is_flag=True, help="Also remove the .quarantine folder (damaged files)."
)
@_OPTIONS
@_JSON
@_errors_to_exit
def gc_command(
    cache_root: str,
    older_than: str | None,
    digests: tuple[str, ...],
    dry_run: bool,
    quarantine: bool,
    storage_options: str | None,
    as_json: bool,
    max_bytes: str | None = None,
) -> None:
    """Remove params sets and stale leftovers from CACHE_ROOT.

    Temp files left by interrupted writes are removed once older than 1 hour, always.
    Whole params sets are removed only with --params, --older-than or --max-bytes; the
    quarantine only with --quarantine. --max-bytes never removes a set a running process
    holds claims on; with the others, do not remove a set a running job is writing to.
    """
    try:
        age = None if older_than is None else parse_duration(older_than)
    except InspectError as exc:
        raise InspectError(f"--older-than: {exc}") from None
    cap = None if max_bytes is None else _parse_max_bytes(max_bytes)
    store = _open(cache_root, storage_options)
    plan = plan_gc(store, params=digests, older_than=age, quarantine=quarantine, max_bytes=cap)
    for s in plan.live:
        click.echo(f"kept params set {s.short}: a running process holds claims on it", err=True)
    if as_json:
        out = plan.to_json()
        out["dry_run"] = dry_run
        if not dry_run:
            result = run_gc(store, plan)
            out["removed_bytes"] = result.removed_bytes
            out["removed_files"] = result.removed_files
            out["removed_sets"] = result.removed_sets
            out["errors"] = result.errors
        _print_json(out)
        return
    if plan.empty:
        click.echo("nothing to remove" + (" (dry run)" if dry_run else ""))
        return
    if dry_run:
        _describe_plan(plan, "would remove")
        click.echo(
            f"dry run: nothing removed; would free {plan.bytes} bytes ({format_bytes(plan.bytes)})"
        )
        return
    _describe_plan(plan, "removing")
    result = run_gc(store, plan)
    for error in result.errors:
        click.echo(f"swarm-memo: warning: {error}", err=True)
    kept = len(plan.sets) - len(result.removed_sets)
    click.echo(
        f"removed {len(result.removed_sets)} params set(s)"
        + (f" ({kept} not entirely: see the warnings)" if kept else "")
        + f", {result.removed_temp_files} temp file(s)"
        + (", the quarantine" if result.removed_quarantine else "")
        + f": {result.removed_bytes} bytes freed ({format_bytes(result.removed_bytes)})"
    )


register_watch_commands(cli, _ROOT, _OPTIONS, _JSON, _open, _errors_to_exit)  # progress, show


def main(argv: Sequence[str] | None = None, prog_name: str = "swarm-memo") -> None:
    """Entry point of the ``swarm-memo`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name=prog_name)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
