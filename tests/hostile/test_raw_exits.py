# SPDX-License-Identifier: Apache-2.0
"""Any kvm_run image of any exit coco claims, under every released kernel, with any handler.

The exit union is random bytes (boundary words first); the handler is a shipped service or
returns anything at all. After each dispatch only the fields KVM reads may have changed
(:func:`read_back`), and the kernel model's completion of that exit must accept what was
written: it raises ``KvmRunRejected`` for a ``ret`` KVM would refuse with ``-EINVAL``.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from coco_core import kernels
from coco_core.dispatch import Dispatcher
from coco_core.generic.uapi import KVM_RUN_SIZE
from coco_core.kvm.vm import GuestMemory
from coco_core.model.base import GuestCpu
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.requests import (
    CertificateRequest,
    EventNotifySetup,
    MemoryConversion,
    MsrAccess,
    QuoteRequest,
    TdvmcallInfoQuery,
    VendorSpecific,
)
from coco_core.services.memattr import MemoryAttributeTracker
from coco_core.status import CoCoStatus, Outcome
from coco_snp import plugin as snp
from coco_snp.service import CertificateService
from coco_tdx import plugin as tdx
from coco_tdx.service import EventNotifyService, TdvmcallInfoService

REG = Registry.from_plugins([snp, tdx])
RELEASED = [k.name for k in kernels.released()]
RAM = 0x20000
#: (vendor, exit reason, sub-call word at kvm_run 32/40 or None, the model call that completes it)
EXITS = [
    ("snp", 43, None, "snp.ext_guest_request"),
    ("snp", 3, 12, "snp.psc_msr"),
    ("snp", 29, None, None),
    ("snp", 30, None, None),
    ("snp", 24, None, None),
    ("snp", 39, None, None),
    ("tdx", 40, 0x10002, "tdx.get_quote"),
    ("tdx", 40, 0x10004, "tdx.setup_event_notify"),
    ("tdx", 40, 0x10000, "tdx.get_tdvmcall_info"),
    ("tdx", 40, 0x10005, "tdx.get_quote"),  # an nr nobody claims: tdx_complete_simple too
    ("tdx", 24, None, None),
]
WORD = st.one_of(
    st.sampled_from([0, 1, 0x1000, 0xFFF, 28, 11, 5, 22, (1 << 64) - 1, 1 << 63, 1 << 47]),
    st.integers(0, (1 << 64) - 1),
)
ANY_RESULT = st.one_of(
    st.none(),  # the shipped service
    st.sampled_from(list(CoCoStatus)),
    st.builds(
        Outcome,
        status=st.sampled_from(list(CoCoStatus)),
        size_needed=st.one_of(st.none(), st.integers(-1, 1 << 65)),
        vendor_code=st.one_of(st.none(), st.integers(-1, 1 << 64)),
        value=st.one_of(st.none(), st.integers(-(2**300), 2**300), st.floats()),
    ),
    st.sampled_from([0, "x", object()]),
)


def _dispatcher(vendor: str, abi: str, memory: GuestMemory, result: object) -> Dispatcher:
    d = Dispatcher(REG, vendor, abi)
    if result is not None:
        for request_type in (
            CertificateRequest,
            MemoryConversion,
            MsrAccess,
            QuoteRequest,
            EventNotifySetup,
            TdvmcallInfoQuery,
            VendorSpecific,
        ):
            d.on(request_type, lambda r, c: result)
        return d
    d.on(MemoryConversion, MemoryAttributeTracker(memory.contains).on_conversion)
    d.on(MsrAccess, lambda r, c: Outcome(CoCoStatus.OK, value=r.index))
    if vendor == "snp":
        d.on(CertificateRequest, CertificateService(memory, bytes(24)))
    else:
        EventNotifyService().register(d)
        TdvmcallInfoService(d).register()
    return d


def test_any_exit_image_with_any_handler(fuzz: Any, watched: Any) -> None:
    """Random unions of every claimed exit: read-back fields only, and values KVM accepts."""

    @given(
        st.sampled_from(RELEASED),
        st.sampled_from(EXITS),
        st.lists(WORD, min_size=32, max_size=32),
        ANY_RESULT,
    )
    def prop(
        abi: str, exit_: tuple[str, int, int | None, str | None], words: list[int], result: object
    ) -> None:
        vendor, reason, nr, call = exit_
        if reason == 43 and not kernels.has(abi, kernels.SNP_REQ_CERTS_EXIT):
            return  # Linux 6.16 has no KVM_EXIT_SNP_REQ_CERTS
        run = bytearray(KVM_RUN_SIZE)
        struct.pack_into("<I", run, 8, reason)
        struct.pack_into("<32Q", run, 32, *words)
        if nr is not None:
            struct.pack_into("<Q", run, 32 if reason == 3 else 40, nr)
        ram = bytearray(RAM)
        memory = GuestMemory.from_buffer(0, ram)
        d = _dispatcher(vendor, abi, memory, result)

        def named(img: bytes) -> tuple[int, int] | None:
            if reason == 43:
                gpa, npages = struct.unpack_from("<QQ", img, 32)
                return gpa, npages * 4096
            if reason == 40 and nr == 0x10002:
                gpa, size = struct.unpack_from("<QQ", img, 56)
                return gpa, size
            return None

        watched(d, ram, named).dispatch(run)
        if call is not None:  # the kernel's completion of this exit accepts what was written
            model = KernelModel(REG, vendor, memory, abi, run=run)
            model.calls[call].resume(model.ctx, GuestCpu())  # type: ignore[misc]

    fuzz.run(prop, ci_examples=300)
