# SPDX-License-Identifier: Apache-2.0
"""Testing support for coco plugins: the conformance kit and golden exits.

The kit needs pytest and hypothesis (the ``dev`` extra); its names are
imported lazily, so ``coco_core.review.gcc`` (used by ``coco abi check``)
works without them. ``coco_core`` itself never imports this package. A
plugin's tests use::

    from coco_core.testing import Golden, PluginConformance

and, for the fixtures, ``pytest_plugins = ["coco_core.testing.pytest_plugin"]``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coco_core.testing.kit import (
        CAPABILITIES,
        Golden,
        GoldenError,
        PluginConformance,
        apply_hex_dump,
        kvm_run_image,
        parse_hex_dump,
        registry_for,
    )

__all__ = [
    "CAPABILITIES",
    "Golden",
    "GoldenError",
    "PluginConformance",
    "apply_hex_dump",
    "kvm_run_image",
    "parse_hex_dump",
    "registry_for",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("coco_core.testing.kit"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
