# SPDX-License-Identifier: Apache-2.0
"""The core's conformance kit, run against the SNP plugin."""

from __future__ import annotations

from pathlib import Path

import coco_snp.plugin
from coco_core.testing import Golden, PluginConformance

#: The Linux 7.2 uapi headers tests/review/test_abi_header.py fetches (Debian linux-libc-dev);
#: without them the kit reads COCO_KVM_HEADER_DIR, or skips saying how to get them.
_UAPI72 = Path(__file__).resolve().parents[3] / ".venv" / "cache" / "uapi72"


class TestSnpConformance(PluginConformance):
    """Every check of the kit, with SNP's golden exits."""

    plugin = coco_snp.plugin
    entry_point = "snp"
    vendor = "snp"
    capabilities = frozenset({"certificates", "map_gpa", "termination", "memory_fault"})
    goldens = Golden.load_dir(__file__, "golden")
    headers = {"linux-7.2": _UAPI72} if (_UAPI72 / "usr/include/linux/kvm.h").is_file() else {}
