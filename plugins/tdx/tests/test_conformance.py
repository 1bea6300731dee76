# SPDX-License-Identifier: Apache-2.0
"""The core's conformance kit, run against the TDX plugin."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import coco_tdx.plugin
from coco_core.testing import Golden, PluginConformance

#: The Linux 7.2 uapi headers tests/review/test_abi_header.py fetches (Debian linux-libc-dev);
#: without them the kit reads COCO_KVM_HEADER_DIR, or skips saying how to get them.
_UAPI72 = Path(__file__).resolve().parents[3] / ".venv" / "cache" / "uapi72"


class TestTdxConformance(PluginConformance):
    """Every check of the kit, with TDX's golden exits."""

    plugin = coco_tdx.plugin
    entry_point = "tdx"
    vendor = "tdx"
    capabilities = frozenset(
        {"get_quote", "event_notify", "tdvmcall_info", "map_gpa", "termination", "memory_fault"}
    )
    goldens = Golden.load_dir(__file__, "golden")
    headers = {"linux-7.2": _UAPI72} if (_UAPI72 / "usr/include/linux/kvm.h").is_file() else {}
    unmodelled: ClassVar[Mapping[str, str]] = {
        "KVM_EXIT_TDX/unknown": "no released kernel exits with another nr yet; api.rst "
        "(cf207eac06f6) reserves it: 'KVM may add support for more values in the future'",
        "KVM_EXIT_TDX_GET_QUOTE": "coco_tdx.model models the released KVM_EXIT_TDX only, not the "
        "2025 separate-exit proposal",
        "KVM_EXIT_TDX_SETUP_EVENT_NOTIFY": "coco_tdx.model models the released KVM_EXIT_TDX only, "
        "not the 2025 separate-exit proposal",
    }
