# SPDX-License-Identifier: Apache-2.0
"""Names a package re-exports from its modules, imported on first use (PEP 562).

A room whose package is imported for one light module (the emulated TEE's
port numbers, the kit's golden format) keeps the rest unloaded until a name
is asked for, so ``coco --help`` and plugin registration stay fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, modules: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``{module: names}`` it re-exports.

    :param package: the package's ``__name__``.
    :param modules: each submodule (relative name) and the names taken from it.
    """
    where = {name: f"{package}.{module}" for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__
