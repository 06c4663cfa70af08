"""The architecture holds: no import cycles, and imports between layers go one way only.

Imports are read from the source (every ``import``, module level or inside a function; not those
under ``if TYPE_CHECKING:``, which never run), so a lazy import that closes a cycle counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("dj_ops", "dj_assets", "sandbox_jobs")

MODEL_BASES = ("dj_ops.ops.base.model", "dj_ops.ops.base.image_model", "dj_ops.ops.base.video_model")
OPS = ("dj_ops.ops.filter", "dj_ops.ops.mapper", "dj_ops.ops.deduplicator")
ABOVE_OPS = ("dj_ops.io", "dj_ops.engine", "dj_ops.analyzer")
#: package or module -> the packages (of this repository, or third-party) it must never import
FORBIDDEN = {
    "dj_ops": ("dagster", "dj_assets", "sandbox_jobs"),
    # (core.registry imports the empty package dj_ops.ops to discover the OP modules by name)
    "dj_ops.core": ("dj_ops.ops.base", "dj_ops.ops.common", *OPS, "dj_ops.models", *ABOVE_OPS),
    "dj_ops.io": ("dj_ops.ops", "dj_ops.models", "dj_ops.engine", "dj_ops.analyzer"),
    # the contract itself sits on core alone; the model OP bases sit on the model runtime
    "dj_ops.ops.base.op": ("dj_ops.ops.common", "dj_ops.models", *MODEL_BASES),
    "dj_ops.ops.base.text": ("dj_ops.ops.common", "dj_ops.models", *MODEL_BASES),
    "dj_ops.ops.base.dedup": ("dj_ops.ops.common", "dj_ops.models", *MODEL_BASES),
    "dj_ops.ops.base.intermediates": ("dj_ops.ops.common", "dj_ops.models", *MODEL_BASES),
    "dj_ops.ops.base": (*OPS, *ABOVE_OPS),
    "dj_ops.ops.common": ("dj_ops.models", *MODEL_BASES, *OPS, *ABOVE_OPS),
    "dj_ops.models": (*MODEL_BASES, *OPS, *ABOVE_OPS),
    "dj_ops.ops.filter": ABOVE_OPS,
    "dj_ops.ops.mapper": ABOVE_OPS,
    "dj_ops.ops.deduplicator": ABOVE_OPS,
    "dj_ops.engine": ("dj_ops.analyzer",),
    "sandbox_jobs": ("dj_assets",),
}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    return skip


def imported_names(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module (dotted name) ``module`` imports; ``from pkg import sub`` counts as ``pkg.sub``."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - (0 if is_package else 1)]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            out.update(subs)
            if len(subs) < len(node.names):
                out.add(base)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of this repository it imports (a name resolves to its nearest module)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        deps = set()
        for name in imported_names(mod, path, mods):
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != mod:
                deps.add(name)
        graph[mod] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_one_way(package):
    mods = _modules()
    bad = []
    for mod, path in mods.items():
        if mod != package and not mod.startswith(package + "."):
            continue
        for name in imported_names(mod, path, mods):
            for forbidden in FORBIDDEN[package]:
                if name == forbidden or name.startswith(forbidden + "."):
                    bad.append(f"{mod} imports {name}")
    assert bad == []
