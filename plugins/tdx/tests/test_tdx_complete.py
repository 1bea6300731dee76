# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_tdx.complete: KVM_EXIT_TDX decoders and write-backs, TDX fatal errors."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest

import coco_tdx.plugin
from coco_core.dispatch import Dispatcher
from coco_core.generic.uapi import KVM_RUN_SIZE, KvmSystemEventExit
from coco_core.registry import Registry
from coco_core.requests import (
    EventNotifySetup,
    QuoteRequest,
    TdvmcallInfoQuery,
    Termination,
    Unsupported,
    VendorSpecific,
)
from coco_core.status import CoCoStatus, Outcome
from coco_tdx.complete import TdvmcallInfo, decode_fatal_error, fatal_message
from coco_tdx.ghci import TdvmcallStatus
from coco_tdx.uapi import KvmTdxExit, TdvmcallLeaf

SUBFUNC_UNSUPPORTED = TdvmcallStatus.SUBFUNC_UNSUPPORTED


def _keep(seen: list[Any], result: Any) -> Callable[[Any, Any], Any]:
    """A handler that records each request and answers ``result``."""

    def handler(request: Any, context: Any) -> Any:
        seen.append(request)
        return result

    return handler


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The core plus the TDX plugin, no entry-point discovery."""
    return Registry.from_plugins([coco_tdx.plugin])


def _run(nr: int, ret: int, *data: int) -> bytearray:
    """A kvm_run with a KVM_EXIT_TDX and a recognisable pattern outside the tdx member."""
    run = bytearray(b"\xa5" * KVM_RUN_SIZE)
    run[32:288] = bytes(256)
    struct.pack_into("<I", run, 8, 40)
    KvmTdxExit(0, nr, ret, (*data, 0, 0, 0, 0, 0)[:5]).pack_into(run, 32)
    return run


def _changed(before: bytes, after: bytes | bytearray) -> set[int]:
    return {i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b}


def test_get_quote_decodes_and_writes_ret(registry: Registry) -> None:
    """GetQuote becomes QuoteRequest(gpa, size) and the answer lands only in tdx.ret."""
    d = Dispatcher(registry, "tdx")
    seen: list[QuoteRequest] = []
    d.on(QuoteRequest, _keep(seen, CoCoStatus.OK))
    run = _run(TdvmcallLeaf.GET_QUOTE, SUBFUNC_UNSUPPORTED, 0x100000, 0x2000)
    before = bytes(run)
    assert d.dispatch(run) is CoCoStatus.OK
    assert seen == [QuoteRequest(0x100000, 0x2000)]
    assert struct.unpack_from("<Q", run, 48)[0] == TdvmcallStatus.SUCCESS
    assert _changed(before, run) <= set(range(48, 56))


def test_align_error_vendor_code(registry: Registry) -> None:
    """An Outcome with ALIGN_ERROR as vendor code is written verbatim for INVALID."""
    d = Dispatcher(registry, "tdx")
    d.on(
        QuoteRequest,
        lambda r, c: Outcome(CoCoStatus.INVALID, vendor_code=TdvmcallStatus.ALIGN_ERROR),
    )
    run = _run(TdvmcallLeaf.GET_QUOTE, SUBFUNC_UNSUPPORTED, 0x100001, 0x2000)
    d.dispatch(run)
    assert struct.unpack_from("<Q", run, 48)[0] == TdvmcallStatus.ALIGN_ERROR


def test_setup_event_notify_decodes(registry: Registry) -> None:
    """SetupEventNotifyInterrupt becomes EventNotifySetup(vector); RETRY writes 1."""
    d = Dispatcher(registry, "tdx")
    d.on(EventNotifySetup, lambda r, c: CoCoStatus.RETRY)
    run = _run(TdvmcallLeaf.SETUP_EVENT_NOTIFY_INTERRUPT, SUBFUNC_UNSUPPORTED, 0x40)
    assert d.decode(run).request == EventNotifySetup(0x40)
    d.dispatch(run)
    assert struct.unpack_from("<Q", run, 48)[0] == TdvmcallStatus.RETRY


def test_get_tdvmcall_info_writes_r11_to_r14(registry: Registry) -> None:
    """GetTdVmCallInfo writes ret and r11..r14 from Outcome.value and keeps leaf."""
    d = Dispatcher(registry, "tdx")
    info = TdvmcallInfo(r11=2, r12=0x10, r13=0, r14=7)
    d.on(TdvmcallInfoQuery, lambda r, c: Outcome(CoCoStatus.OK, value=info.to_value()))
    run = _run(TdvmcallLeaf.GET_TD_VM_CALL_INFO, TdvmcallStatus.SUCCESS, 1)
    before = bytes(run)
    d.dispatch(run)
    assert struct.unpack_from("<6Q", run, 48) == (0, 1, 2, 0x10, 0, 7)
    assert _changed(before, run) <= set(range(48, 96))
    assert TdvmcallInfo.from_value(info.to_value()) == info


def test_get_tdvmcall_info_error_keeps_zero_outputs(registry: Registry) -> None:
    """On an error the r11..r14 outputs stay zero whatever the Outcome carries."""
    d = Dispatcher(registry, "tdx")
    d.on(TdvmcallInfoQuery, lambda r, c: Outcome(CoCoStatus.INVALID, value=0xFFFF))
    run = _run(TdvmcallLeaf.GET_TD_VM_CALL_INFO, TdvmcallStatus.SUCCESS, 1)
    d.dispatch(run)
    assert struct.unpack_from("<6Q", run, 48) == (1 << 63, 1, 0, 0, 0, 0)


def test_unhandled_request_gets_subfunc_unsupported(registry: Registry) -> None:
    """A GetQuote with no handler is completed with SUBFUNC_UNSUPPORTED (the default status)."""
    d = Dispatcher(registry, "tdx")
    run = _run(TdvmcallLeaf.GET_QUOTE, 0, 0x1000, 0x1000)
    assert d.dispatch(run) is CoCoStatus.UNSUPPORTED
    assert struct.unpack_from("<Q", run, 48)[0] == SUBFUNC_UNSUPPORTED


@pytest.mark.parametrize("nr", [0x10001, 0x10003, 0x10005, 0, 1 << 63, 2**64 - 1])
def test_unknown_nr_is_left_untouched(registry: Registry, nr: int) -> None:
    """An nr nobody claims comes back as Unsupported and kvm_run is not modified."""
    d = Dispatcher(registry, "tdx")
    run = _run(nr, SUBFUNC_UNSUPPORTED, 1, 2, 3, 4, 5)
    before = bytes(run)
    result = d.dispatch(run)
    assert isinstance(result, Unsupported)
    assert (result.raw_reason, result.discriminator) == (40, nr)
    assert bytes(run) == before


def test_unknown_nr_can_be_answered_as_vendor_specific(registry: Registry) -> None:
    """A VMM handling VendorSpecific sees every tdx field and its status lands in ret."""
    d = Dispatcher(registry, "tdx")
    got: list[VendorSpecific] = []
    d.on(VendorSpecific, _keep(got, CoCoStatus.OK))
    run = _run(0x10005, SUBFUNC_UNSUPPORTED, 9)
    d.dispatch(run)
    assert dict(got[0].fields)["nr"] == 0x10005
    assert dict(got[0].fields)["data0"] == 9
    assert struct.unpack_from("<Q", run, 48)[0] == 0


def _fatal_run(regs: dict[int, int]) -> bytearray:
    run = bytearray(KVM_RUN_SIZE)
    struct.pack_into("<I", run, 8, 24)
    data = tuple(regs.get(i, 0) for i in range(16))
    KvmSystemEventExit(7, 16, data).pack_into(run, 32)
    return run


def test_fatal_error_message_and_gpa() -> None:
    """R12 code, R13 GPA (bit 63) and the message from R14, R15, RBX... by RCX mask decode."""
    msg = b"boot failed: no memory\x00"
    chunks = [int.from_bytes(msg[i : i + 8].ljust(8, b"\0"), "little") for i in range(0, 24, 8)]
    regs = {1: (1 << 14) | (1 << 15) | (1 << 3), 12: 1 << 63 | 0x10000, 13: 0x7000}
    regs |= {14: chunks[0], 15: chunks[1], 3: chunks[2]}
    t = decode_fatal_error(_fatal_run(regs))
    assert t == Termination(t.reason, 1 << 63 | 0x10000, 0x7000, "boot failed: no memory")
    assert "boot failed" in t.reason


def test_fatal_error_uses_register_number_bits() -> None:
    """Mask bits are SDM register numbers: RDX is bit 2, so only RDX's bytes are taken."""
    regs = {1: 1 << 2, 2: int.from_bytes(b"RDX-only", "little"), 14: 0x4141414141414141}
    assert fatal_message([regs.get(i, 0) for i in range(16)], regs[1]) == "RDX-only"
    assert decode_fatal_error(_fatal_run(regs)).gpa is None


def test_fatal_error_escapes_non_printables() -> None:
    """Control bytes, high bytes and backslashes are escaped as \\xNN; NUL ends the text."""
    word = int.from_bytes(b"a\x1b\\\xff\x00zzz", "little")
    assert fatal_message([0] * 14 + [word, 0], 1 << 14) == "a\\x1b\\x5c\\xff"


def test_fatal_error_handed_back_without_handler(registry: Registry) -> None:
    """Without a Termination handler a fatal error is handed back untouched."""
    d = Dispatcher(registry, "tdx")
    run = _fatal_run({12: 0x20000})
    before = bytes(run)
    assert isinstance(d.dispatch(run), Unsupported)
    got: list[Termination] = []
    d.on(Termination, _keep(got, CoCoStatus.OK))
    d.dispatch(run)
    assert got[0].code == 0x20000
    assert bytes(run) == before
