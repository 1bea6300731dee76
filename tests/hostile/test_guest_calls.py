# SPDX-License-Identifier: Apache-2.0
"""A hostile guest (and a hostile handler) through the kernel model and the shipped services.

Each property plays guest-level calls with boundary-first register values through
:class:`~coco_core.model.kernel.KernelModel` into a :class:`Watched` dispatcher, for every
released kernel that has the call. The model raising ``KvmRunRejected`` means coco wrote a
value the kernel rejects; ``Watched`` checks the kvm_run fields and the guest memory each
exit changed (tests/hostile/conftest.py).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from coco_core import kernels
from coco_core.dispatch import Dispatcher
from coco_core.kvm.vm import GuestMemory
from coco_core.model.base import GuestCpu
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.requests import (
    CertificateRequest,
    EventNotifySetup,
    MemoryConversion,
    TdvmcallInfoQuery,
)
from coco_core.services.memattr import MemoryAttributeTracker
from coco_core.status import CoCoStatus, Outcome
from coco_snp import plugin as snp
from coco_snp.certs.store import CertificateStore
from coco_snp.model import REQ_CERTS_ENABLED
from coco_snp.service import CertificateService, table_from_store
from coco_tdx import plugin as tdx
from coco_tdx.service import EventNotifyService, TdvmcallInfoService

REG = Registry.from_plugins([snp, tdx])
RAM = 0x40000  # 256 KiB of guest RAM at guest-physical 0
PAGE = 4096
TESTDATA = Path(__file__).resolve().parents[2] / "testdata" / "snp"
RELEASED = [k.name for k in kernels.released()]
WITH_REQ_CERTS = [n for n in RELEASED if kernels.has(n, kernels.SNP_REQ_CERTS_EXIT)]


def _table() -> bytes:
    store = CertificateStore()
    store.load_paths(
        [
            TESTDATA / "reports" / "milan_v2_virtee_vcek.der",
            TESTDATA / "certs" / "ask_ark_milan.pem",
        ]
    )
    return table_from_store(store)


TABLE = _table()  # 3 certificates: 2 pages

#: what a hostile handler returns: statuses, Outcomes with odd fields, and non-answers
RESULTS = st.one_of(
    st.sampled_from(list(CoCoStatus)),
    st.builds(
        Outcome,
        status=st.sampled_from(list(CoCoStatus)),
        size_needed=st.one_of(st.none(), st.integers(-2, 5), st.just(1 << 64), st.floats()),
        vendor_code=st.one_of(
            st.none(), st.sampled_from([0, 5, 11, 22, 28, 1 << 63]), st.integers()
        ),
        value=st.one_of(st.none(), st.integers(-(2**70), 2**70)),
    ),
    st.sampled_from([None, 0, "ok", 1.5, object()]),
)


def _req_certs_range(run: bytes) -> tuple[int, int] | None:
    if int.from_bytes(run[8:12], "little") != 43:
        return None
    gpa, npages = struct.unpack_from("<QQ", run, 32)
    return gpa, npages * PAGE


def _model(vendor: str, generation: str) -> tuple[KernelModel, Dispatcher, bytearray, GuestMemory]:
    ram = bytearray(RAM)
    memory = GuestMemory.from_buffer(0, ram)
    return (
        KernelModel(REG, vendor, memory, generation),
        Dispatcher(REG, vendor, generation),
        ram,
        memory,
    )


def test_certificate_requests_from_a_hostile_guest(fuzz: Any, edges: Any, watched: Any) -> None:
    """Any RAX/RBX pair: the service answers within the buffer, in a ret KVM accepts."""

    @given(
        st.sampled_from(WITH_REQ_CERTS),
        edges(PAGE, RAM - PAGE, RAM, RAM - 2 * PAGE),
        edges(2, 3, RAM // PAGE),
        st.booleans(),
    )
    def prop(generation: str, rax: int, rbx: int, hostile: bool) -> None:
        model, d, ram, memory = _model("snp", generation)
        model.ctx.vm_state[REQ_CERTS_ENABLED] = True
        service = CertificateService(memory, TABLE)
        d.on(CertificateRequest, (lambda r, c: CoCoStatus.RETRY) if hostile else service)
        w = watched(d, ram, _req_certs_range)
        model.call("snp.ext_guest_request", GuestCpu(regs={"rax": rax, "rbx": rbx}), w)

    fuzz.run(prop)


def test_certificate_requests_with_a_hostile_handler(fuzz: Any, watched: Any) -> None:
    """Whatever the handler returns, KVM accepts the ret and nothing outside ret/npages changes."""

    @given(st.sampled_from(WITH_REQ_CERTS), RESULTS, st.integers(0, 4))
    def prop(generation: str, result: object, rbx: int) -> None:
        model, d, ram, _ = _model("snp", generation)
        model.ctx.vm_state[REQ_CERTS_ENABLED] = True
        d.on(CertificateRequest, lambda r, c: result)
        w = watched(d, ram, _req_certs_range)
        view = model.call("snp.ext_guest_request", GuestCpu(regs={"rax": 0x8000, "rbx": rbx}), w)
        assert w.exits == 1
        assert "sw_exitinfo2" in view.values

    fuzz.run(prop)


def test_page_state_changes_from_a_hostile_guest(fuzz: Any, edges: Any, watched: Any) -> None:
    """GHCB MSR PSC requests and GHCB PSC descriptors of any shape end in a ret KVM accepts."""

    @given(
        st.sampled_from(RELEASED),
        edges(0x014, 0x014 | 1 << 52, 0x014 | 2 << 52 | (RAM // PAGE - 1) << 12),
        st.integers(0, 4),
        st.lists(edges(1 << 52, 2 << 52, 1 << 56, (RAM // PAGE) << 12), max_size=6),
        st.one_of(st.none(), RESULTS),
    )
    def prop(
        generation: str, msr: int, end: int, entries: list[int], result: object | None
    ) -> None:
        model, d, ram, memory = _model("snp", generation)
        tracker = MemoryAttributeTracker(memory.contains)
        d.on(MemoryConversion, tracker.on_conversion if result is None else (lambda r, c: result))
        w = watched(d, ram, lambda run: None)
        model.call("snp.psc_msr", GuestCpu(ghcb={"msr": msr}), w)
        desc = 0x1000
        struct.pack_into("<HHI", ram, desc, 0, end, 0)
        for i, e in enumerate(entries):
            struct.pack_into("<Q", ram, desc + 8 + 8 * i, e)
        model.call("snp.psc", GuestCpu(ghcb={"sw_scratch": desc}), w)

    fuzz.run(prop)


def test_tdx_calls_from_a_hostile_guest(fuzz: Any, edges: Any, watched: Any) -> None:
    """MapGPA, SetupEventNotifyInterrupt and GetTdVmCallInfo with any registers and handler."""
    shared = 1 << 47

    @given(
        st.sampled_from(RELEASED),
        edges(shared, shared + RAM - PAGE, RAM, 2 << 20),
        # a MapGPA exits once per 2 MiB: sizes up to 8 MiB, and the wrapping edges near 2^64
        st.one_of(
            st.sampled_from([0, 1, PAGE - 1, PAGE, RAM, 2 << 20, (2 << 20) + PAGE, 8 << 20]),
            st.sampled_from([(1 << 64) - 1, (1 << 64) - PAGE, 1 << 63]),
            st.integers(0, 8 << 20),
        ),
        edges(31, 32, 255, 256),
        st.sampled_from([0, 1, 2, (1 << 64) - 1]),
        st.booleans(),
        st.one_of(st.none(), RESULTS),
    )
    def prop(
        generation: str,
        gpa: int,
        size: int,
        vector: int,
        leaf: int,
        pending: bool,
        result: object | None,
    ) -> None:
        model, d, ram, memory = _model("tdx", generation)
        model.ctx.vm_state["pending_events"] = pending
        tracker = MemoryAttributeTracker(memory.contains)
        info = TdvmcallInfoService(d)
        if result is None:
            d.on(MemoryConversion, tracker.on_conversion)
            EventNotifyService().register(d)
            info.register()
        else:
            for request_type in (MemoryConversion, EventNotifySetup, TdvmcallInfoQuery):
                d.on(request_type, lambda r, c: result)
        w = watched(d, ram, lambda run: None)
        model.call("tdx.map_gpa", GuestCpu(regs={"r11": 0x10001, "r12": gpa, "r13": size}), w)
        model.call("tdx.setup_event_notify", GuestCpu(regs={"r12": vector}), w)
        model.call("tdx.get_tdvmcall_info", GuestCpu(regs={"r12": leaf}), w)

    fuzz.run(prop)
