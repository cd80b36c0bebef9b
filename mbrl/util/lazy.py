"""Lazy re-exports for package ``__init__`` modules.

A package lists its re-exports once, as ordinary imports under ``if TYPE_CHECKING:`` (so type
checkers and IDEs see the real types), and :func:`lazy_exports` turns those import lines into a
module ``__getattr__`` that imports each name's module on first access. Importing the package
then costs nothing beyond its own file: ``import mbrl`` does not load torch, gpytorch, scipy,
matplotlib or ray until a name that needs them is used.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _declared_imports(source_file: str, package: str) -> dict[str, tuple[str, str]]:
    """``{exported name: (absolute module, attribute)}`` of the ``from X import Y`` statements
    inside the ``if TYPE_CHECKING:`` blocks of ``source_file`` (the ``__init__`` of
    ``package``)."""
    tree = ast.parse(Path(source_file).read_text(encoding="utf-8"), filename=source_file)
    out: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if not (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
        ):
            continue
        for stmt in node.body:
            if not isinstance(stmt, ast.ImportFrom):
                continue
            module = stmt.module or ""
            if stmt.level:
                base = package.rsplit(".", stmt.level - 1)[0] if stmt.level > 1 else package
                module = f"{base}.{module}" if module else base
            for alias in stmt.names:
                out[alias.asname or alias.name] = (module, alias.name)
    return out


def lazy_exports(
    package: str, source_file: str, submodules: tuple[str, ...] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a package with lazy re-exports.

    Args:
        package: the package's ``__name__``.
        source_file: its ``__file__``; the names re-exported are those imported under
            ``if TYPE_CHECKING:`` there (``from mod import name [as alias]``, absolute or
            relative).
        submodules: names of subpackages/submodules that ``package.<name>`` imports on first
            access (as an eager ``import package.name`` used to make available).

    Returns:
        ``(__getattr__, __dir__)``. The first access of a name imports its module and caches the
        value in the package's namespace, so later lookups are plain attribute reads.
    """
    exports = _declared_imports(source_file, package)
    lazy_submodules = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        namespace = sys.modules[package].__dict__
        if name in exports:
            module, attribute = exports[name]
            value = getattr(importlib.import_module(module), attribute)
        elif name in lazy_submodules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(sys.modules[package].__dict__) | set(exports) | lazy_submodules)

    return __getattr__, __dir__
