"""The package's layers: every import runs down, and no two packages import each other.

Read from the source files (every import, at module level or inside a function), nothing is
imported. Lowest first: the runtime helpers at the package root, then the stages in the order the
data flows through them, then the job runners and the workflow's checks on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

from workflow_helpers import REPO

PACKAGE = REPO / "src" / "hybridrec"
LAYERS: list[set[str]] = [
    {"errors", "io", "plain", "protocols", "cpu", "heap", "devices", "logsetup", "provenance",
     "codehash", "rebuild"},
    {"data"},
    {"text"},
    {"models"},
    {"training"},
    {"evaluation"},
    {"hybrid"},
    {"reporting"},
    {"jobs", "variants", "config", "verify"},
]


def room(module: str) -> str:
    """A module's package or root module: ``hybridrec.data.store`` -> ``data``."""
    return module.split(".")[1]


def layer(name: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if name in names)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(part for part in parts if part != "__init__")


def imports() -> set[tuple[str, str]]:
    """(importer, imported) for every ``hybridrec`` import in the package."""
    edges = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
                if node.module == "hybridrec":  # from hybridrec import provenance
                    targets = [f"hybridrec.{alias.name}" for alias in node.names]
            else:
                continue
            edges |= {(importer, target) for target in targets
                      if target.startswith("hybridrec.") and importer.count(".")}
    return edges


def test_every_module_has_a_layer() -> None:
    rooms = {room(module_name(p)) for p in PACKAGE.rglob("*.py") if module_name(p) != "hybridrec"}
    assert rooms <= set().union(*LAYERS), sorted(rooms - set().union(*LAYERS))


def test_every_import_runs_down_the_layers() -> None:
    upward = sorted((a, b) for a, b in imports() if layer(room(a)) < layer(room(b)))
    assert upward == []


def test_no_two_packages_import_each_other() -> None:
    graph: dict[str, set[str]] = {}
    for a, b in imports():
        if room(a) != room(b):
            graph.setdefault(room(a), set()).add(room(b))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(name for name in graph if reaches(name, name, {name}))
    assert cycles == []


def test_the_check_sees_imports_inside_functions() -> None:
    """The walk is not vacuous: a lazy import inside a function counts (data/candidates.py's
    ``protocols`` import is at the top; jobs/evaluate.py imports the text stage inside a
    function)."""
    edges = imports()
    assert ("hybridrec.jobs.evaluate", "hybridrec.text.embeddings") in edges
    assert len(edges) > 150
