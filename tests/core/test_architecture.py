"""The shape of the code base (issue "Architecture for growth"): no import cycle inside
`lstmgen/`, the layering (front ends -> IR <- targets; verification above both; the facade
on top), one module per IR layer kind, and one template per kind per target."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from support import ROOT

PACKAGE = ROOT / "lstmgen"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """module -> the lstmgen modules it imports (at any level of the file, so an import
    inside a function counts too, one under `if TYPE_CHECKING:` does not); `from pkg import
    sub` counts as importing pkg.sub."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {  # imports under `if TYPE_CHECKING:` never run
            id(n)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for n in ast.walk(block)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("lstmgen"))
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, path, node)
                if not base.startswith("lstmgen"):
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
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
        for w in graph[v]:
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


def _is_package_link(a: str, b: str) -> bool:
    """A package's __init__ re-exporting its own submodules, which import siblings: the
    package and its children are one unit, not a cycle between rooms."""
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_cycle_between_modules():
    graph = import_graph()
    pruned = {m: {t for t in ts if not _is_package_link(m, t)} for m, ts in graph.items()}
    assert _cycles(pruned) == []


#: room -> the rooms its modules must never import
FORBIDDEN = {
    "lstmgen.ir": (
        "lstmgen.extractors",
        "lstmgen.targets",
        "lstmgen.api",
        "lstmgen.verify",
        "lstmgen.reference",
        "lstmgen.cli",
        "lstmgen.sampling",
    ),
    "lstmgen.targets": (
        "lstmgen.extractors",
        "lstmgen.api",
        "lstmgen.verify",
        "lstmgen.reference",
        "lstmgen.cli",
        "lstmgen.report",
    ),
    "lstmgen.extractors": ("lstmgen.targets", "lstmgen.api", "lstmgen.verify", "lstmgen.cli"),
    "lstmgen.sampling": (
        "lstmgen.extractors",
        "lstmgen.targets",
        "lstmgen.api",
        "lstmgen.verify",
        "lstmgen.cli",
    ),
    "lstmgen.verify": ("lstmgen.api", "lstmgen.cli", "lstmgen.report"),
    "lstmgen.report": ("lstmgen.api", "lstmgen.cli"),
    "lstmgen.console": (
        "lstmgen.ir",
        "lstmgen.extractors",
        "lstmgen.targets",
        "lstmgen.verify",
        "lstmgen.api",
        "lstmgen.cli",
    ),
}


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_layering(room):
    graph = import_graph()
    bad = sorted(
        f"{m} imports {t}"
        for m, targets in graph.items()
        if m == room or m.startswith(room + ".")
        for t in targets
        if any(t == f or t.startswith(f + ".") for f in FORBIDDEN[room])
    )
    assert bad == []


def test_every_layer_kind_is_one_module_with_its_own_facts():
    from lstmgen.ir import LAYER_TYPES

    for kind, cls in LAYER_TYPES.items():
        module = cls.__module__
        assert module == f"lstmgen.ir.layers.{kind}", (kind, module)
        assert cls.title and cls.__doc__, kind


def test_test_modules_have_unique_names():
    """pytest imports the test modules by basename (rootdir-relative sys.path), so two
    `test_x.py` in different folders break collection of the whole run."""
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.parent.name in ("__pycache__",) or "fixtures" in path.parts:
            continue
        if path.name in seen and path.name != "__init__.py":
            clashes.append(f"{seen[path.name].relative_to(ROOT)} and {path.relative_to(ROOT)}")
        seen.setdefault(path.name, path)
    assert not clashes, "test modules sharing a name: " + "; ".join(clashes)
