# SPDX-License-Identifier: Apache-2.0
"""Hostile-guest properties: any guest value, any kvm_run image, no stray write, no crash."""

from __future__ import annotations

import errno
import struct

import pytest
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
    """Any RAX/RBX: an answer, or -EIO for an empty table outside RAM; writes stay in the buffer."""
    buf = bytearray(RAM)
    mem = GuestMemory.from_buffer(0, buf)
    model = KernelModel(REG, "snp", mem, generation)
    model.ctx.vm_state[REQ_CERTS_ENABLED] = enabled
    no_exit = not enabled or generation == "linux-6.16"
    cpu = GuestCpu(regs={"rax": rax, "rbx": rbx})
    # kvm_clear_guest(kvm, data_gpa, 24) fails outside RAM: -EIO (v1 3/5 answered GENERIC)
    if no_exit and rbx and not rax % 4096 and rax + 24 > RAM and generation != "kvm-exit-coco-v1":
        with pytest.raises(KvmRunRejected) as err:
            model.call("snp.ext_guest_request", cpu, _dispatcher(generation, mem))
        assert err.value.errno == errno.EIO
        assert not any(buf)
        return
    view = model.call("snp.ext_guest_request", cpu, _dispatcher(generation, mem))
    assert "sw_exitinfo2" in view.values
    if rax < RAM:
        hi = min(RAM, rax + rbx * 4096)
        assert _outside(buf, rax, hi) == bytes(RAM - (hi - rax))
    else:
        assert not any(buf)


GHCB = 0x8000  # the GHCB page; the descriptor sits at the start of its shared buffer
DESC = GHCB + 0x800
_SIZE = {False: 1, True: 512}  # 4 KiB pages per entry (snp_do_psc: "huge ? 512 : 1")


def _entries(draw: st.DrawFn, n: int) -> list[int]:
    """``n`` PSC entries, boundary values first: done, partly done, misaligned, op 0..3.

    An entry may follow the previous one (same op and size, next gfn) or follow it the way
    snp_do_psc batches after a partly done entry (a 4K entry at gfn + remaining pages).
    """
    out: list[int] = []
    prev = (0, 0, 1, False)  # gfn, cur_page, op, huge
    for _ in range(n):
        link = draw(st.sampled_from(["free", "adjacent", "after-partial"]))
        if link == "adjacent":
            huge, op, cur = prev[3], prev[2], 0
            gfn = prev[0] + _SIZE[huge]
        elif link == "after-partial":
            huge, op, cur = False, prev[2], 0
            gfn = prev[0] + _SIZE[prev[3]] - prev[1]
        else:  # a fresh entry: to do, partly done, done, or invalid, at the bounds
            huge = draw(st.booleans())
            size = _SIZE[huge]
            kind = draw(
                st.sampled_from(["todo", "todo", "partial", "done", "bad-cur", "bad-gfn", "any"])
            )
            gfn = draw(st.integers(0, ((1 << 40) - 1) // size)) * size
            cur = {"todo": 0, "done": size, "bad-cur": size + 1}.get(kind, 0)
            if kind == "partial" and huge:
                cur = draw(st.sampled_from([1, size - 1]) | st.integers(1, size - 1))
            elif kind == "bad-gfn" and huge:
                gfn += draw(st.sampled_from([1, size - 1]))
            elif kind == "any":
                gfn = draw(st.integers(0, (1 << 40) - 1))
                cur = draw(st.integers(0, 0xFFF))
            op = draw(st.sampled_from([1, 2, 1, 2, 1, 2, 0, 3, 7, 15]))
        gfn &= (1 << 40) - 1
        prev = (gfn, cur & 0xFFF, op, huge)
        out.append((cur & 0xFFF) | (gfn << 12) | (op << 52) | (int(huge) << 56))
    return out


@st.composite
def _descriptors(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """``(cur_entry, end_entry, entries)``; up to 14 drawn entries, then zero entries to 252."""
    end = draw(st.sampled_from([0, 1, 5, 252, 253, 254, 0xFFFF]) | st.integers(0, 12))
    cur = draw(st.sampled_from([0, 0, 0, 1, end, end + 1]))
    drawn = _entries(draw, min(end + 1, 14))
    return cur & 0xFFFF, end, drawn + [0] * (min(end, 252) + 1 - len(drawn))


def _expected(cur: int, end: int, entries: list[int]) -> tuple[int, int | None, int]:
    """The kernel's rule, stated without its loop: ``(code, first invalid index, pages to do)``.

    snp_begin_psc refuses ``end_entry >= 253`` (253 entries fit the shared buffer); then
    every entry from ``cur`` to ``end`` is taken in order, and the first whose
    ``cur_page`` exceeds its size or whose gfn is not aligned to it stops the request with
    INVALID_ENTRY (an entry batched into another one is always valid, so checking each in
    turn is the same). The exits ask for exactly the pages the private (1) and shared (2)
    entries before that still have to do.
    """
    if end >= 253:
        return 1 << 32 | 1, None, 0
    pages = 0
    for i in range(cur, end + 1):
        e = entries[i]
        huge = bool(e >> 56 & 1)
        size, done, gfn, op = _SIZE[huge], e & 0xFFF, e >> 12 & (1 << 40) - 1, e >> 52 & 0xF
        if done > size or gfn % size:
            return 1 << 32 | 2, i, pages
        if op in (1, 2):
            pages += size - done
    return 0, None, pages


@SETTINGS
@given(generation=st.sampled_from(["linux-6.16", "linux-7.2"]), desc=_descriptors())
def test_psc_any_descriptor(generation: str, desc: tuple[int, int, list[int]]) -> None:
    """Any descriptor: the code, pages asked, entries marked done and cur_entry are the kernel's."""
    cur, end, entries = desc
    buf = bytearray(RAM)
    struct.pack_into(f"<HHI{len(entries)}Q", buf, DESC, cur, end, 0, *entries)
    snapshot = bytes(buf)
    mem = GuestMemory.from_buffer(0, buf)
    model = KernelModel(REG, "snp", mem, generation)
    d = Dispatcher(REG, "snp", generation)
    d.on(MemoryConversion, lambda r, c: CoCoStatus.OK)
    asked: list[int] = []
    hook = lambda name, result: asked.append(struct.unpack_from("<Q", model.ctx.run, 48)[0])  # noqa: E731
    view = model.call("snp.psc", GuestCpu(ghcb={"sw_scratch": DESC}), d, on_exit=hook)
    code, stop, pages = _expected(cur, end, entries)
    assert view.values == {"sw_exitinfo1": 0, "sw_exitinfo2": code}
    assert sum(asked) == pages
    hi = DESC + 8 + 8 * len(entries)
    assert _outside(buf, DESC, hi) == _outside(bytearray(snapshot), DESC, hi)
    if code == 1 << 32 | 1 or cur > end:
        assert bytes(buf) == snapshot  # nothing processed, nothing written
        return
    last = end if stop is None else stop - 1
    assert struct.unpack_from("<H", buf, DESC)[0] == (last + 1) & 0xFFFF
    for i, e in enumerate(entries):
        now = struct.unpack_from("<Q", buf, DESC + 8 + 8 * i)[0]
        assert now & ~0xFFF == e & ~0xFFF  # only cur_page is ever written
        if cur <= i <= last:
            assert now & 0xFFF == _SIZE[bool(e >> 56 & 1)]  # done
        else:
            assert now == e


@SETTINGS
@given(desc=_descriptors(), ret=st.sampled_from([11, 22, 5, 99, 2**64 - 1]))
def test_psc_error_ret(desc: tuple[int, int, list[int]], ret: int) -> None:
    """A ret KVM accepts ends the PSC with GENERIC, nothing marked done; any other fails on 7.2."""
    cur, end, entries = desc
    buf = bytearray(RAM)
    struct.pack_into(f"<HHI{len(entries)}Q", buf, DESC, cur, end, 0, *entries)
    mem = GuestMemory.from_buffer(0, buf)
    model = KernelModel(REG, "snp", mem, "linux-7.2")
    cpu = GuestCpu(ghcb={"sw_scratch": DESC})
    call = model.calls["snp.psc"]
    step = call.enter(model.ctx, cpu)
    if not hasattr(step, "exit_reason"):
        return  # answered without an exit
    before = bytes(buf)
    struct.pack_into("<Q", model.ctx.run, 88, ret)
    assert call.resume is not None
    if ret in (11, 22):
        view = call.resume(model.ctx, cpu)
        assert view.values == {"sw_exitinfo1": 0, "sw_exitinfo2": 0x100 << 32}  # type: ignore[union-attr]
        assert bytes(buf) == before
    else:
        with pytest.raises(KvmRunRejected):
            call.resume(model.ctx, cpu)


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
