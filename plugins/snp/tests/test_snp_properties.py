# SPDX-License-Identifier: Apache-2.0
"""Hostile-guest properties: any guest value, any kvm_run image, no stray write, no crash."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coco_core import kernels
from coco_core.dispatch import Dispatcher
from coco_core.generic.uapi import KVM_RUN_SIZE
from coco_core.kvm.vm import GuestMemory
from coco_core.model.base import GuestCpu, KvmRunRejected
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.requests import CertificateRequest, MemoryConversion, Termination
from coco_core.status import CoCoStatus
from coco_snp import complete, plugin
from coco_snp.certs.table import CertTableKind, build_cert_table
from coco_snp.model import REQ_CERTS_ENABLED
from coco_snp.service import CertificateService

REG = Registry.from_plugins([plugin])
ABIS = [*(k.name for k in kernels.released()), *plugin.PROPOSALS]
RAM = 0x10000
# A two-page table so that both "too small" and "fits" happen.
TABLE = build_cert_table([(CertTableKind.VCEK, b"\x30" * 5000), (CertTableKind.ARK, b"\x31" * 100)])
u64 = st.integers(0, 2**64 - 1)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _outside(buf: bytearray, lo: int, hi: int) -> bytes:
    return bytes(buf[:lo]) + bytes(buf[hi:])


def _dispatcher(abi: str, mem: GuestMemory) -> Dispatcher:
    d = Dispatcher(REG, "snp", abi)
    d.on(CertificateRequest, CertificateService(mem, TABLE))
    d.on(Termination, lambda r, c: CoCoStatus.OK)
    d.on(MemoryConversion, lambda r, c: CoCoStatus.OK)
    return d


@SETTINGS
@given(abi=st.sampled_from(ABIS), data=st.data())
def test_random_images_of_every_claimed_exit(abi: str, data: st.DataObject) -> None:
    """Any union bytes for a claimed exit: no exception; writes only in union and named range."""
    buf = bytearray(RAM)
    mem = GuestMemory.from_buffer(0, buf)
    d = _dispatcher(abi, mem)
    dec = data.draw(st.sampled_from(d.claims()))
    union = bytearray(data.draw(st.binary(min_size=256, max_size=256)))
    if dec.discriminator is not None:
        where = REG.abi(abi).discriminators[dec.reason]
        struct.pack_into(where.fmt, union, where.offset - 32, dec.discriminator)
    run = bytearray(KVM_RUN_SIZE)
    run[8:12] = struct.pack("<I", dec.reason)
    run[32:288] = union
    before_run = _outside(run, 32, 288)
    request = dec.decode(memoryview(run))
    d.dispatch(run)
    assert _outside(run, 32, 288) == before_run
    if isinstance(request, CertificateRequest) and 0 <= request.gpa < RAM:
        lo, hi = request.gpa, min(RAM, request.gpa + request.npages * 4096)
        assert _outside(buf, lo, hi) == bytes(RAM - (hi - lo))
    else:
        assert not any(buf)


@SETTINGS
@given(
    generation=st.sampled_from([g for g in ABIS if g != "linux-6.16"]),
    rax=u64,
    rbx=st.one_of(st.integers(0, 4), u64),
    enabled=st.booleans(),
)
def test_ext_guest_request_any_registers(
    generation: str, rax: int, rbx: int, enabled: bool
) -> None:
    """Any RAX/RBX: the call ends without exception and writes only inside [RAX, RAX+RBX pages)."""
    buf = bytearray(RAM)
    mem = GuestMemory.from_buffer(0, buf)
    model = KernelModel(REG, "snp", mem, generation)
    model.ctx.vm_state[REQ_CERTS_ENABLED] = enabled
    view = model.call(
        "snp.ext_guest_request",
        GuestCpu(regs={"rax": rax, "rbx": rbx}),
        _dispatcher(generation, mem),
    )
    assert "sw_exitinfo2" in view.values
    if rax < RAM:
        hi = min(RAM, rax + rbx * 4096)
        assert _outside(buf, rax, hi) == bytes(RAM - (hi - rax))
    else:
        assert not any(buf)


@SETTINGS
@given(
    generation=st.sampled_from(["linux-6.16", "linux-7.1", "linux-7.2", "kvm-exit-coco-v1"]),
    cur=st.integers(0, 300),
    end=st.integers(0, 300),
    entries=st.lists(u64, min_size=0, max_size=12),
    ret=st.sampled_from([0, 11, 22, 5, 99]),
)
def test_psc_any_descriptor(
    generation: str, cur: int, end: int, entries: list[int], ret: int
) -> None:
    """Any PSC header, entries, ret: ends (or KvmRunRejected on 7.2); writes stay in the table."""
    buf = bytearray(RAM)
    desc = 0x8000
    struct.pack_into(f"<HHI{len(entries)}Q", buf, desc, cur, end, 0, *entries)
    snapshot = bytes(buf)
    mem = GuestMemory.from_buffer(0, buf)
    model = KernelModel(REG, "snp", mem, generation)
    d = Dispatcher(REG, "snp", generation)
    d.on(MemoryConversion, lambda r, c: CoCoStatus.OK)

    def hook(name: str, result: object) -> None:
        struct.pack_into("<Q", model.ctx.run, 88, ret)

    try:
        view = model.call("snp.psc", GuestCpu(ghcb={"sw_scratch": desc}), d, on_exit=hook)
        assert "sw_exitinfo2" in view.values
    except KvmRunRejected:
        assert generation == "linux-7.2"
        assert ret not in (0, 11, 22)
    hi = desc + 8 + 8 * min(end + 1, 253)
    assert _outside(buf, desc, hi) == _outside(bytearray(snapshot), desc, hi)


@SETTINGS
@given(msr=u64, generation=st.sampled_from(["linux-7.1", "linux-7.2"]))
def test_psc_msr_any_value(msr: int, generation: str) -> None:
    """Any GHCB MSR value gives a PSC response and no guest memory write."""
    buf = bytearray(RAM)
    mem = GuestMemory.from_buffer(0, buf)
    model = KernelModel(REG, "snp", mem, generation)
    view = model.call("snp.psc_msr", GuestCpu(ghcb={"msr": msr}), _dispatcher(generation, mem))
    assert view.values["msr"] in (0x15, (1 << 63) | 0x15)
    assert not any(buf)


@SETTINGS
@given(value=u64, page=st.binary(min_size=8, max_size=8), gpa=st.integers(-(2**64), 2**64))
def test_termination_values(value: int, page: bytes, gpa: int) -> None:
    """Any SEV_TERM data[0] and any GHCB GPA decode to a Termination without raising."""
    t = complete.decode_sev_term(value)
    assert isinstance(t, Termination)
    assert t.reason
    buf = bytearray(RAM)
    buf[0x1398:0x13A0] = page
    got = complete.termination_from_ghcb(GuestMemory.from_buffer(0, buf), gpa)
    assert isinstance(got, Termination)
    assert got.gpa == gpa
