"""Content hashes of the code a rule runs, so that a code change reruns exactly what it touches.

A rule's code is its script under ``workflow/scripts/`` plus every ``hybridrec`` module that script
imports, transitively (imports inside functions included, and every parent package, whose
``__init__`` runs on import). Each file is hashed by its syntax tree without docstrings, so editing
a comment or a docstring reruns nothing, while any change to what the code does reruns every rule
that can reach it.

One exception keeps models apart: ``hybridrec.models`` imports every module of its package at its
end, so that each model registers itself by name and the public names are re-exported. Those imports
are registration, not dependencies, so they are left out of the walk (a module that needs
``models.base`` or ``models.layers`` imports it itself), and a training or evaluation job adds the
module of the one model it runs
(``code_hash(script, model="fmlp")``). Editing ``models/fmlp.py`` then reruns FMLP-Rec's jobs and
what follows them, never LinRec's.

The graph is read from the source files with :mod:`ast`; nothing is imported. Run
``python -m hybridrec.codehash`` to print the hash of every script (and model) of a checkout.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import sys
from pathlib import Path

PACKAGE = "hybridrec"
PACKAGE_ROOT = Path(__file__).resolve().parent
MODELS_PACKAGE = f"{PACKAGE}.models"
_REGISTER = "register_model"


def module_path(name: str) -> Path | None:
    """The source file of ``hybridrec`` module ``name`` (a package's ``__init__.py``), if any."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    relative = path.resolve().relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    """A copy of ``tree`` without module, class and function docstrings."""
    tree = ast.parse(ast.unparse(tree))  # a fresh copy to edit
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@functools.cache
def file_hash(path: Path) -> str:
    """SHA-256 of a Python file's syntax tree, docstrings and comments left out."""
    return hashlib.sha256(ast.dump(_strip_docstrings(_parse(path))).encode()).hexdigest()


def _imported_names(tree: ast.Module, importer: str, is_package: bool) -> set[str]:
    """Absolute names of the ``hybridrec`` modules (or attributes) ``tree`` imports anywhere."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                package = importer if is_package else importer.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@functools.cache
def registered_models() -> dict[str, str]:
    """Model name -> module, read from the ``@register_model("name")`` decorators in models/."""
    found: dict[str, str] = {}
    for path in sorted((PACKAGE_ROOT / "models").glob("*.py")):
        for node in ast.walk(_parse(path)):
            if not isinstance(node, ast.ClassDef):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) \
                        == _REGISTER and decorator.args \
                        and isinstance(decorator.args[0], ast.Constant):
                    found[str(decorator.args[0].value)] = _module_name(path)
    return found


def _dependencies(module: str) -> set[str]:
    """The ``hybridrec`` modules that importing ``module`` runs, less the model registrations."""
    path = module_path(module)
    if path is None:
        return set()
    names = _imported_names(_parse(path), module, path.name == "__init__.py")
    modules = {parent for name in names for parent in _with_parents(name)}
    if module == MODELS_PACKAGE:  # re-exports that make every model register itself
        modules = {m for m in modules if not m.startswith(MODELS_PACKAGE + ".")}
    return {m for m in modules if module_path(m) is not None and m != module}


def module_closure(roots: set[str]) -> set[str]:
    """Every module reachable from ``roots`` (and their parent packages) through imports."""
    seen: set[str] = set()
    todo = [parent for root in roots for parent in _with_parents(root)]
    while todo:
        module = todo.pop()
        if module in seen or module_path(module) is None:
            continue
        seen.add(module)
        todo.extend(_dependencies(module) - seen)
    return seen


def _closure_hashes(roots: set[str]) -> dict[str, str]:
    return {name: file_hash(path) for name in sorted(module_closure(roots))
            if (path := module_path(name)) is not None}


def _model_module(model: str) -> str:
    models = registered_models()
    if model not in models:
        raise KeyError(f"model {model!r} is not registered; registered: {sorted(models)}")
    return models[model]


def _digest(hashes: dict[str, str]) -> str:
    listing = "\n".join(f"{name} {digest}" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(listing.encode()).hexdigest()


@functools.cache
def code_modules(script: str | Path, model: str | None = None) -> dict[str, str]:
    """``{module or script: file hash}`` of everything ``script`` runs (and model ``model``)."""
    script_path = Path(script).resolve()
    roots = _imported_names(_parse(script_path), "__main__", False)
    if model is not None:
        roots.add(_model_module(model))
    hashes = _closure_hashes(roots)
    hashes[f"script:{script_path.name}"] = file_hash(script_path)
    return hashes


def code_hash(script: str | Path, model: str | None = None) -> str:
    """One SHA-256 over :func:`code_modules` (names and file hashes): a rule's code version."""
    return _digest(code_modules(script, model))


# Imported by the training loop but never touching a value it computes: file writing, provenance,
# logging, errors, device claims and the checkpoint files (whose layout has its own version in
# the resume key). An edit to them must not orphan a long run's checkpoints.
WEIGHTS_NEUTRAL = frozenset(f"{PACKAGE}.{name}" for name in (
    "io", "provenance", "plain", "logsetup", "errors", "devices", "training.checkpoint"))


@functools.cache
def weights_code_hash(model: str) -> str:
    """The code that computes ``model``'s weights: its module and the training loop, with what
    they import, less :data:`WEIGHTS_NEUTRAL`. A training checkpoint is resumed only by this
    same code."""
    roots = {_model_module(model), f"{PACKAGE}.training.loop"}
    return _digest({name: digest for name, digest in _closure_hashes(roots).items()
                    if name not in WEIGHTS_NEUTRAL})


def main(argv: list[str] | None = None) -> int:
    """Print the code hash of every script in a scripts folder (per model for train/evaluate)."""
    args = sys.argv[1:] if argv is None else argv
    scripts = Path(args[0]) if args else Path("workflow/scripts")
    for script in sorted(scripts.glob("*.py")):
        if script.stem in ("train", "evaluate"):
            for model in sorted(registered_models()):
                print(f"{script.stem}[{model}]\t{code_hash(script, model)}")
        else:
            print(f"{script.stem}\t{code_hash(script)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
