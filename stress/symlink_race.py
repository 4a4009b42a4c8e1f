"""Symlink race: folders of a cache are swapped for symlinks out of the root, over and
over, while runs, ``gc``, ``clear``, ``compact`` and quarantining work on the cache.

A second process exchanges (atomically, with ``renameat2(RENAME_EXCHANGE)`` where Linux
has it) one of ``<set>``, ``<set>/chunks``, ``<set>/index`` or ``.quarantine`` with a
symlink to a copy of it outside the root, holds it a moment, and swaps it back.
*Nothing lost* here means: not one file outside the root is deleted, changed or created
(the copy is compared byte for byte after each trial), and every failure the operations
raise is a swarm-memo error (a refusal to follow a link, naming it).

    python stress/symlink_race.py            # 10 s
    python stress/symlink_race.py --smoke    # 2 s
    python stress/symlink_race.py --seconds 60

Exits 1 on any file deleted, changed or created outside the root, or any exception that
is not a swarm-memo error.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))  # this checkout's swarm_memo

from swarm_memo import SwarmMemo  # noqa: E402
from swarm_memo.errors import SwarmMemoError  # noqa: E402
from swarm_memo.inspection.maintenance import plan_gc, run_gc  # noqa: E402
from swarm_memo.stores.registry import open_store  # noqa: E402

SPEC = {"x": list(range(8))}


def exec_fn(params: dict[str, Any], point: Any) -> Any:
    return (params["p"], point[0] * 2)


def memo(root: Path, size: int = 2) -> SwarmMemo:
    return SwarmMemo(root, {"x": size}, 4, exec_fn=exec_fn, executor="serial", verbose=0)


# --------------------------------------------------------------------------- swapping


def _exchanger() -> Callable[[str, str], None]:
    """``exchange(a, b)``: swap two names at once (Linux), else in three renames."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None

    def exchange(a: str, b: str) -> None:
        if renameat2 is not None:
            if renameat2(-100, a.encode(), -100, b.encode(), 2) != 0:  # AT_FDCWD, EXCHANGE
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), a)
            return
        tmp = a + ".x"
        os.rename(a, tmp)
        os.rename(b, a)
        os.rename(tmp, b)

    return exchange


def swapper(targets: list[tuple[str, str]], stop: Any, seed: int, swaps: Any) -> None:
    """Swap each ``(name, link)`` pair in turn, at random, until ``stop`` is set; each
    swap is undone before the next, so the cache is whole again at the end."""
    rng = random.Random(seed)
    exchange = _exchanger()
    while not stop.is_set():
        name, link = rng.choice(targets)
        try:
            exchange(name, link)
        except OSError:
            continue
        swaps.value += 1
        time.sleep(rng.choice([0, 0, 1e-5, 1e-4, 1e-3]))
        with contextlib.suppress(OSError):  # gone meanwhile (gc, clear): nothing to swap back
            exchange(link, name)
        time.sleep(rng.choice([0, 1e-5, 1e-4]))


# --------------------------------------------------------------------------- one trial


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every file (bytes) and symlink (target) below ``folder``."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            found[rel] = path.read_bytes()
    return found


def build(root: Path) -> list[str]:
    """A cache of 6 params sets, a damaged chunk in set 1, a stale temp file; set ids."""
    m = memo(root)
    for p in range(6):
        m.run({"p": p}, SPEC)
    sets = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    chunk = sorted((root / _set_of(root, 1) / "chunks").iterdir())[0]
    chunk.write_bytes(b"damaged")
    (root / ".quarantine").mkdir()
    (root / ".quarantine" / "old.chunk.1").write_bytes(b"quarantined before")
    stale = root / sets[0] / "chunks" / ".a.chunk.0123456789ab.1.tmp"
    stale.write_bytes(b"temp")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    return sets


def _set_of(root: Path, p: int) -> str:
    """The set folder of params ``{"p": p}`` (the one its run wrote)."""
    store = open_store(str(root))
    for name in sorted(os.listdir(root)):
        if name.startswith("."):
            continue
        data = store.read(f"{name}/params.json") or b""
        if f'"p": {p}'.encode() in data or f'"p":{p}'.encode() in data:
            return name
    raise LookupError(p)


def operations(root: Path, sets: list[str]) -> list[tuple[str, Callable[[], object]]]:
    store = open_store(str(root))

    def gc(**kw: Any) -> object:
        return run_gc(store, plan_gc(store, **kw))

    return [
        ("run (quarantines a damaged chunk)", lambda: memo(root).run({"p": 1}, SPEC)),
        ("run of a new set", lambda: memo(root).run({"p": 9}, SPEC)),
        ("compact", lambda: memo(root, 4).compact({"p": 2}, SPEC)),
        ("clear", lambda: memo(root).clear({"p": 3})),
        ("gc --params", lambda: gc(params=[_set_of(root, 4)])),
        ("gc --quarantine (and temp files)", lambda: gc(quarantine=True)),
        ("gc --older-than 0", lambda: gc(older_than=0)),
    ]


COUNTS = {"operations": 0, "refused": 0, "swaps": 0}


def trial(base: Path, seed: int) -> list[str]:
    """One trial; returns the failures found (empty: nothing outside was touched)."""
    root, outside = base / "cache", base / "outside"
    sets = build(root)
    shutil.copytree(root, outside, symlinks=True)
    before = snapshot(outside)
    targets = [(str(root / ".quarantine"), str(outside / ".quarantine"))]
    for s in sets:
        for sub in ("", "/chunks", "/index"):
            if (root / f"{s}{sub}").is_dir():
                targets.append((str(root / f"{s}{sub}"), str(outside / f"{s}{sub}")))
    pairs = []
    for name, target in targets:
        link = os.path.join(os.path.dirname(name), f".{os.path.basename(name)}.swap")
        os.symlink(target, link)
        pairs.append((name, link))
    failures = []
    stop, swaps = multiprocessing.Event(), multiprocessing.Value("i", 0)
    proc = multiprocessing.Process(target=swapper, args=(pairs, stop, seed, swaps), daemon=True)
    proc.start()
    try:
        for label, op in operations(root, sets):
            COUNTS["operations"] += 1
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    op()
            except SwarmMemoError:
                COUNTS["refused"] += (
                    1  # a refusal to follow a link (or what follows from one): expected
                )
            except Exception:
                failures.append(f"{label}: unexpected {traceback.format_exc(limit=3)}")
    finally:
        stop.set()
        proc.join(10)
        COUNTS["swaps"] += swaps.value
    after = snapshot(outside)
    for rel in sorted(set(before) | set(after)):
        if rel not in after:
            failures.append(f"deleted outside the root: {rel}")
        elif rel not in before:
            failures.append(f"written outside the root: {rel}")
        elif before[rel] != after[rel]:
            failures.append(f"changed outside the root: {rel}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--smoke", action="store_true", help="2 s")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    seconds = 2.0 if args.smoke else args.seconds
    print(f"symlink race: {seconds:g} s of trials; nothing lost = no file outside the root ")
    print("deleted, changed or created, and only swarm-memo errors raised")
    trials, failed, deadline = 0, 0, time.monotonic() + seconds
    while time.monotonic() < deadline or trials == 0:
        with tempfile.TemporaryDirectory(prefix="swarm-memo-race-") as tmp:
            failures = trial(Path(tmp), args.seed + trials)
        trials += 1
        if failures:
            failed += 1
            for failure in failures:
                print(f"  trial {trials}: {failure}")
    print(
        f"trials: {trials}, failures: {failed} ({COUNTS['operations']} operations, "
        f"{COUNTS['refused']} stopped by a swarm-memo error, {COUNTS['swaps']} swaps)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
