"""Deferred imports for package faces (the SPEC 1 pattern, without the dependency).

A package's ``__init__`` names what it offers and the submodule that defines each name; the
submodule is imported on first access, so ``import bioclip_nb`` (and ``bioclip-nb --help``)
pulls in neither FAISS, DuckDB, torch nor pandas.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def attach(package: str, names: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``; ``names`` maps a public name to the
    submodule (relative to ``package``) that defines it, to ``""`` for a submodule itself, or
    to ``"=sub.module"`` for a module kept under another name (``bioclip_nb.results`` is
    ``bioclip_nb.outputs.results``)."""

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        where = names[name]
        if where == "":
            return importlib.import_module(f"{package}.{name}")
        if where.startswith("="):
            return importlib.import_module(f"{package}.{where[1:]}")
        return getattr(importlib.import_module(f"{package}.{where}"), name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__, sorted(names)
