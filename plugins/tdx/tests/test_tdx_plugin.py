# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_tdx.plugin: registration through from_plugins and entry points."""

from __future__ import annotations

import coco_tdx.plugin
from coco_core.dispatch import Dispatcher
from coco_core.generic.uapi import KVM_RUN_SIZE
from coco_core.registry import Registry
from coco_core.requests import QuoteRequest
from coco_core.status import CoCoStatus


def test_from_plugins_registers_every_released_abi() -> None:
    """The TDX part joins linux-6.16 .. 7.2 with the tdx union member and its spaces."""
    reg = Registry.from_plugins([coco_tdx.plugin])
    assert "tdx" in reg.vendors
    for abi in ("linux-6.16", "linux-7.0", "linux-7.1", "linux-7.2"):
        merged = reg.abi(abi)
        assert merged.exits["KVM_EXIT_TDX"] == 40
        assert "tdx" in merged.vendors
        offsets = merged.kvm_run_layout().offsets("kvm_run")
        assert offsets["kvm_run.tdx.get_quote.gpa"] == (56, 8)
    assert {"tdx.tdvmcall", "tdx.get_quote_status", "tdx.qgs"} <= set(reg.spaces)


def test_map_gpa_range_stays_with_the_core() -> None:
    """The TDX plugin does not claim KVM_HC_MAP_GPA_RANGE; the core's decoder serves TDX."""
    reg = Registry.from_plugins([coco_tdx.plugin])
    table = reg.decoders_for("linux-7.2", "tdx")
    assert table[(3, 12)].vendor == "kvm"
    assert table[(40, 0x10002)].vendor == "tdx"
    assert table[(24, 7)].vendor == "tdx"


def test_proposal_abi_is_registered_unreleased() -> None:
    """The 2025 separate-exit proposal is an unreleased ABI whose exits dispatch."""
    reg = Registry.from_plugins([coco_tdx.plugin])
    abi = reg.abi("tdx-separate-exits-2025")
    assert not abi.released
    assert abi.exits == {"KVM_EXIT_TDX_GET_QUOTE": 41, "KVM_EXIT_TDX_SETUP_EVENT_NOTIFY": 42}
    assert any("UNVERIFIED" in n for n in abi.notes)
    d = Dispatcher(reg, "tdx", "tdx-separate-exits-2025")
    d.on(QuoteRequest, lambda r, c: CoCoStatus.OK)
    run = bytearray(KVM_RUN_SIZE)
    run[8:12] = (41).to_bytes(4, "little")
    run[32:56] = (
        (7).to_bytes(8, "little") + (0x5000).to_bytes(8, "little") + (4096).to_bytes(8, "little")
    )
    assert d.decode(run).request == QuoteRequest(0x5000, 4096)
    d.dispatch(run)
    assert run[32:40] == bytes(8)


def test_model_and_command_are_registered() -> None:
    """The kernel model, one doorbell part (with its fallback call) and 'coco tdx' come with it."""
    reg = Registry.from_plugins([coco_tdx.plugin])
    names = {c.name for part in reg.models if part.vendor == "tdx" for c in part.calls}
    assert names == {
        "tdx.get_quote",
        "tdx.get_tdvmcall_info",
        "tdx.setup_event_notify",
        "tdx.map_gpa",
        "tdx.report_fatal_error",
        "tdx.kvm_hypercall",
        "tdx.unsupported",
    }
    (part,) = [p for p in reg.models if p.vendor == "tdx" and p.doorbell_port is not None]
    assert part.route is not None
    assert part.doorbell_port == 0x0CC0
    assert reg.commands["tdx"].target == "coco_tdx.cli:configure_parser"


def test_entry_point_discovery() -> None:
    """Registry.from_entry_points(allow={'tdx'}) finds the plugin through package metadata."""
    reg = Registry.from_entry_points(allow={"tdx"})
    assert "tdx" in reg.vendors
    assert "tdx" in reg.abi("linux-7.2").vendors
