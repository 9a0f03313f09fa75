"""The source digest of the code that makes embeddings, derived from its imports.

The embedding store keys and run ids include ``code_digest()``: SHA-256 over the source
of every project module (``robustpath.*``, ``corruptions.*``) that the image → embedding
path can execute.  The modules are found, not listed: starting from DIGEST_ROOTS (the
sweep, the corruptions package, the dataset readers) and from every registered model
source's adapter (robustpath.models.sources), the ``import`` and ``from … import``
statements of each module, at module level and inside functions, are followed
transitively (an AST walk; nothing is imported).  A package's ``__init__`` is hashed when
a module below it is, and a package's own imports are followed at module level only (so
the lazy faces of ``robustpath/__init__.py`` do not pull in the whole CLI).  Files are hashed in
the order of their module names.
"""
from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PROJECT_PACKAGES = ("robustpath", "corruptions")
DIGEST_ROOTS = ("robustpath.embedding.engine", "corruptions", "robustpath.data.dataset", "robustpath.data.images")


def _package_dirs() -> dict[str, Path]:
    import corruptions

    import robustpath

    return {"robustpath": Path(robustpath.__file__).parent, "corruptions": Path(corruptions.__file__).parent}


def module_file(module: str, packages: dict[str, Path]) -> Path | None:
    """The source file of a project module (a package's __init__.py), None for other modules."""
    top, *rest = module.split(".")
    if top not in packages:
        return None
    base = packages[top].joinpath(*rest)
    for candidate in (base / "__init__.py", base.with_suffix(".py") if rest else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _imported_names(tree: ast.AST, module: str, is_package: bool, nested: bool) -> set[str]:
    """Modules named by the import statements of ``tree`` (``nested``: inside functions and classes too)."""
    nodes = _statements(tree.body) if nested else tree.body
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


_STATEMENT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(body: list):
    """Every statement of ``body`` and of the blocks nested in it (functions, classes, if, try, with, match...).

    Import statements are statements, and statements sit only in these lists (expressions hold
    none, not even lambdas), so this finds every import that ast.walk does while visiting a
    fraction of the nodes.
    """
    pending = list(reversed(body))
    while pending:
        node = pending.pop()
        yield node
        for field in _STATEMENT_LISTS:
            pending.extend(reversed(getattr(node, field, None) or ()))


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    return ".".join(parts[:keep] + ([node.module] if node.module else []))


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def digest_modules(roots, packages: dict[str, Path] | None = None) -> dict[str, Path]:
    """Module name → file of every project module reachable from ``roots`` (see the module docstring).

    A root that is a package stands for all the modules in it.
    """
    packages = packages or _package_dirs()
    found: dict[str, Path] = {}
    pending = _expand_packages(roots, packages)
    while pending:
        module = pending.pop()
        path = module_file(module, packages)
        if path is None or module in found:
            continue
        found[module] = path
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_bytes(), filename=str(path))
        pending += _parents(module) + sorted(_imported_names(tree, module, is_package, nested=not is_package))
    return dict(sorted(found.items()))


def _expand_packages(roots, packages: dict[str, Path]) -> list[str]:
    names = []
    for root in roots:
        path = module_file(root, packages)
        names.append(root)
        if path is not None and path.name == "__init__.py":
            names += [
                ".".join([root, *file.relative_to(path.parent).with_suffix("").parts])
                for file in sorted(path.parent.rglob("*.py")) if file.name != "__init__.py"
            ]
    return names


def source_roots() -> tuple[str, ...]:
    """DIGEST_ROOTS and the module of every registered model source's target."""
    from robustpath.models.sources import list_model_sources

    return (*DIGEST_ROOTS, *(source.target.split(":")[0] for source in list_model_sources()))


def compute_code_digest(roots=None, packages: dict[str, Path] | None = None) -> str:
    """SHA-256 (hex) over the relative paths and bytes of ``digest_modules(roots)``, in module order."""
    packages = packages or _package_dirs()
    digest = hashlib.sha256()
    for module, path in digest_modules(roots or source_roots(), packages).items():
        digest.update(module.encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
