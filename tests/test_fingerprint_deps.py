"""The code fingerprint follows what a function reaches through its globals: helpers,
classes and module constants of the user's own code, not libraries (issue 17 item 3)."""

from __future__ import annotations

import importlib
import sys
import textwrap
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import outputs_under_hash_seeds
from swarm_memo import CodeChangedWarning, SwarmMemo
from swarm_memo.identity import libraries as _libraries
from swarm_memo.identity import reach as _reach
from swarm_memo.identity.fingerprint import code_fingerprint

SWEEP = """
import math
import {other}

GAIN = 2
UNUSED = 1
LOG = {log!r}


def helper(x):
    return x + 1


def unused(x):
    return x - 1


def record(point):
    with open(LOG, "a") as f:
        f.write(repr(point) + "\\n")


def exec_fn(params, point):
    record(point)
    return helper(point[0]) * GAIN + {other}.offset(point[0]) + int(math.sqrt(4))
"""

OTHER = """
SHIFT = 100


def offset(x):
    return x * 0 + SHIFT


def never_called():
    return 0
"""

UNREACHED = """
def lonely():
    return 1
"""


class Modules:
    """User modules written as real files under ``tmp_path``, imported, edited, reloaded."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder = folder
        self.prefix = prefix
        self.loaded: dict[str, types.ModuleType] = {}

    def name(self, short: str) -> str:
        return f"{self.prefix}_{short}"

    def write(self, short: str, source: str) -> types.ModuleType:
        name = self.name(short)
        path = self.folder / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        if name in self.loaded:
            return importlib.reload(self.loaded[name])
        self.loaded[name] = importlib.import_module(name)
        return self.loaded[name]

    def edit(self, short: str, old: str, new: str) -> types.ModuleType:
        path = self.folder / f"{self.name(short)}.py"
        source = path.read_text()
        assert old in source
        return self.write(short, source.replace(old, new))


@pytest.fixture
def modules(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Modules]:
    folder = tmp_path / "code"
    folder.mkdir()
    prefix = "fpdeps_" + "".join(c if c.isalnum() else "_" for c in request.node.name)
    mp = pytest.MonkeyPatch()
    mp.setattr(sys, "dont_write_bytecode", True)  # a reload compiles the edited source
    mp.syspath_prepend(str(folder))
    made = Modules(folder, prefix)
    try:
        yield made
    finally:
        mp.undo()
        for name in made.loaded:
            sys.modules.pop(name, None)


def sweep(modules: Modules, tmp_path: Path) -> types.ModuleType:
    modules.write("unreached", UNREACHED)
    modules.write("other", OTHER)
    source = SWEEP.format(other=modules.name("other"), log=str(tmp_path / "calls.log"))
    return modules.write("sweep", source)


def calls(tmp_path: Path) -> int:
    log = tmp_path / "calls.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


# ------------------------------------------------------------ what the fingerprint sees


def test_editing_a_helper_changes_the_fingerprint(modules, tmp_path):
    module = sweep(modules, tmp_path)
    before = code_fingerprint(module.exec_fn)
    module = modules.edit("sweep", "return x + 1", "return x + 2")
    assert code_fingerprint(module.exec_fn) != before


def test_editing_a_module_constant_changes_the_fingerprint(modules, tmp_path):
    module = sweep(modules, tmp_path)
    before = code_fingerprint(module.exec_fn)
    module = modules.edit("sweep", "GAIN = 2", "GAIN = 3")
    assert code_fingerprint(module.exec_fn) != before
    module = modules.edit("sweep", "GAIN = 3", "GAIN = 2")
    assert code_fingerprint(module.exec_fn) == before


def test_rebinding_a_module_global_is_seen_by_the_next_fingerprint(modules, tmp_path):
    module = sweep(modules, tmp_path)
    before = code_fingerprint(module.exec_fn)
    module.GAIN = 3
    assert code_fingerprint(module.exec_fn) != before
    module.GAIN = 2
    assert code_fingerprint(module.exec_fn) == before


def test_a_helper_reached_through_another_user_module_is_followed(modules, tmp_path):
    module = sweep(modules, tmp_path)
    before = code_fingerprint(module.exec_fn)
    modules.edit("other", "x * 0 + SHIFT", "x * 1 + SHIFT")  # other.offset(...)
    assert code_fingerprint(module.exec_fn) != before
    modules.edit("other", "SHIFT = 100", "SHIFT = 101")  # a constant offset() reads
    assert code_fingerprint(module.exec_fn) != before


def test_changes_the_function_never_reaches_keep_the_fingerprint(modules, tmp_path):
    module = sweep(modules, tmp_path)
    before = code_fingerprint(module.exec_fn)
    modules.edit("sweep", "UNUSED = 1", "UNUSED = 2")
    modules.edit("sweep", "return x - 1", "return x - 2")  # unused()
    modules.edit("other", "return 0", "return 1")  # other.never_called()
    modules.edit("unreached", "return 1", "return 2")  # a module it never imports
    module.NEW_GLOBAL = [1, 2]
    assert code_fingerprint(module.exec_fn) == before


def test_from_import_and_import_inside_the_function_are_followed(modules):
    modules.write("lib", "def helper(x):\n    return x + 1\n")
    lib = modules.name("lib")
    source = f"""
    from {lib} import helper

    def direct(x):
        return helper(x)

    def local(x):
        import {lib}
        return {lib}.helper(x)
    """
    module = modules.write("user", source)
    before = code_fingerprint(module.direct), code_fingerprint(module.local)
    modules.edit("lib", "x + 1", "x + 2")
    module = modules.write("user", source)  # re-runs the ``from ... import``
    assert code_fingerprint(module.direct) != before[0]
    assert code_fingerprint(module.local) != before[1]


MUTUAL = """
LIMIT = 0


def is_even(n):
    return True if n <= LIMIT else is_odd(n - 1)


def is_odd(n):
    return False if n <= LIMIT else is_even(n - 1)


def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)
"""


def test_mutual_recursion_terminates_and_an_edit_in_the_cycle_is_seen(modules):
    module = modules.write("mutual", MUTUAL)
    even, odd, fact = (code_fingerprint(f) for f in (module.is_even, module.is_odd, module.fact))
    assert len({even, odd, fact}) == 3
    module = modules.edit("mutual", "return False if", "return 0 if")
    assert code_fingerprint(module.is_even) != even
    assert code_fingerprint(module.fact) == fact


CLASSES = """
SCALE = 2


class Base:
    def base(self, x):
        return x + 1


class Model(Base):
    factor = 3

    def predict(self, x):
        return self.base(x) * self.factor * SCALE


MODEL = Model()


def with_class(params, x):
    return Model().predict(x)


def with_instance(params, x):
    return MODEL.predict(x)
"""


@pytest.mark.parametrize(
    ("old", "new"),
    [("x + 1", "x + 2"), ("factor = 3", "factor = 4"), ("SCALE = 2", "SCALE = 5")],
    ids=["base method", "class attribute", "constant a method reads"],
)
def test_classes_their_methods_and_attributes_are_followed(modules, old, new):
    module = modules.write("classes", CLASSES)
    before = code_fingerprint(module.with_class), code_fingerprint(module.with_instance)
    module = modules.edit("classes", old, new)
    assert code_fingerprint(module.with_class) != before[0]
    assert code_fingerprint(module.with_instance) != before[1]


def test_a_helper_shared_by_many_paths_and_a_cached_helper(modules):
    source = """
    import functools

    def leaf(x):
        return x + 1

    @functools.lru_cache(maxsize=None)
    def cached(x):
        return leaf(x) * 2

    def a(x):
        return leaf(x) + cached(x)

    def b(x):
        return leaf(x) - a(x)

    def top(params, x):
        return a(x) + b(x) + leaf(x)
    """
    module = modules.write("diamond", source)
    before = code_fingerprint(module.top)
    module = modules.edit("diamond", "leaf(x) * 2", "leaf(x) * 3")  # inside the lru_cache
    assert code_fingerprint(module.top) != before


def test_library_code_is_named_not_descended(monkeypatch):
    import json
    import math

    import numpy as np

    followed: list[Any] = []
    follow = _reach.Reach.follow
    monkeypatch.setattr(
        _reach.Reach, "follow", lambda self, fn: (followed.append(fn), follow(self, fn))
    )

    def uses_libraries(params, x):
        return math.sqrt(x) + np.mean([x, x]) + len(json.dumps(x)) + np.linalg.norm([x])

    code_fingerprint(uses_libraries)
    assert followed == [uses_libraries]  # no numpy, json or math function was walked


def test_an_installed_library_counts_by_version_not_by_code(modules, tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    (site / "fakelib_fp").mkdir(parents=True)
    init = site / "fakelib_fp" / "__init__.py"
    init.write_text("__version__ = '1.0'\n\ndef helper(x):\n    return x + 1\n")
    monkeypatch.setattr(_libraries, "_library_roots", lambda: (str(site.resolve()) + "/",))
    _libraries.library_file.cache_clear()
    _libraries._version.cache_clear()
    monkeypatch.syspath_prepend(str(site))
    import fakelib_fp  # type: ignore[import-not-found]

    try:
        module = modules.write(
            "uses_lib", "import fakelib_fp\n\ndef f(x):\n    return fakelib_fp.helper(x)\n"
        )
        before = code_fingerprint(module.f)
        init.write_text(init.read_text().replace("x + 1", "x + 2"))
        importlib.reload(fakelib_fp)
        assert code_fingerprint(module.f) == before  # library code is not walked
        init.write_text(init.read_text().replace("'1.0'", "'1.1'"))
        importlib.reload(fakelib_fp)
        _libraries._version.cache_clear()  # a new version within one process: test only
        assert code_fingerprint(module.f) != before  # its version is recorded
    finally:
        sys.modules.pop("fakelib_fp", None)
        _libraries.library_file.cache_clear()
        _libraries._version.cache_clear()


def test_unencodable_module_values_count_by_type(modules):
    module = modules.write(
        "opaque", "import threading\nLOCK = threading.Lock()\n\ndef f(x):\n    return LOCK\n"
    )
    before = code_fingerprint(module.f)
    module.LOCK = __import__("threading").Lock()
    assert code_fingerprint(module.f) == before
    module.LOCK = __import__("threading").RLock()
    assert code_fingerprint(module.f) != before


SEEDED = """
import sys
sys.path[:0] = [{tests!r}, {code!r}]
from swarm_memo.identity.fingerprint import code_fingerprint
import fp_seeded
print(code_fingerprint(fp_seeded.top).hex(), code_fingerprint(fp_seeded.is_even).hex())
"""

SEEDED_MODULE = """
TAGS = {"x", "y", "z", 1.5}
TABLE = {"k": {"q", "r"}, "j": [1, 2]}


def is_even(n):
    return True if n <= 0 else is_odd(n - 1)


def is_odd(n):
    return False if n <= 0 else is_even(n - 1)


def helper(x):
    return x in TAGS


DISPATCH = {"even": is_even, "odd": is_odd, "helper": helper}


def top(params, x):
    return DISPATCH[params["op"]](x) and TABLE
"""


def test_the_fingerprint_with_dependencies_is_the_same_under_any_hash_seed(tmp_path):
    (tmp_path / "fp_seeded.py").write_text(SEEDED_MODULE)
    code = SEEDED.format(tests=str(Path(__file__).parent), code=str(tmp_path))
    assert len(outputs_under_hash_seeds(code, ("0", "1", "4242"))) == 1


# ------------------------------------------------------------------- through a real run


def memo_of(root: Path, exec_fn: Any, **options: Any) -> SwarmMemo:
    return SwarmMemo(root, {"x": 2}, 2, exec_fn=exec_fn, max_workers=1, verbose=0, **options)


SPLIT = {"x": [1, 2, 3]}


@pytest.mark.parametrize(
    ("old", "new"), [("return x + 1", "return x + 2"), ("GAIN = 2", "GAIN = 3")]
)
def test_a_helper_or_constant_edit_warns_then_recompute_recomputes(modules, tmp_path, old, new):
    module = sweep(modules, tmp_path)
    cache = tmp_path / "cache"
    first, diag = memo_of(cache, module.exec_fn).run({}, SPLIT)
    assert diag.executed_points == 3
    assert calls(tmp_path) == 3
    module = modules.edit("sweep", old, new)
    with pytest.warns(CodeChangedWarning):
        output, diag = memo_of(cache, module.exec_fn).run({}, SPLIT)
    assert (output, diag.executed_points, calls(tmp_path)) == (first, 0, 3)
    fixed = memo_of(cache, module.exec_fn, on_code_change="recompute")
    output, diag = fixed.run({}, SPLIT)
    assert diag.executed_points == 3
    assert calls(tmp_path) == 6
    assert output == [module.exec_fn({}, (x,)) for x in SPLIT["x"]] != first


def test_one_memo_sees_a_global_rebound_between_two_of_its_runs(modules, tmp_path):
    module = sweep(modules, tmp_path)
    memo = memo_of(tmp_path / "cache", module.exec_fn, on_code_change="recompute")
    memo.run({}, SPLIT)
    module.GAIN = 3
    output, diag = memo.run({}, SPLIT)
    assert diag.executed_points == 3
    assert output == [(x + 1) * 3 + 100 + 2 for x in SPLIT["x"]]


def test_an_unreached_edit_is_not_a_code_change(modules, tmp_path):
    module = sweep(modules, tmp_path)
    memo_of(tmp_path / "cache", module.exec_fn).run({}, SPLIT)
    module = modules.edit("sweep", "return x - 1", "return x - 5")
    modules.edit("unreached", "return 1", "return 3")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = memo_of(tmp_path / "cache", module.exec_fn, on_code_change="recompute")
        assert again.run({}, SPLIT)[1].executed_points == 0
    assert calls(tmp_path) == 3


def test_a_wrapped_function_recomputes_after_a_helper_edit(modules, tmp_path):
    module = sweep(modules, tmp_path)
    memo = SwarmMemo(tmp_path / "cache", {"x": 2}, 2, max_workers=1, verbose=0)
    wrapped = memo.run_wrap()(module.exec_fn)
    first, diag = wrapped({}, split_spec=SPLIT)
    assert diag.executed_points == 3
    assert wrapped({}, split_spec=SPLIT)[1].executed_points == 0
    modules.edit("sweep", "return x + 1", "return x + 2")
    output, diag = wrapped({}, split_spec=SPLIT)  # the same wrapper, the helper edited
    assert diag.executed_points == 3
    assert calls(tmp_path) == 6
    assert output != first


# ------------------------------------------------- state the function changes by running


def test_a_list_the_function_appends_to_is_not_a_code_change(tmp_path):
    seen: list[Any] = []
    table = {"gain": 2}

    def exec_fn(params, point):
        seen.append(point)
        return point[0] * table["gain"]

    memo = memo_of(tmp_path / "cache", exec_fn, on_code_change="recompute")
    assert memo.run({}, SPLIT)[1].executed_points == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert memo_of(tmp_path / "cache", exec_fn).run({}, SPLIT)[1].executed_points == 0
        assert memo.status({}, SPLIT).missing_points == 0
    assert len(seen) == 3
    table["gain"] = 3  # an edit made between two calls, after the list grew: seen
    output, diag = memo.run({}, SPLIT)
    assert (output, diag.executed_points) == ([3, 6, 9], 3)


def test_a_wrapped_function_appending_to_a_list_keeps_its_key(tmp_path):
    memo = SwarmMemo(tmp_path / "cache", {"x": 2}, 2, max_workers=1, verbose=0)
    seen: list[Any] = []

    @memo.run_wrap()
    def measure(params, point):
        seen.append(point)
        return point[0] + params["k"]

    assert measure({"k": 1}, split_spec=SPLIT)[1].executed_points == 3
    assert measure({"k": 1}, split_spec=SPLIT)[1].executed_points == 0
    assert measure.status({"k": 1}, split_spec=SPLIT).missing_points == 0
    assert len(seen) == 3
