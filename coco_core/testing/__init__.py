# SPDX-License-Identifier: Apache-2.0
"""Testing support for coco plugins: the conformance kit and golden exits.

Importing this package imports pytest and hypothesis (the ``dev`` extra);
``coco_core`` itself never imports it. A plugin's tests use::

    from coco_core.testing import Golden, PluginConformance

and, for the fixtures, ``pytest_plugins = ["coco_core.testing.pytest_plugin"]``.
"""

from __future__ import annotations

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
