"""A griffe extension for the API reference: Sphinx roles and wrapped section lines.

The docstrings are Google style with two habits the Google parser does not read as meant.

**Sphinx roles.** Cross-references are written ``:class:`~mbrl.models.DynamicsModel```,
which Markdown renders as the literal text ``:class:``. They become inline code of the
name (``DynamicsModel``; the full path without the ``~``), as Sphinx would show them.

**Wrapped items.** Some docstrings wrap an item of an ``Args:`` / ``Attributes:`` / ``Raises:`` section onto a
line at the item's own indentation, e.g.::

    Attributes:
        config: the effective config (preset applied, the backend
        chosen); records: every episode (:class:`EpisodeRecord`, or
        :class:`PlanetRecord` for ``rssm``); model: ...

The Google parser reads each such line as a new item: a line starting with ``:class:`` crashes
it (an empty item name) and a line without ``name:`` is a warning, which ``mkdocs build
--strict`` turns into an error. This extension indents those lines, making them the
continuation the author meant, before griffe parses the docstring. Lines that do start an
item (``name: ...``, ``a / b: ...``, ``a, b: ...``, ``name (type): ...``) are left alone.

**Re-exports.** A name a package re-exports (in its ``__all__``) would be rendered in full
under the package and again under the module that defines it; re-exports are marked
non-public for the reference, so each object is documented once, where it is defined.

All of this changes what is rendered only; the source files are not touched. Configured in
``mkdocs.yml`` (``extensions:`` of the python handler).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SECTION = re.compile(
    r"^(\s*)(Args|Arguments|Parameters|Attributes|Raises|Exceptions|Warns|Yields|Returns):\s*$"
)
_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc|const|ref):`(~?)([^`]+)`")
# An item head: names (a, a / b, a, b, *args), an optional "(type)", then ": " or a final ":".
_ITEM = re.compile(r"^[A-Za-z_*][\w*.]*(\s*[,/]\s*[A-Za-z_*][\w*.]*)*,?\s*(\([^)]*\))?\s*:(\s|$)")


def fix_continuations(text: str) -> str:
    """``text`` with section lines that continue the previous item indented by 4 spaces, and
    item heads wrapped after a comma (``a, b,`` then ``c: ...``) joined into one line."""
    out: list[str] = []
    item_indent: int | None = None  # indentation of the current section's items
    section_indent = -1  # indentation of the current section's header; -1: not in one
    for line in text.split("\n"):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        header = _SECTION.match(line)
        if header:
            section_indent, item_indent = len(header.group(1)), None
        elif not stripped or section_indent < 0:
            pass
        elif indent <= section_indent:
            section_indent, item_indent = -1, None  # text after the section
        elif item_indent is None or indent < item_indent:
            item_indent = indent
        elif indent == item_indent:
            previous = out[-1] if out else ""
            head = previous.strip()
            if head.endswith(",") and ":" not in head and previous.startswith(" " * indent + head):
                out[-1] = previous.rstrip() + " " + stripped
                continue
            if not _ITEM.match(stripped):
                line = " " * 4 + line
        out.append(line)
    return "\n".join(out)


def plain_roles(text: str) -> str:
    """``text`` with each Sphinx role ``:class:`~a.b.C``` as inline code (``C``; without
    ``~`` the whole path)."""

    def code(match: re.Match[str]) -> str:
        target = match.group(2).rstrip("()")
        return f"``{target.rsplit('.', 1)[-1] if match.group(1) else target}``"

    return _ROLE.sub(code, text)


def _hide_reexports(module: griffe.Module) -> None:
    for member in module.members.values():
        if member.is_alias:
            member.public = False
        elif member.is_module:
            _hide_reexports(member)


class DocstringFixes(griffe.Extension):
    """Applies :func:`plain_roles` and :func:`fix_continuations` to every docstring as it is
    loaded, and documents re-exported names only where they are defined."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Mark every re-export (alias) in ``pkg`` and its submodules non-public."""
        _hide_reexports(pkg)

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite ``obj``'s docstring in place (before griffe parses it)."""
        if obj.docstring is not None:
            obj.docstring.value = fix_continuations(plain_roles(obj.docstring.value))
