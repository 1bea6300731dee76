# SPDX-License-Identifier: Apache-2.0
"""Property tests: hostile kvm_run images and guest values through decoders and the model."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coco_tdx.plugin
from coco_core.dispatch import Dispatcher
from coco_core.generic.uapi import KVM_RUN_SIZE
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
    VendorSpecific,
)
from coco_core.status import CoCoStatus, Outcome
from coco_tdx.complete import decode_fatal_error
from coco_tdx.ghci import TdvmcallStatus
from coco_tdx.service import QuoteService

REGISTRY = Registry.from_plugins([coco_tdx.plugin])
SHARED = 1 << 47
RAM = 64 * 1024
u64 = st.integers(0, 2**64 - 1)
statuses = st.sampled_from(list(CoCoStatus))
results = st.one_of(
    statuses,
    st.builds(
        Outcome,
        statuses,
        vendor_code=st.one_of(st.none(), u64),
        value=st.one_of(st.none(), st.integers(-(2**300), 2**300)),
    ),
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _keep(seen: list[Any], result: Any) -> Callable[[Any, Any], Any]:
    """A handler that records each request and answers ``result``."""

    def handler(request: Any, context: Any) -> Any:
        seen.append(request)
        return result

    return handler


@SETTINGS
@given(
    nr=st.one_of(st.sampled_from([0x10000, 0x10002, 0x10004]), u64),
    union=st.binary(min_size=256, max_size=256),
    result=results,
    handled=st.booleans(),
)
def test_any_tdx_image_decodes_and_completes_inside_the_union(
    nr: int, union: bytes, result: CoCoStatus | Outcome, handled: bool
) -> None:
    """Any reason-40 image with any nr dispatches without raising and writes only [48, 96)."""
    run = bytearray(b"\x5a" * KVM_RUN_SIZE)
    run[32:288] = union
    struct.pack_into("<I", run, 8, 40)
    struct.pack_into("<Q", run, 40, nr)
    before = bytes(run)
    d = Dispatcher(REGISTRY, "tdx")
    if handled:
        for t in (QuoteRequest, EventNotifySetup, TdvmcallInfoQuery, VendorSpecific):
            d.on(t, lambda r, c: result)
    d.dispatch(run)
    changed = {i for i in range(KVM_RUN_SIZE) if run[i] != before[i]}
    assert changed <= set(range(48, 96))
    if nr == 0x10000:
        assert run[56:64] == before[56:64]  # leaf is written back unchanged
    elif changed:
        assert changed <= set(range(48, 56))


@SETTINGS
@given(data=st.lists(u64, min_size=16, max_size=16), ndata=st.integers(0, 2**32 - 1))
def test_fatal_error_decode_never_raises(data: list[int], ndata: int) -> None:
    """Any register dump decodes; the message is at most 64 bytes, escaped to printable ASCII."""
    run = bytearray(KVM_RUN_SIZE)
    struct.pack_into("<II16Q", run, 32, 7, ndata, *data)
    t = decode_fatal_error(run)
    assert t.code == data[12]
    assert len(t.message.encode("latin-1").decode("unicode_escape", "replace")) <= 64
    assert all(0x20 <= ord(ch) < 0x7F for ch in t.reason + t.message)


def _guest(version: int, status: int, in_len: int, out_len: int) -> tuple[bytearray, GuestMemory]:
    ram = bytearray(RAM)
    for off in range(0, RAM, 0x1000):
        struct.pack_into("<QQII", ram, off, version, status, in_len, out_len)
    return ram, GuestMemory.from_buffer(0, ram)


class _Quick:
    def __init__(self, quote: bytes) -> None:
        self.quote = quote

    def get_quote(self, report: bytes) -> bytes:
        return self.quote


@SETTINGS
@given(
    gpa=st.one_of(st.integers(0, RAM + 0x2000), u64),
    size=st.one_of(st.integers(0, 0x6000), u64),
    shared=st.booleans(),
    version=st.sampled_from([0, 1, 1, 2, 2**64 - 1]),
    status=u64,
    in_len=st.one_of(st.integers(0, 0x6000), st.integers(0, 2**32 - 1)),
    out_len=st.integers(0, 2**32 - 1),
    quote_len=st.integers(0, 0x5000),
)
def test_get_quote_never_writes_outside_the_named_buffer(
    gpa: int,
    size: int,
    shared: bool,
    version: int,
    status: int,
    in_len: int,
    out_len: int,
    quote_len: int,
) -> None:
    """Hostile GetQuote values end in a documented R10 and only [gpa, gpa + size) may change."""
    ram, memory = _guest(version, status, in_len, out_len)
    before = bytes(ram)
    svc = QuoteService(memory, _Quick(b"\x51" * quote_len), timeout=5.0)
    d = Dispatcher(REGISTRY, "tdx")
    svc.register(d)
    model = KernelModel(REGISTRY, "tdx", memory)
    r12 = (gpa | SHARED) if shared else (gpa & ~SHARED)
    cpu = GuestCpu(regs={"r11": 0x10002, "r12": r12, "r13": size})
    view = model.call("tdx.get_quote", cpu, d)
    svc.shutdown()
    assert view.values["r10"] in {s.value for s in TdvmcallStatus}
    assert svc.in_flight == 0
    start = r12 & ~SHARED
    changed = [i for i in range(RAM) if ram[i] != before[i]]
    assert all(start <= i < start + size for i in changed)
    if changed:
        assert view.values["r10"] == TdvmcallStatus.SUCCESS


@SETTINGS
@given(
    gpa=st.one_of(st.integers(0, 1 << 30).map(lambda x: x & ~0xFFF), u64),
    size=st.one_of(st.integers(0, 12 << 20).map(lambda x: x & ~0xFFF), u64),
    answers=st.lists(statuses, min_size=1, max_size=8),
    generation=st.sampled_from(["linux-6.16", "linux-7.0", "linux-7.1", "linux-7.2"]),
    pending=st.booleans(),
)
def test_map_gpa_ranges(
    gpa: int, size: int, answers: list[CoCoStatus], generation: str, pending: bool
) -> None:
    """Any MapGPA range ends in a TDVMCALL status; chunks are <= 2 MiB and stay in the range."""
    d = Dispatcher(REGISTRY, "tdx", generation)
    it = iter(answers * 8)
    chunks: list[MemoryConversion] = []
    d.on(MemoryConversion, _keep(chunks, next(it)))
    model = KernelModel(REGISTRY, "tdx", GuestMemory.from_buffer(0, bytearray(4096)), generation)
    model.ctx.vm_state["pending_events"] = pending
    try:
        view = model.call(
            "tdx.map_gpa", GuestCpu(regs={"r11": 0x10001, "r12": gpa, "r13": size}), d
        )
    except KvmRunRejected:
        raise AssertionError("MAP_GPA_RANGE spaces only produce accepted values") from None
    assert view.values["r10"] in {s.value for s in TdvmcallStatus}
    base = gpa & ~SHARED
    for c in chunks:
        assert c.npages <= 512
        assert c.to_private == (not gpa & SHARED)
        assert base <= c.gpa
        assert c.gpa + c.size <= base + size


@SETTINGS
@given(vector=u64, result=results)
def test_setup_event_notify_any_vector(vector: int, result: CoCoStatus | Outcome) -> None:
    """Any vector either stays in the kernel (outside 32..255) or exits and completes."""
    d = Dispatcher(REGISTRY, "tdx")
    seen: list[EventNotifySetup] = []
    d.on(EventNotifySetup, _keep(seen, result))
    model = KernelModel(REGISTRY, "tdx", GuestMemory.from_buffer(0, bytearray(4096)))
    view = model.call("tdx.setup_event_notify", GuestCpu(regs={"r11": 0x10004, "r12": vector}), d)
    assert (seen == [EventNotifySetup(vector)]) == (32 <= vector <= 255)
    assert isinstance(view.values["r10"], int)


@SETTINGS
@given(
    regs=st.dictionaries(
        st.sampled_from(
            ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r12", "r13", "r14", "r15"]
        ),
        u64,
    )
)
def test_report_fatal_error_any_registers(regs: dict[str, int]) -> None:
    """Any register set reaches the VMM as a Termination carrying R12 as its code."""
    d = Dispatcher(REGISTRY, "tdx")
    got: list[Termination] = []
    d.on(Termination, _keep(got, CoCoStatus.OK))
    model = KernelModel(REGISTRY, "tdx", GuestMemory.from_buffer(0, bytearray(4096)))
    model.call("tdx.report_fatal_error", GuestCpu(regs={**regs, "r11": 0x10003}), d)
    assert got[0].code == regs.get("r12", 0)
