"""Lazy re-exports for package ``__init__`` modules.

A package lists its re-exports once, as ordinary imports under ``if TYPE_CHECKING:`` (so type
checkers and IDEs see the real types), and :func:`install_lazy_exports` turns those import lines
into attributes that import each name's module on first access. Importing the package
then costs nothing beyond its own file: ``import mbrl`` does not load torch, gpytorch, scipy,
matplotlib or ray until a name that needs them is used.
"""

from __future__ import annotations

import ast
import importlib
import sys
import types
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


class _LazyPackage(types.ModuleType):
    """A package module whose re-exports load on first access (see :func:`install_lazy_exports`)."""

    _lazy_exports: dict[str, tuple[str, str]] = {}
    _lazy_submodules: frozenset[str] = frozenset()

    def __getattr__(self, name: str) -> Any:
        if name in self._lazy_exports:
            module, attribute = self._lazy_exports[name]
            value = getattr(importlib.import_module(module), attribute)
        elif name in self._lazy_submodules:
            value = importlib.import_module(f"{self.__name__}.{name}")
        else:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        self.__dict__[name] = value
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(self.__dict__) | set(self._lazy_exports) | self._lazy_submodules)

    def __setattr__(self, name: str, value: Any) -> None:
        # The import system binds each loaded submodule as an attribute of its package. Where a
        # re-export has the name of the submodule it comes from (``mbrl.rollout``, the function
        # of the subpackage ``mbrl.rollout``), the re-export wins, as with eager imports.
        target = self._lazy_exports.get(name)
        if (
            target is not None
            and isinstance(value, types.ModuleType)
            and value.__name__ == target[0] == f"{self.__name__}.{name}"
        ):
            value = getattr(value, target[1])
        super().__setattr__(name, value)


def install_lazy_exports(package: str, source_file: str, submodules: tuple[str, ...] = ()) -> None:
    """Make the re-exports of ``package`` lazy.

    Args:
        package: the package's ``__name__`` (its module must be in ``sys.modules``, as it is
            while its ``__init__`` runs).
        source_file: its ``__file__``; the names re-exported are those imported under
            ``if TYPE_CHECKING:`` there (``from mod import name [as alias]``, absolute or
            relative).
        submodules: names of subpackages/submodules that ``package.<name>`` imports on first
            access (as an eager ``import package.name`` used to make available).

    The first access of a name imports its module and caches the value in the package's
    namespace, so later lookups are plain attribute reads; ``dir(package)`` lists every name.
    """
    module = sys.modules[package]
    module.__class__ = type(
        f"LazyPackage[{package}]",
        (_LazyPackage,),
        {
            "_lazy_exports": _declared_imports(source_file, package),
            "_lazy_submodules": frozenset(submodules),
        },
    )
