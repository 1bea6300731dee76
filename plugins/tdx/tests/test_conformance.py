# SPDX-License-Identifier: Apache-2.0
"""The core's conformance kit, run against the TDX plugin."""

from __future__ import annotations

import coco_tdx.plugin
from coco_core.testing import Golden, PluginConformance


class TestTdxConformance(PluginConformance):
    """Every check of the kit, with TDX's golden exits."""

    plugin = coco_tdx.plugin
    entry_point = "tdx"
    vendor = "tdx"
    capabilities = frozenset(
        {"get_quote", "event_notify", "tdvmcall_info", "map_gpa", "termination", "memory_fault"}
    )
    goldens = Golden.load_dir(__file__, "golden")
