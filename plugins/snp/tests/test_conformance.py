# SPDX-License-Identifier: Apache-2.0
"""The core's conformance kit, run against the SNP plugin."""

from __future__ import annotations

import coco_snp.plugin
from coco_core.testing import Golden, PluginConformance


class TestSnpConformance(PluginConformance):
    """Every check of the kit, with SNP's golden exits."""

    plugin = coco_snp.plugin
    entry_point = "snp"
    vendor = "snp"
    capabilities = frozenset({"certificates", "map_gpa", "termination", "memory_fault"})
    goldens = Golden.load_dir(__file__, "golden")
