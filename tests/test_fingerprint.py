"""code_fingerprint changes when what a callable computes changes, and only then."""

from __future__ import annotations

import functools
import importlib.util
import math
import pathlib
import sys
import textwrap
import threading
import types
from typing import Any

from helpers import CountingExec, outputs_under_hash_seeds
from swarm_memo.identity import fingerprint as _fingerprint
from swarm_memo.identity.fingerprint import code_fingerprint


def define(
    source: str, name: str = "f", *, filename: str = "<a>", line: int = 0, module: str = "m"
) -> Any:
    """Compile ``source`` as if it sat at ``line`` of ``filename`` in module ``module``."""
    namespace: dict[str, Any] = {"__name__": module}
    code = compile("\n" * line + textwrap.dedent(source), filename, "exec")
    exec(code, namespace)
    return namespace[name]


BODY = """
def f(params, x, *, scale=2):
    '''Square and scale.'''
    y = [v * v for v in x]
    return sum(map(lambda v: v * scale, y)) + params["offset"]
"""


def test_fingerprint_is_sixteen_bytes():
    assert len(code_fingerprint(define(BODY))) == 16


def test_moving_a_function_down_its_file_keeps_its_fingerprint():
    here = define(BODY, filename="sweep.py", line=0, module="__main__")
    there = define(BODY, filename="/elsewhere/notebook.py", line=120, module="sweep")
    assert code_fingerprint(here) == code_fingerprint(there)


def test_same_function_defined_in_two_modules_has_one_fingerprint():
    assert code_fingerprint(define(BODY, module="a")) == code_fingerprint(define(BODY, module="b"))


def test_a_function_imported_under_another_module_name_keeps_its_fingerprint(tmp_path):
    path = tmp_path / "sweep.py"
    path.write_text("import math\n\ndef exec_fn(params, point):\n    return math.sqrt(point)\n")
    fingerprints = set()
    for module_name in ("sweep", "__sweep_as_main__"):
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        fingerprints.add(code_fingerprint(module.exec_fn))
    assert len(fingerprints) == 1


def test_changed_constant_changes_fingerprint():
    assert code_fingerprint(define("def f(x): return x + 1")) != code_fingerprint(
        define("def f(x): return x + 2")
    )


def test_changed_operation_changes_fingerprint():
    assert code_fingerprint(define("def f(x): return x + 1")) != code_fingerprint(
        define("def f(x): return x - 1")
    )


def test_changed_nested_lambda_changes_fingerprint():
    assert code_fingerprint(define(BODY)) != code_fingerprint(
        define(BODY.replace("v * scale", "v * scale + 1"))
    )


def test_changed_comprehension_changes_fingerprint():
    assert code_fingerprint(define(BODY)) != code_fingerprint(
        define(BODY.replace("v * v for", "v * v * v for"))
    )


def test_changed_inner_function_changes_fingerprint():
    source = "def f(x):\n    def g(v):\n        return v + 1\n    return g(x)\n"
    assert code_fingerprint(define(source)) != code_fingerprint(
        define(source.replace("v + 1", "v + 3"))
    )


def test_changed_called_name_changes_fingerprint():
    assert code_fingerprint(define("def f(x): return min(x)")) != code_fingerprint(
        define("def f(x): return max(x)")
    )


def test_changed_default_or_keyword_default_changes_fingerprint():
    base = code_fingerprint(define(BODY))
    assert code_fingerprint(define(BODY.replace("scale=2", "scale=3"))) != base
    assert code_fingerprint(define("def f(x, k=1): return x * k")) != code_fingerprint(
        define("def f(x, k=2): return x * k")
    )


def test_renamed_argument_changes_fingerprint():
    assert code_fingerprint(define("def f(x): return x")) != code_fingerprint(
        define("def f(y): return y")
    )


def test_editing_the_docstring_keeps_the_fingerprint():
    assert code_fingerprint(define(BODY)) == code_fingerprint(
        define(BODY.replace("Square and scale.", "Squares, then scales."))
    )


def test_two_lambdas_with_different_bodies_differ():
    assert code_fingerprint(lambda p, x: x + 1) != code_fingerprint(lambda p, x: x * 2)


def scale(k: Any) -> Any:
    return lambda p, x: x * k


def test_closures_from_one_factory_differ():
    assert code_fingerprint(scale(10)) != code_fingerprint(scale(100))
    assert code_fingerprint(scale(10)) == code_fingerprint(scale(10))
    assert code_fingerprint(scale(1)) != code_fingerprint(scale(1.0))


def test_closure_over_a_function_follows_that_function():
    inner_a = define("def g(x): return x + 1", "g")
    inner_b = define("def g(x): return x + 2", "g")
    assert code_fingerprint(scale(inner_a)) != code_fingerprint(scale(inner_b))
    assert code_fingerprint(scale([inner_a])) != code_fingerprint(scale([inner_b]))


def test_recursive_inner_function_has_a_stable_fingerprint():
    source = """
    def outer(step):
        def rec(n):
            return 0 if n <= 0 else rec(n - step)
        return rec
    """
    outer = define(source, "outer")
    assert code_fingerprint(outer(1)) == code_fingerprint(outer(1))
    assert code_fingerprint(outer(1)) != code_fingerprint(outer(2))


def test_self_referencing_closure_values_do_not_recurse_forever():
    loop: list[Any] = []
    loop.append(loop)
    assert len(code_fingerprint(scale(loop))) == 16


class Opaque:
    """No canonical encoding: as a closure value only its type discriminates."""


def test_unencodable_closure_value_falls_back_to_its_type():
    assert code_fingerprint(scale(Opaque())) == code_fingerprint(scale(Opaque()))
    assert code_fingerprint(scale(Opaque())) != code_fingerprint(scale(threading.Lock()))


def test_partial_fingerprints_its_function_arguments_and_keywords():
    base = code_fingerprint(functools.partial(pow, 2, mod=5))
    assert base == code_fingerprint(functools.partial(pow, 2, mod=5))
    assert base != code_fingerprint(functools.partial(pow, 3, mod=5))
    assert base != code_fingerprint(functools.partial(pow, 2, mod=7))
    assert base != code_fingerprint(functools.partial(divmod, 2, mod=5))


CALLABLE_CLASS = """
class Model:
    def __init__(self, k):
        self.k = k

    def __call__(self, params, x):
        return self.helper(x) * self.k

    def helper(self, x):
        return x + 1
"""


def test_callable_instance_fingerprints_its_class_code_and_state():
    model = define(CALLABLE_CLASS, "Model")
    other_file = define(CALLABLE_CLASS, "Model", filename="b.py", line=40, module="b")
    assert code_fingerprint(model(2)) == code_fingerprint(other_file(2))
    assert code_fingerprint(model(2)) != code_fingerprint(model(3))
    changed_helper = define(CALLABLE_CLASS.replace("x + 1", "x + 2"), "Model")
    assert code_fingerprint(model(2)) != code_fingerprint(changed_helper(2))


def test_counting_exec_instances_differ_by_their_settings(tmp_path):
    a = CountingExec(tmp_path / "log")
    assert code_fingerprint(a) == code_fingerprint(CountingExec(tmp_path / "log"))
    assert code_fingerprint(a) != code_fingerprint(CountingExec(tmp_path / "log", sleep=1.0))


def test_bound_method_fingerprints_function_and_instance():
    model = define(CALLABLE_CLASS, "Model")
    assert code_fingerprint(model(2).helper) == code_fingerprint(model(2).helper)
    assert code_fingerprint(model(2).helper) != code_fingerprint(model(5).helper)
    assert code_fingerprint(model(2).helper) != code_fingerprint(model(2).__call__)
    assert code_fingerprint({"a": 1}.get) != code_fingerprint({"a": 2}.get)


def test_builtins_are_fingerprinted_by_qualified_name():
    assert code_fingerprint(len) == code_fingerprint(len)
    assert code_fingerprint(math.sin) != code_fingerprint(math.cos)
    assert code_fingerprint(str.upper) != code_fingerprint(str.lower)


def test_classes_are_fingerprinted_by_their_code():
    model = define(CALLABLE_CLASS, "Model")
    assert code_fingerprint(model) == code_fingerprint(define(CALLABLE_CLASS, "Model", line=9))
    changed = define(CALLABLE_CLASS.replace("* self.k", "+ self.k"), "Model")
    assert code_fingerprint(model) != code_fingerprint(changed)


def test_running_a_function_many_times_keeps_its_fingerprint():
    fn = define("def f(x):\n    return x * 2 + 1\n")
    before = code_fingerprint(fn)
    for i in range(5000):  # lets the interpreter specialise the bytecode
        fn(i)
    assert code_fingerprint(fn) == before


def test_python_minor_version_is_part_of_the_fingerprint(monkeypatch):
    fn = define(BODY)
    before = code_fingerprint(fn)
    fake = types.SimpleNamespace(version_info=(sys.version_info[0], sys.version_info[1] + 1))
    monkeypatch.setattr(_fingerprint, "sys", fake)
    assert code_fingerprint(fn) != before


SEEDED = """
import functools, sys
sys.path.insert(0, {tests!r})
from swarm_memo.identity.fingerprint import code_fingerprint

def make(tags, table):
    def fn(params, x, opts={{"b": 1, "a": {{2, "z", 3}}}}):
        return x in {{"u", "v", "w", 1.5}} and tags and table
    return fn

fn = make(frozenset({{"q", "r", 7}}), {{"k": {{"y", "x"}}, "j": [1, {{2, 3}}]}})
print(code_fingerprint(fn).hex(), code_fingerprint(functools.partial(fn, s={{"m", "n"}})).hex())
"""


def test_fingerprint_is_the_same_in_another_process_with_another_hash_seed():
    code = SEEDED.format(tests=str(pathlib.Path(__file__).parent))
    assert len(outputs_under_hash_seeds(code, ("0", "1", "4242"))) == 1
