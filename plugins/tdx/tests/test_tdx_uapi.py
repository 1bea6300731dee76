# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_tdx.uapi: the tdx member of kvm_run and the 2025 proposal layouts."""

from __future__ import annotations

import pytest

from coco_core.generic.uapi import KVM_RUN_SIZE, kvm_run_layout
from coco_core.review.render import render_c
from coco_tdx.uapi import (
    TDX_LAYOUT,
    KvmTdxExit,
    KvmTdxGetQuote2025,
    KvmTdxSetupEventNotify2025,
    TdvmcallLeaf,
    proposal_2025_union_members,
)

# docs/reference/kernel-abi.md §1.3 (computed with gcc)
EXPECTED = {
    "kvm_run.tdx.flags": (32, 8),
    "kvm_run.tdx.nr": (40, 8),
    "kvm_run.tdx.unknown.ret": (48, 8),
    "kvm_run.tdx.unknown.data": (56, 40),
    "kvm_run.tdx.get_quote.ret": (48, 8),
    "kvm_run.tdx.get_quote.gpa": (56, 8),
    "kvm_run.tdx.get_quote.size": (64, 8),
    "kvm_run.tdx.get_tdvmcall_info.ret": (48, 8),
    "kvm_run.tdx.get_tdvmcall_info.leaf": (56, 8),
    "kvm_run.tdx.get_tdvmcall_info.r11": (64, 8),
    "kvm_run.tdx.get_tdvmcall_info.r12": (72, 8),
    "kvm_run.tdx.get_tdvmcall_info.r13": (80, 8),
    "kvm_run.tdx.get_tdvmcall_info.r14": (88, 8),
    "kvm_run.tdx.setup_event_notify.ret": (48, 8),
    "kvm_run.tdx.setup_event_notify.vector": (56, 8),
}


def _hex(text: str) -> bytes:
    """Bytes from a hex dump whose lines are ``offset: bytes  # comment``."""
    out = bytearray()
    for line in text.strip().splitlines():
        body = line.split("#", 1)[0].split(":", 1)[1]
        out += bytes.fromhex(body)
    return bytes(out)


def test_nested_layout_offsets_match_the_fact_sheet() -> None:
    """Every tdx access path sits at the offset gcc gives (kernel-abi.md §1.3)."""
    offsets = kvm_run_layout({"tdx": TDX_LAYOUT}).offsets("kvm_run")
    assert {k: v for k, v in offsets.items() if k.startswith("kvm_run.tdx.")} == EXPECTED
    assert TDX_LAYOUT.size == 64
    assert kvm_run_layout({"tdx": TDX_LAYOUT}).size == KVM_RUN_SIZE


def test_flat_struct_mirrors_the_unknown_view() -> None:
    """KvmTdxExit covers flags, nr, ret and data[5] in 64 bytes, as the unknown view does."""
    assert KvmTdxExit.c_size() == 64
    assert KvmTdxExit._c_struct.format == "<QQQ5Q"
    flat = {m.name: m.offset for m in KvmTdxExit.c_layout().members}
    assert flat == {"flags": 0, "nr": 8, "ret": 16, "data": 24}


def test_render_c_reads_like_the_header() -> None:
    """The nested layout renders with the four named views of the anonymous union."""
    text = render_c(TDX_LAYOUT)
    for view in ("unknown", "get_quote", "get_tdvmcall_info", "setup_event_notify"):
        assert f"}} {view};" in text


def test_golden_get_quote_image_decodes() -> None:
    """A hand-written KVM_EXIT_TDX GetQuote image decodes to the fields at their offsets."""
    union = _hex(
        """
        20: 0000000000000000  # 32 tdx.flags = 0
        28: 0200010000000000  # 40 tdx.nr = 0x10002 (GET_QUOTE)
        30: 0300000000000080  # 48 get_quote.ret = SUBFUNC_UNSUPPORTED (pre-filled)
        38: 0000100000000000  # 56 get_quote.gpa = 0x100000 (shared bit stripped)
        40: 0020000000000000  # 64 get_quote.size = 0x2000
        48: 0000000000000000  # 72 data[2]
        50: 0000000000000000  # 80 data[3]
        58: 0000000000000000  # 88 data[4]
        """
    )
    run = bytearray(KVM_RUN_SIZE)
    run[32 : 32 + len(union)] = union
    tdx = KvmTdxExit.from_buffer(run, 32)
    assert (tdx.flags, tdx.nr, tdx.ret) == (0, TdvmcallLeaf.GET_QUOTE, 0x8000000000000003)
    assert tdx.data == (0x100000, 0x2000, 0, 0, 0)
    assert tdx.to_bytes() == union


def test_leaf_numbers() -> None:
    """TDVMCALL leaves carry the values of arch/x86/include/asm/shared/tdx.h."""
    assert [int(x) for x in TdvmcallLeaf] == [0x10000, 0x10001, 0x10002, 0x10003, 0x10004]


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("kvm_run.tdx_get_quote.ret", (32, 8)),
        ("kvm_run.tdx_get_quote.gpa", (40, 8)),
        ("kvm_run.tdx_get_quote.size", (48, 8)),
        ("kvm_run.tdx_setup_event_notify.ret", (32, 8)),
        ("kvm_run.tdx_setup_event_notify.vector", (40, 1)),
    ],
)
def test_proposal_2025_offsets(path: str, where: tuple[int, int]) -> None:
    """The 2025-04-02 separate-exit structs sit at the start of the exit union."""
    assert kvm_run_layout(proposal_2025_union_members()).offsets("kvm_run")[path] == where


def test_proposal_2025_sizes() -> None:
    """The proposal's GetQuote struct is 24 bytes, SetupEventNotify 16 with 7 bytes of padding."""
    assert KvmTdxGetQuote2025.c_size() == 24
    assert KvmTdxSetupEventNotify2025.c_size() == 16
    assert KvmTdxSetupEventNotify2025.c_layout().holes()[0].size == 7
