# SPDX-License-Identifier: Apache-2.0
"""The core's conformance kit, run against the TDX plugin."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import coco_tdx.plugin
from coco_core.testing import Golden, PluginConformance

#: The Linux 7.2 uapi headers: $COCO_UAPI_INCLUDE, else where the core's tests fetch them
#: (tests/conftest.py, `uapi_include`: .venv/cache/uapi72, Debian linux-libc-dev).
_UAPI72 = Path(__file__).resolve().parents[3] / ".venv" / "cache" / "uapi72"


def _uapi72() -> dict[str, Path]:
    """Looked up when the check runs (the core's tests may have fetched them by then)."""
    given = os.environ.get("COCO_UAPI_INCLUDE")
    for where in (Path(given) if given else None, _UAPI72 / "usr" / "include", _UAPI72):
        if where is not None and (where / "linux" / "kvm.h").is_file():
            return {"linux-7.2": where}
    return {}


class TestTdxConformance(PluginConformance):
    """Every check of the kit, with TDX's golden exits."""

    plugin = coco_tdx.plugin
    entry_point = "tdx"
    vendor = "tdx"
    capabilities = frozenset(
        {"get_quote", "event_notify", "tdvmcall_info", "map_gpa", "termination", "memory_fault"}
    )
    goldens = Golden.load_dir(__file__, "golden")

    @property
    def headers(self) -> Mapping[str, Path]:  # type: ignore[override]  # found at run time
        """The 7.2 uapi headers, if this host has them (the kit skips saying how, if not)."""
        return _uapi72()

    unmodelled: ClassVar[Mapping[str, str]] = {
        "KVM_EXIT_TDX/unknown": "no released kernel exits with another nr yet; api.rst "
        "(cf207eac06f6) reserves it: 'KVM may add support for more values in the future'",
        "KVM_EXIT_TDX_GET_QUOTE": "coco_tdx.model models the released KVM_EXIT_TDX only, not the "
        "2025 separate-exit proposal",
        "KVM_EXIT_TDX_SETUP_EVENT_NOTIFY": "coco_tdx.model models the released KVM_EXIT_TDX only, "
        "not the 2025 separate-exit proposal",
    }
