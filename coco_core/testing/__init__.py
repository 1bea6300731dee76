# SPDX-License-Identifier: Apache-2.0
"""Testing support for coco plugins: the conformance kit and golden exits.

The kit needs pytest and hypothesis (the ``dev`` extra); its names are
imported on first use, so the golden format works without them.
``coco_core`` itself never imports this package. A plugin's tests use::

    from coco_core.testing import Golden, PluginConformance

and, for the fixtures, ``pytest_plugins = ["coco_core.testing.pytest_plugin"]``.

May import: everything in :mod:`coco_core`, pytest, hypothesis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coco_core._lazy import lazy_names

if TYPE_CHECKING:
    from coco_core.errors import GoldenError
    from coco_core.testing.golden import (
        Golden,
        apply_hex_dump,
        describe_diff,
        kvm_run_image,
        parse_hex_dump,
    )
    from coco_core.testing.kit import (
        CAPABILITIES,
        HEADER_ENV,
        PluginConformance,
        registry_for,
        status_field_problems,
    )

__all__ = [
    "CAPABILITIES",
    "HEADER_ENV",
    "Golden",
    "GoldenError",
    "PluginConformance",
    "apply_hex_dump",
    "describe_diff",
    "kvm_run_image",
    "parse_hex_dump",
    "registry_for",
    "status_field_problems",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "golden": (
            "Golden",
            "GoldenError",
            "apply_hex_dump",
            "describe_diff",
            "kvm_run_image",
            "parse_hex_dump",
        ),
        "kit": (
            "CAPABILITIES",
            "HEADER_ENV",
            "PluginConformance",
            "registry_for",
            "status_field_problems",
        ),
    },
)
