# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_tdx.model: KVM's side of the TDX calls, run with a Dispatcher."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest

import coco_tdx.plugin
from coco_core.dispatch import Dispatcher
from coco_core.kvm.vm import GuestMemory
from coco_core.model.base import GuestCpu, KvmRunRejected
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.requests import (
    EventNotifySetup,
    MemoryConversion,
    QuoteRequest,
    TdvmcallInfoQuery,
    Termination,
)
from coco_core.status import CoCoStatus, Outcome
from coco_tdx.complete import TdvmcallInfo
from coco_tdx.ghci import TdvmcallStatus as S
from coco_tdx.uapi import TdvmcallLeaf

SHARED = 1 << 47
MiB = 1 << 20


def _keep(seen: list[Any], result: Any) -> Callable[[Any, Any], Any]:
    """A handler that records each request and answers ``result``."""

    def handler(request: Any, context: Any) -> Any:
        seen.append(request)
        return result

    return handler


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The core plus the TDX plugin."""
    return Registry.from_plugins([coco_tdx.plugin])


def _model(registry: Registry, generation: str = "linux-7.2") -> KernelModel:
    return KernelModel(
        registry, "tdx", GuestMemory.from_buffer(0, bytearray(64 * 1024)), generation
    )


def _cpu(leaf: int, r12: int = 0, r13: int = 0, **regs: int) -> GuestCpu:
    return GuestCpu(regs={"r10": 0, "r11": leaf, "r12": r12, "r13": r13, **regs})


def test_get_quote_accepted(registry: Registry) -> None:
    """GetQuote with a shared GPA exits with the bit stripped; an OK answer gives R10 SUCCESS."""
    m = _model(registry)
    d = Dispatcher(registry, "tdx")
    seen: list[QuoteRequest] = []
    d.on(QuoteRequest, _keep(seen, CoCoStatus.OK))
    cpu = _cpu(TdvmcallLeaf.GET_QUOTE, SHARED | 0x2000, 0x1000)
    view = m.call("tdx.get_quote", cpu, d)
    assert seen == [QuoteRequest(0x2000, 0x1000)]
    assert view.values["r10"] == S.SUCCESS == cpu.regs["r10"]


def test_get_quote_exit_image_is_byte_exact(registry: Registry) -> None:
    """The exit image has flags 0, nr GET_QUOTE, ret SUBFUNC_UNSUPPORTED, gpa and size."""
    m = _model(registry)
    d = Dispatcher(registry, "tdx")
    images: list[bytes] = []

    def snapshot(request: QuoteRequest, context: object) -> CoCoStatus:
        images.append(bytes(m.ctx.run[:288]))
        return CoCoStatus.OK

    d.on(QuoteRequest, snapshot)
    m.call("tdx.get_quote", _cpu(TdvmcallLeaf.GET_QUOTE, SHARED | 0x3000, 0x2000), d)
    img = images[0]
    assert struct.unpack_from("<I", img, 8)[0] == 40
    assert struct.unpack_from("<5Q", img, 32) == (0, 0x10002, 1 << 63 | 3, 0x3000, 0x2000)
    assert img[72:288] == bytes(216)


def test_get_quote_private_gpa_refused_in_kernel(registry: Registry) -> None:
    """A private GetQuote GPA is answered INVALID_OPERAND by KVM with no exit."""
    m = _model(registry)
    d = Dispatcher(registry, "tdx")
    d.on(QuoteRequest, lambda r, c: pytest.fail("no exit expected"))
    view = m.call("tdx.get_quote", _cpu(TdvmcallLeaf.GET_QUOTE, 0x2000, 0x1000), d)
    assert view.values["r10"] == S.INVALID_OPERAND


def test_unhandled_get_quote_leaves_subfunc_unsupported(registry: Registry) -> None:
    """A VMM without a GetQuote handler leaves the pre-filled SUBFUNC_UNSUPPORTED in R10."""
    view = _model(registry).call(
        "tdx.get_quote", _cpu(TdvmcallLeaf.GET_QUOTE, SHARED, 0x1000), Dispatcher(registry, "tdx")
    )
    assert view.values["r10"] == S.SUBFUNC_UNSUPPORTED


def test_get_tdvmcall_info_leaf0_in_kernel(registry: Registry) -> None:
    """Leaf 0 is answered by KVM: SUCCESS and R11..R14 zero, no exit."""
    d = Dispatcher(registry, "tdx")
    d.on(TdvmcallInfoQuery, lambda r, c: pytest.fail("no exit expected"))
    view = _model(registry).call(
        "tdx.get_tdvmcall_info", _cpu(TdvmcallLeaf.GET_TD_VM_CALL_INFO, 0, r14=9), d
    )
    assert dict(view.values) == {"r10": 0, "r11": 0, "r12": 0, "r13": 0, "r14": 0}


def test_get_tdvmcall_info_leaf1_exits(registry: Registry) -> None:
    """Leaf 1 exits; the handler's bitmaps reach R11..R14 with R10 SUCCESS."""
    d = Dispatcher(registry, "tdx")
    d.on(TdvmcallInfoQuery, lambda r, c: Outcome(CoCoStatus.OK, value=TdvmcallInfo(2).to_value()))
    cpu = _cpu(TdvmcallLeaf.GET_TD_VM_CALL_INFO, 1)
    view = _model(registry).call("tdx.get_tdvmcall_info", cpu, d)
    assert dict(view.values) == {"r10": 0, "r11": 2, "r12": 0, "r13": 0, "r14": 0}


def test_get_tdvmcall_info_leaf1_unhandled_keeps_prefill(registry: Registry) -> None:
    """Leaf 1 with no handler gets the default UNSUPPORTED status and zero outputs."""
    view = _model(registry).call(
        "tdx.get_tdvmcall_info", _cpu(0x10000, 1), Dispatcher(registry, "tdx")
    )
    assert view.values["r10"] == S.SUBFUNC_UNSUPPORTED
    assert view.values["r11"] == 0


def test_get_tdvmcall_info_other_leaf_invalid(registry: Registry) -> None:
    """Any leaf but 0 and 1 is INVALID_OPERAND from KVM."""
    view = _model(registry).call(
        "tdx.get_tdvmcall_info", _cpu(0x10000, 2), Dispatcher(registry, "tdx")
    )
    assert view.values["r10"] == S.INVALID_OPERAND


@pytest.mark.parametrize(
    ("vector", "expected"), [(31, S.INVALID_OPERAND), (256, S.INVALID_OPERAND)]
)
def test_setup_event_notify_vector_checked_by_kvm(
    registry: Registry, vector: int, expected: int
) -> None:
    """Vectors outside 32..255 never leave the kernel."""
    view = _model(registry).call(
        "tdx.setup_event_notify", _cpu(0x10004, vector), Dispatcher(registry, "tdx")
    )
    assert view.values["r10"] == expected


def test_setup_event_notify_round_trip(registry: Registry) -> None:
    """A valid vector exits and the handler's OK becomes R10 SUCCESS."""
    d = Dispatcher(registry, "tdx")
    d.on(EventNotifySetup, lambda r, c: CoCoStatus.OK if r.vector == 0xF3 else CoCoStatus.ERROR)
    view = _model(registry).call("tdx.setup_event_notify", _cpu(0x10004, 0xF3), d)
    assert view.values["r10"] == S.SUCCESS


def test_map_gpa_5mib_makes_three_chunk_exits(registry: Registry) -> None:
    """A 5 MiB private→shared MapGPA raises 2 MiB, 2 MiB and 1 MiB hypercall exits."""
    d = Dispatcher(registry, "tdx")
    got: list[MemoryConversion] = []
    d.on(MemoryConversion, _keep(got, CoCoStatus.OK))
    m = _model(registry)
    seen_flags: list[tuple[int, int]] = []
    hook = lambda name, res: seen_flags.append(struct.unpack_from("<QQ", m.ctx.run, 88))  # noqa: E731
    view = m.call("tdx.map_gpa", _cpu(0x10001, SHARED | 0x400000, 5 * MiB), d, on_exit=hook)
    assert [(c.gpa, c.npages, c.to_private) for c in got] == [
        (0x400000, 512, False),
        (0x600000, 512, False),
        (0x800000, 256, False),
    ]
    assert view.values["r10"] == S.SUCCESS
    assert seen_flags == [(0, 1)] * 3  # ret written 0 by the completion, flags LONG_MODE


def test_map_gpa_private_sets_encrypted(registry: Registry) -> None:
    """A shared→private MapGPA (no shared bit) asks for KVM_MAP_GPA_RANGE_ENCRYPTED."""
    d = Dispatcher(registry, "tdx")
    got: list[MemoryConversion] = []
    d.on(MemoryConversion, _keep(got, CoCoStatus.OK))
    _model(registry).call("tdx.map_gpa", _cpu(0x10001, 0x1000, 0x1000), d)
    assert got == [MemoryConversion(0x1000, 1, True, 4096)]


@pytest.mark.parametrize(
    ("gpa", "size", "status"),
    [
        (0x1001, 0x1000, S.ALIGN_ERROR),
        (0x1000, 0x1001, S.ALIGN_ERROR),
        (0x1000, 0, S.INVALID_OPERAND),
        (SHARED - 0x1000, 0x2000, S.INVALID_OPERAND),  # crosses into the shared half
        (2**64 - 0x1000, 0x2000, S.INVALID_OPERAND),  # wraps
        (SHARED << 1, 0x1000, S.INVALID_OPERAND),  # not a legal GPA
    ],
)
def test_map_gpa_validation_in_kernel(registry: Registry, gpa: int, size: int, status: int) -> None:
    """KVM's MapGPA checks answer without an exit and put the start GPA in R11."""
    d = Dispatcher(registry, "tdx")
    d.on(MemoryConversion, lambda r, c: pytest.fail("no exit expected"))
    view = _model(registry).call("tdx.map_gpa", _cpu(0x10001, gpa, size), d)
    assert (view.values["r10"], view.values["r11"]) == (status, gpa)


def test_map_gpa_retry_with_progress_on_pending_events(registry: Registry) -> None:
    """With events pending KVM stops after the first chunk: RETRY with R11 = next GPA."""
    d = Dispatcher(registry, "tdx")
    d.on(MemoryConversion, lambda r, c: CoCoStatus.OK)
    m = _model(registry)
    m.ctx.vm_state["pending_events"] = True
    view = m.call("tdx.map_gpa", _cpu(0x10001, 0x200000, 4 * MiB), d)
    assert (view.values["r10"], view.values["r11"]) == (S.RETRY, 0x400000)


@pytest.mark.parametrize(
    ("generation", "status", "r10"),
    [
        ("linux-6.16", CoCoStatus.RETRY, S.INVALID_OPERAND),
        ("linux-7.1", CoCoStatus.INVALID, S.INVALID_OPERAND),
        ("linux-7.2", CoCoStatus.RETRY, S.RETRY),
        ("linux-7.2", CoCoStatus.INVALID, S.INVALID_OPERAND),
    ],
)
def test_map_gpa_error_rules_per_generation(
    registry: Registry, generation: str, status: CoCoStatus, r10: int
) -> None:
    """Errors on the second chunk give the generation's R10 with R11 = that chunk's GPA."""
    d = Dispatcher(registry, "tdx", generation)
    answers = iter([CoCoStatus.OK, status])
    d.on(MemoryConversion, lambda r, c: next(answers))
    view = _model(registry, generation).call("tdx.map_gpa", _cpu(0x10001, 0, 4 * MiB), d)
    assert (view.values["r10"], view.values["r11"]) == (r10, 0x200000)


def test_map_gpa_rejected_ret_on_72(registry: Registry) -> None:
    """On linux-7.2 a hypercall.ret of 5 (EIO) makes KVM_RUN fail: KvmRunRejected."""
    d = Dispatcher(registry, "tdx")

    def bad_ret(name: str, result: object) -> None:
        m.ctx.run[88:96] = (5).to_bytes(8, "little")  # a VMM writing EIO by hand

    m = _model(registry)
    with pytest.raises(KvmRunRejected, match="0x5"):
        m.call("tdx.map_gpa", _cpu(0x10001, 0, 0x1000), d, on_exit=bad_ret)


def test_map_gpa_legacy_accepts_any_ret(registry: Registry) -> None:
    """On linux-7.1 the same ret of 5 is just INVALID_OPERAND."""
    d = Dispatcher(registry, "tdx", "linux-7.1")
    m = _model(registry, "linux-7.1")
    hook = lambda name, res: m.ctx.run.__setitem__(slice(88, 96), (5).to_bytes(8, "little"))  # noqa: E731
    view = m.call("tdx.map_gpa", _cpu(0x10001, 0, 0x1000), d, on_exit=hook)
    assert view.values["r10"] == S.INVALID_OPERAND


def test_map_gpa_without_exit_cap(registry: Registry) -> None:
    """Without KVM_CAP_EXIT_HYPERCALL KVM answers SUBFUNC_UNSUPPORTED with R11 = start."""
    m = _model(registry)
    m.ctx.vm_state["exit_hypercall_map_gpa"] = False
    view = m.call("tdx.map_gpa", _cpu(0x10001, 0x1000, 0x1000), Dispatcher(registry, "tdx"))
    assert (view.values["r10"], view.values["r11"]) == (S.SUBFUNC_UNSUPPORTED, 0x1000)


def test_report_fatal_error_decodes_message(registry: Registry) -> None:
    """ReportFatalError dumps the GPRs in SDM order and decodes to a Termination."""
    d = Dispatcher(registry, "tdx")
    got: list[Termination] = []
    d.on(Termination, _keep(got, CoCoStatus.OK))
    msg = b"TD panic: oops!\x00"
    cpu = _cpu(
        0x10003,
        r12=1 << 63,
        r13=0x9000,
        rcx=(1 << 14) | (1 << 15),
        r14=int.from_bytes(msg[:8], "little"),
        r15=int.from_bytes(msg[8:], "little"),
        rsp=0xDEAD,
    )
    m = _model(registry)
    view = m.call("tdx.report_fatal_error", cpu, d)
    assert view.values == {}
    assert got[0].message == "TD panic: oops!"
    assert (got[0].code, got[0].gpa) == (1 << 63, 0x9000)
    data = struct.unpack_from("<II16Q", m.ctx.run, 32)
    assert data[:2] == (7, 16)
    assert data[2 + 4] == 0  # RSP is reported as 0
    assert data[2 + 11] == 0x10003  # R11 = leaf


# -- what tdx.c says, rule by rule (kvm-x86 @ 09c6f74e) ----------------------------------------


def test_report_fatal_error_data0_is_vp_enter_ret(registry: Registry) -> None:
    """``regs[index++] = tdx->vp_enter_ret;``: data[0] is EXIT_REASON_TDCALL (77), not RAX."""
    m = _model(registry)
    cpu = _cpu(TdvmcallLeaf.REPORT_FATAL_ERROR, 0x1234, rax=0xDEAD, rcx=0xC, rsp=0x99, rbp=0x98)
    m.calls["tdx.report_fatal_error"].enter(m.ctx, cpu)
    data = struct.unpack_from("<16Q", m.ctx.run, 40)
    assert (data[0], data[1], data[4], data[5], data[12]) == (77, 0xC, 0, 0, 0x1234)


def test_tdx_exits_write_only_their_fields(registry: Registry) -> None:
    """tdx_get_quote sets flags, nr, get_quote.{ret, gpa, size}: unknown.data[2..4] stay."""
    m = _model(registry)
    run = m.ctx.run
    run[32:288] = b"\xcc" * 256
    m.calls["tdx.get_quote"].enter(m.ctx, _cpu(TdvmcallLeaf.GET_QUOTE, SHARED | 0x2000, 0x1000))
    assert struct.unpack_from("<5Q", run, 32) == (0, 0x10002, S.SUBFUNC_UNSUPPORTED, 0x2000, 0x1000)
    assert bytes(run[72:288]) == b"\xcc" * 216


def test_map_gpa_exit_leaves_upper_args(registry: Registry) -> None:
    """__tdx_map_gpa sets nr, ret, args[0..2] and flags: args[3..5] keep what they held."""
    m = _model(registry)
    run = m.ctx.run
    run[32:288] = b"\xcc" * 256
    m.calls["tdx.map_gpa"].enter(m.ctx, _cpu(TdvmcallLeaf.MAP_GPA, SHARED | 0x200000, 0x1000))
    assert struct.unpack_from("<4Q", run, 32) == (12, 0x200000, 1, 0)
    assert struct.unpack_from("<QQ", run, 88) == (0, 1)
    assert bytes(run[64:88]) == b"\xcc" * 24


@pytest.mark.parametrize("ret", [0, 22, 11, 99])
def test_pv_map_gpa_range_ret_reaches_r10_verbatim(registry: Registry, ret: int) -> None:
    """tdx.c ``complete_hypercall_exit``: ``tdvmcall_set_return_code(vcpu, run->hypercall.ret)``."""
    m = _model(registry)  # linux-7.2: the MapGPA path would refuse 99 and map 22 and 11
    cpu = GuestCpu(regs={"r10": 12, "r11": 0x200000, "r12": 1, "r13": 0x10})
    call = m.calls["tdx.kvm_hypercall"]
    step = call.enter(m.ctx, cpu)
    assert getattr(step, "exit_reason", None) == 3
    assert struct.unpack_from("<4Q", m.ctx.run, 32) == (12, 0x200000, 1, 0x10)
    struct.pack_into("<Q", m.ctx.run, 88, ret)
    assert call.resume is not None
    assert call.resume(m.ctx, cpu).values == {"r10": ret}


def test_pv_hypercall_refusals_in_kernel(registry: Registry) -> None:
    """``____kvm_emulate_hypercall``: misaligned gpa is -KVM_EINVAL, another number -KVM_ENOSYS."""
    m = _model(registry)
    d = Dispatcher(registry, "tdx")
    misaligned = GuestCpu(regs={"r10": 12, "r11": 0x200001, "r12": 1, "r13": 0})
    assert m.call("tdx.kvm_hypercall", misaligned, d).values == {"r10": (1 << 64) - 22}
    other = GuestCpu(regs={"r10": 5, "r11": 0, "r12": 0, "r13": 0})
    assert m.call("tdx.kvm_hypercall", other, d).values == {"r10": (1 << 64) - 1000}


def test_doorbell_routes_r10_nonzero_to_the_pv_hypercall() -> None:
    """``case EXIT_REASON_VMCALL: return tdx_emulate_vmcall(vcpu);`` for R10 != 0."""
    import coco_tdx.doorbell as doorbell

    assert doorbell.route(GuestCpu(regs={"r10": 12, "r11": 0x10001})) == "tdx.kvm_hypercall"
    assert doorbell.route(GuestCpu(regs={"r10": 0, "r11": 0x10001})) == "tdx.map_gpa"
