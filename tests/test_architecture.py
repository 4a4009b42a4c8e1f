"""The package's layers import one way: each subpackage imports only the ones below it
(and ``errors``/``_version``), never one above, and no module imports itself back."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "swarm_memo"
LAYERS = ["core", "identity", "stores", "cache", "execution", "frames", "run", "inspection"]
"""Bottom to top."""
BASE = {"errors", "_version"}
"""Flat modules every layer may import (they import nothing of swarm_memo)."""
ALLOWED = {
    "identity": {"core"},
    "stores": {"core"},
    "cache": {"core", "identity", "stores"},
    "execution": {"core", "identity"},
    "frames": {"core", "identity"},
}
"""Layers that may import only some of those below them (the others: any below)."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every swarm_memo module ``path`` imports, anywhere in it (TYPE_CHECKING and
    function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f"{path}: relative import of {node.module}")
            if node.module.startswith("swarm_memo"):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("swarm_memo"))
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in LAYERS else None


def test_every_private_module_sits_in_a_layer() -> None:
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == [
        "__init__.py",
        "__main__.py",
        "_memo.py",
        "_version.py",
        "cli.py",
        "collate.py",
        "errors.py",
        "testing.py",
    ]
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()) == sorted(
        LAYERS
    )


def test_layers_import_only_layers_below_them() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _module_name(path)
        layer = _layer(source)
        if layer is None:
            continue  # the facade, the CLI and the public modules may import any layer
        below = set(LAYERS[: LAYERS.index(layer)])
        allowed = ALLOWED.get(layer, below) | {layer}
        for target in _imports(path):
            target_layer = _layer(target)
            if target_layer is None:
                if target.split(".")[-1] not in BASE and target != "swarm_memo":
                    wrong.append(f"{source} imports the top-level {target}")
            elif target_layer not in allowed:
                wrong.append(f"{source} ({layer}) imports {target} ({target_layer})")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_back() -> None:
    graph = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target not in graph or target == "swarm_memo":
                continue
            assert state.get(target) != 1, " -> ".join([*trail, module, target])
            if target not in state:
                visit(target, [*trail, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def _facade_private_methods() -> set[str]:
    tree = ast.parse((PACKAGE / "_memo.py").read_text())
    facade = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SwarmMemo")
    return {
        n.name
        for n in facade.body
        if isinstance(n, ast.FunctionDef) and n.name.startswith("_") and not n.name.endswith("__")
    }


def test_nothing_outside_the_facade_calls_its_private_methods() -> None:
    """Lower layers receive the config, the options and plans, never the facade: no module
    but ``_memo.py`` touches ``memo._requests``, ``memo._set_options`` and the like (on
    anything but ``self``)."""
    private = _facade_private_methods()
    assert private, "the facade has private methods to guard"
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_memo.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Attribute) and node.attr in private):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            wrong.append(f"{_module_name(path)}:{node.lineno} uses .{node.attr}")
    assert not wrong, "\n".join(wrong)
