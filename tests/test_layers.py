"""The layers read top-down: no module imports a layer above it, not even inside a function.

The rules are the ones each package's `__init__` docstring states (see `indexer/__init__.py`).
"""

from __future__ import annotations

import ast

import pytest

from helpers import ROOT

CORE = ("indexer.types", "indexer.errors", "indexer.settings", "indexer.embed", "indexer.sentences",
        "indexer.tokens", "indexer.minhash")
# Package -> the packages it must never import.
NEVER = {
    "indexer.store": ("indexer.ingest", "indexer.query", "indexer.evaluate", "service"),
    "indexer.ingest": ("indexer.query", "indexer.evaluate", "service"),
    "indexer.query": ("indexer.ingest", "indexer.evaluate", "service"),
    "indexer.evaluate": ("service",),
    **{module: ("indexer.ingest", "indexer.store", "indexer.query", "indexer.evaluate", "service")
       for module in CORE},
}


def _imports(path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _files(unit: str, root=ROOT):
    path = root.joinpath(*unit.split("."))
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def _crossings(unit: str, banned: tuple[str, ...], root=ROOT) -> list[str]:
    return [f"{path.relative_to(root)}:{line} imports {module}"
            for path in _files(unit, root) for line, module in _imports(path)
            if any(module == b or module.startswith(b + ".") for b in banned)]


@pytest.mark.parametrize("unit", sorted(NEVER))
def test_no_layer_imports_one_above_it(unit):
    assert all(path.is_file() for path in _files(unit)), f"{unit} is missing: the layer map is out of date"
    assert _crossings(unit, NEVER[unit]) == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    """A function-level import counts: that is how the store once reached back into ingest."""
    module = tmp_path / "indexer" / "store" / "sneaky.py"
    module.parent.mkdir(parents=True)
    module.write_text("def build():\n    from indexer.ingest.build import build_index\n    return build_index\n")
    assert _crossings("indexer.store", NEVER["indexer.store"], tmp_path) == [
        "indexer/store/sneaky.py:2 imports indexer.ingest.build"]
