# SPDX-License-Identifier: Apache-2.0
"""The kernel model's page-state changes against sev.c (kvm-x86 @ 1a27afa0), rule by rule."""

from __future__ import annotations

import struct

import pytest

from coco_core.dispatch import Dispatcher
from coco_core.kvm.vm import GuestMemory
from coco_core.model.base import GuestCpu, KvmRunRejected
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.requests import MemoryConversion
from coco_core.status import CoCoStatus
from coco_snp import plugin

REG = Registry.from_plugins([plugin])
RAM = 0x40000
GHCB = 0x3000  # the GHCB page
DESC = GHCB + 0x800  # SW_SCRATCH at the start of the shared buffer
OK, INVALID_HDR, INVALID_ENTRY, GENERIC = 0, (1 << 32) | 1, (1 << 32) | 2, 0x100 << 32
PRIVATE, SHARED = 1, 2
SZ_4K, SZ_2M, ENCRYPTED = 0, 1, 0x10  # KVM_MAP_GPA_RANGE_* (asm/kvm_para.h)


def psc_entry(gfn: int, op: int, *, huge: bool = False, cur_page: int = 0) -> int:
    """``struct psc_entry``: cur_page 11:0, gfn 51:12, operation 55:52, pagesize 56."""
    return cur_page | (gfn << 12) | (op << 52) | (int(huge) << 56)


class _Run:
    """A model, a dispatcher that answers OK, and every MAP_GPA_RANGE exit's args[0..2]."""

    def __init__(self, generation: str = "linux-7.2") -> None:
        self.buf = bytearray(RAM)
        self.mem = GuestMemory.from_buffer(0, self.buf)
        self.model = KernelModel(REG, "snp", self.mem, generation)
        self.dispatcher = Dispatcher(REG, "snp", generation)
        self.dispatcher.on(MemoryConversion, lambda r, c: CoCoStatus.OK)
        self.exits: list[tuple[int, int, int]] = []

    def descriptor(self, entries: list[int], cur: int = 0, end: int | None = None) -> None:
        last = len(entries) - 1 if end is None else end
        struct.pack_into(f"<HHI{len(entries)}Q", self.buf, DESC, cur, last, 0, *entries)

    def psc(self, ghcb: dict[str, int] | None = None, hook: object = None) -> dict[str, int]:
        def on_exit(name: str, result: object) -> None:
            self.exits.append(struct.unpack_from("<3Q", self.model.ctx.run, 40))
            if callable(hook):
                hook()

        cpu = GuestCpu(ghcb={"sw_scratch": DESC, "ghcb_gpa": GHCB, **(ghcb or {})})
        return dict(self.model.call("snp.psc", cpu, self.dispatcher, on_exit=on_exit).values)

    def entry(self, i: int) -> int:
        value: int = struct.unpack_from("<Q", self.buf, DESC + 8 + 8 * i)[0]
        return value

    @property
    def cur_entry(self) -> int:
        value: int = struct.unpack_from("<H", self.buf, DESC)[0]
        return value


def test_finished_4k_entry_is_skipped() -> None:
    """``npages -= entry_start.cur_page;`` leaves 0 for a done 4K entry: skipped, no error."""
    r = _Run()
    r.descriptor([psc_entry(0x10, PRIVATE, cur_page=1), psc_entry(0x20, SHARED)])
    assert r.psc() == {"sw_exitinfo1": 0, "sw_exitinfo2": OK}
    assert r.exits == [(0x20 << 12, 1, SZ_4K)]


def test_partly_done_2m_entry_keeps_the_2m_hint() -> None:
    """``args[2] |= entry_start.pagesize ? KVM_MAP_GPA_RANGE_PAGE_SZ_2M``, partly done or not."""
    r = _Run()
    r.descriptor([psc_entry(0x200, PRIVATE, huge=True, cur_page=0x100)])
    assert r.psc()["sw_exitinfo2"] == OK
    assert r.exits == [((0x200 + 0x100) << 12, 512 - 0x100, ENCRYPTED | SZ_2M)]
    assert r.entry(0) & 0xFFF == 512


def test_batch_after_partly_done_entry_compares_with_the_unadjusted_gfn() -> None:
    """``entry.gfn != entry_start.gfn + npages`` uses the gfn before ``gfn += cur_page``."""
    r = _Run()  # 256 pages of 0x200 remain; the kernel batches a 4K entry at 0x200 + 256
    r.descriptor([psc_entry(0x200, PRIVATE, huge=True, cur_page=0x100), psc_entry(0x300, PRIVATE)])
    assert r.psc()["sw_exitinfo2"] == OK
    assert r.exits == [(0x300 << 12, 257, ENCRYPTED | SZ_2M)]  # reaches gfn 0x400, named by none
    r = _Run()  # the entry right after the 2M range is not batched
    r.descriptor([psc_entry(0x200, PRIVATE, huge=True, cur_page=0x100), psc_entry(0x400, PRIVATE)])
    assert r.psc()["sw_exitinfo2"] == OK
    assert r.exits == [(0x300 << 12, 256, ENCRYPTED | SZ_2M), (0x400 << 12, 1, ENCRYPTED | SZ_4K)]


def test_header_is_read_once() -> None:
    """``psc.end_idx = READ_ONCE(guest_psc->hdr.end_entry)``: a later rewrite changes nothing."""
    r = _Run()
    r.descriptor(
        [psc_entry(0x10, PRIVATE), psc_entry(0x30, PRIVATE), psc_entry(0x50, PRIVATE)], end=0
    )

    def grow() -> None:
        struct.pack_into("<H", r.buf, DESC + 2, 2)  # the guest now claims three entries

    assert r.psc(hook=grow)["sw_exitinfo2"] == OK
    assert r.exits == [(0x10 << 12, 1, ENCRYPTED)]


def test_cur_entry_counts_skipped_entries_before_an_invalid_one() -> None:
    """``guest_psc->hdr.cur_entry++`` over the finished entry: 2 when entry 2 is invalid."""
    r = _Run()
    r.descriptor(
        [
            psc_entry(0x10, PRIVATE),
            psc_entry(0x11, PRIVATE, cur_page=1),
            psc_entry(0x201, PRIVATE, huge=True),  # !IS_ALIGNED(gfn, 512)
        ]
    )
    assert r.psc()["sw_exitinfo2"] == INVALID_ENTRY
    assert r.cur_entry == 2


@pytest.mark.parametrize(
    ("gfn", "code"), [(0x200, OK), (0x201, INVALID_ENTRY), (0x3FF, INVALID_ENTRY)]
)
def test_2m_entry_must_be_2m_aligned(gfn: int, code: int) -> None:
    """``if (entry_start.cur_page > npages || !IS_ALIGNED(gfn, npages))``: INVALID_ENTRY."""
    r = _Run()
    r.descriptor([psc_entry(gfn, SHARED, huge=True)])
    assert r.psc()["sw_exitinfo2"] == code
    assert len(r.exits) == (code == OK)


@pytest.mark.parametrize(("cur_page", "code", "exits"), [(512, OK, 0), (513, INVALID_ENTRY, 0)])
def test_2m_cur_page_bound(cur_page: int, code: int, exits: int) -> None:
    """``entry_start.cur_page > npages`` is the bound: 512 is done, 513 is invalid."""
    r = _Run()
    r.descriptor([psc_entry(0x200, SHARED, huge=True, cur_page=cur_page)])
    assert r.psc()["sw_exitinfo2"] == code
    assert len(r.exits) == exits


def test_two_adjacent_2m_entries_are_one_exit() -> None:
    """``npages += huge ? 512 : 1``: two adjacent 2M entries are one exit of 1024 pages."""
    r = _Run()
    r.descriptor([psc_entry(0x200, SHARED, huge=True), psc_entry(0x400, SHARED, huge=True)])
    assert r.psc()["sw_exitinfo2"] == OK
    assert r.exits == [(0x200 << 12, 1024, SZ_2M)]
    assert [r.entry(i) & 0xFFF for i in (0, 1)] == [512, 512]
    assert r.cur_entry == 2


@pytest.mark.parametrize(
    ("scratch", "end", "code"),
    [
        (DESC, 252, OK),  # (0xff0 - 0x800 - 8) / 8 = 253 entries: end_entry 252 fits
        (DESC, 253, INVALID_HDR),  # "if (sev_es->psc.end_idx >= max_nr_entries)"
        (DESC + 8, 251, OK),  # one entry less room behind a later SW_SCRATCH
        (DESC + 8, 252, INVALID_HDR),
    ],
)
def test_end_entry_bound(scratch: int, end: int, code: int) -> None:
    """``max_nr_entries = (ghcb_sa_len - sizeof(struct psc_hdr)) / sizeof(struct psc_entry)``."""
    r = _Run()
    struct.pack_into("<HHI", r.buf, scratch, 0, end, 0)  # entries all zero: op 0, no exit
    cpu = GuestCpu(ghcb={"sw_scratch": scratch, "ghcb_gpa": GHCB})
    view = r.model.call("snp.psc", cpu, r.dispatcher)
    assert view.values == {"sw_exitinfo1": 0, "sw_exitinfo2": code}


@pytest.mark.parametrize(
    ("scratch", "answer"),
    [
        (GHCB + 0x7F8, (2, 3)),  # before shared_buffer: GHCB_ERR_INVALID_SCRATCH_AREA
        (GHCB + 0x800, (0, OK)),  # end_entry 0, one zero entry (op 0): done
        (GHCB + 0xFE8, (0, INVALID_HDR)),  # the header fits, no entry does: 0 >= 0
        (GHCB + 0xFEC, (2, 3)),  # the header would cross reserved_0xff0
    ],
)
def test_scratch_area_must_be_in_the_shared_buffer(scratch: int, answer: tuple[int, int]) -> None:
    """setup_vmgexit_scratch: outside ``shared_buffer`` is ``GHCB_ERR_INVALID_SCRATCH_AREA``."""
    r = _Run()
    cpu = GuestCpu(ghcb={"sw_scratch": scratch, "ghcb_gpa": GHCB})
    values = r.model.call("snp.psc", cpu, r.dispatcher).values
    assert (values["sw_exitinfo1"], values["sw_exitinfo2"]) == answer


def test_psc_exit_leaves_flags_and_upper_args() -> None:
    """The PSC exit sets ``nr``, ``ret``, ``args[0..2]`` only: ``hypercall.flags`` stays stale."""
    r = _Run()
    run = r.model.ctx.run
    run[32:288] = b"\xee" * 256
    r.descriptor([psc_entry(0x10, SHARED)])
    r.model.calls["snp.psc"].enter(r.model.ctx, GuestCpu(ghcb={"sw_scratch": DESC}))
    assert struct.unpack_from("<4Q", run, 32) == (12, 0x10 << 12, 1, 0)
    assert struct.unpack_from("<Q", run, 88) == (0,)
    assert bytes(run[64:88]) == b"\xee" * 24  # args[3..5]
    assert bytes(run[96:104]) == b"\xee" * 8  # flags


def test_msr_psc_exit_leaves_flags() -> None:
    """snp_begin_psc_msr sets ``nr``, ``ret``, ``args[0..2]`` only."""
    r = _Run()
    run = r.model.ctx.run
    run[96:104] = b"\xee" * 8
    msr = 0x014 | (0x33 << 12) | (SHARED << 52)
    r.model.calls["snp.psc_msr"].enter(r.model.ctx, GuestCpu(ghcb={"msr": msr}))
    assert struct.unpack_from("<4Q", run, 32) == (12, 0x33 << 12, 1, 0)
    assert bytes(run[96:104]) == b"\xee" * 8


@pytest.mark.parametrize(("generation", "rejected"), [("linux-7.1", False), ("linux-7.2", True)])
def test_psc_ret_rule_per_release(generation: str, rejected: bool) -> None:
    """``if (!kvm_is_valid_map_gpa_range_ret(hypercall_ret)) return -EINVAL;`` from 7.2."""
    r = _Run(generation)
    r.descriptor([psc_entry(0x10, SHARED)])
    cpu = GuestCpu(ghcb={"sw_scratch": DESC})
    call = r.model.calls["snp.psc"]
    assert call.resume is not None
    call.enter(r.model.ctx, cpu)
    struct.pack_into("<Q", r.model.ctx.run, 88, 99)
    if rejected:
        with pytest.raises(KvmRunRejected):
            call.resume(r.model.ctx, cpu)
    else:
        assert call.resume(r.model.ctx, cpu).values["sw_exitinfo2"] == GENERIC


@pytest.mark.parametrize("status", [CoCoStatus.RETRY, CoCoStatus.INVALID])
def test_valid_error_ret_is_generic(status: CoCoStatus) -> None:
    """``if (hypercall_ret) { snp_complete_psc(svm, VMGEXIT_PSC_ERROR_GENERIC);``: no retry."""
    r = _Run()
    r.descriptor([psc_entry(0x10, SHARED), psc_entry(0x30, SHARED)])
    r.dispatcher.on(MemoryConversion, lambda q, c: status)  # EAGAIN, EINVAL
    assert r.psc()["sw_exitinfo2"] == GENERIC
    assert len(r.exits) == 1
    assert r.entry(0) & 0xFFF == 0  # nothing marked done


def test_unknown_op_completes_without_exit() -> None:
    """``default: __snp_complete_one_psc(svm); goto next_range;``: SMASH (3) is done, no exit."""
    r = _Run()
    r.descriptor([psc_entry(0x200, 3, huge=True), psc_entry(0x10, PRIVATE)])
    assert r.psc()["sw_exitinfo2"] == OK
    assert r.exits == [(0x10 << 12, 1, ENCRYPTED)]
    assert r.entry(0) & 0xFFF == 512


def test_no_exit_hypercall_is_generic() -> None:
    """``if (!user_exit_on_hypercall(svm->vcpu.kvm, KVM_HC_MAP_GPA_RANGE))``: GENERIC."""
    r = _Run()
    r.model.ctx.vm_state["kvm.exit_hypercall"] = False
    r.descriptor([psc_entry(0x10, PRIVATE)])
    assert r.psc() == {"sw_exitinfo1": 0, "sw_exitinfo2": GENERIC}


def test_ghcb_outside_ram_gets_no_answer() -> None:
    """``kvm_vcpu_map()`` fails: "Without a GHCB, just return right back to the guest"."""
    r = _Run()
    cpu = GuestCpu(ghcb={"sw_scratch": RAM + 0x800, "ghcb_gpa": RAM})
    view = r.model.call("snp.psc", cpu, r.dispatcher)
    assert (view.values, cpu.ghcb) == ({}, {"sw_scratch": RAM + 0x800, "ghcb_gpa": RAM})
