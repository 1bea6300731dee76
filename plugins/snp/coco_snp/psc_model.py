# SPDX-License-Identifier: Apache-2.0
"""KVM's page-state changes for the kernel model: ``snp.psc`` and ``snp.psc_msr``.

Mirrors ``arch/x86/kvm/svm/sev.c`` (kvm-x86 @ 1a27afa0) line for line:

``snp.psc_msr``
    (``snp_begin_psc_msr``, ``snp_complete_psc_msr``) ``ghcb["msr"]``: ``GHCB_MSR_PSC_REQ``
    (0x014), gfn in bits 51:12, op in 55:52. One 4 KiB ``KVM_HC_MAP_GPA_RANGE`` exit; the
    guest reads ``GHCB_MSR_PSC_RESP`` or ``GHCB_MSR_PSC_RESP_ERROR`` back in
    ``ghcb["msr"]``.
``snp.psc``
    (``setup_vmgexit_scratch``, ``snp_begin_psc``, ``snp_do_psc``,
    ``__snp_complete_one_psc``, ``snp_complete_one_psc``, ``snp_complete_psc``)
    ``ghcb["sw_scratch"]``: the GPA of the ``struct psc_buffer`` (``psc_hdr``
    {u16 cur_entry, u16 end_entry, u32 reserved}, then u64 entries: cur_page 11:0,
    gfn 51:12, operation 55:52, pagesize bit 56). ``ghcb["ghcb_gpa"]``: the GHCB page
    (default: the page holding ``SW_SCRATCH``). An SNP guest speaks GHCB v2, so the
    descriptor must lie in the GHCB's shared buffer (``[ghcb + 0x800, ghcb + 0xff0)``);
    the entries that fit behind the header there are the most the guest may name
    (253 when ``SW_SCRATCH`` is the buffer's start, ``end_entry`` 252 at most).

What the model copies from ``snp_do_psc``, including where it surprises:

* the header is read once, in ``snp_begin_psc``; a guest that rewrites
  ``end_entry`` later changes nothing (the entries themselves are re-read);
* a finished entry (``cur_page`` equal to its size, 1 or 512) is skipped and
  ``hdr.cur_entry`` is incremented in guest memory (``hdr.cur_entry++``);
* a partly done 2 MiB entry is sent as 4 KiB pages (``huge = false``) but its
  ``args[2]`` keeps ``KVM_MAP_GPA_RANGE_PAGE_SZ_2M`` (``entry_start.pagesize``);
* batching compares the next entry's gfn with ``entry_start.gfn + npages`` where
  ``entry_start.gfn`` is the entry's gfn *before* the pages already done were
  skipped, so after a partly done entry one exit can cover a gfn no entry names
  (the kernel's behaviour, modelled as it is);
* an operation other than private/shared is completed without an exit;
* every exit writes ``exit_reason``, ``hypercall.nr``, ``ret`` and ``args[0..2]``
  only: ``args[3..5]`` and ``flags`` keep what they held.

The PSC answer is ``svm_vmgexit_no_action()``: ``SW_EXITINFO1`` = 0 and the PSC code
in ``SW_EXITINFO2``; a scratch area KVM cannot use is ``svm_vmgexit_bad_input()``
(``SW_EXITINFO1`` = 2, ``GHCB_ERR_INVALID_SCRATCH_AREA``).
"""

from __future__ import annotations

import struct

import attrs

from coco_core.plugin import (
    CallExample,
    Errno,
    ExitImage,
    GuestCall,
    GuestCpu,
    GuestView,
    HypercallNr,
    KernelContext,
    KvmExitReason,
    KvmHypercallExit,
    KvmRunRejected,
    MapGpaRangeAttr,
    hypercall_ret,
    kernels,
    write_exit,
)
from coco_snp.ghcb import (
    VMGEXIT_PSC_ERROR_GENERIC,
    VMGEXIT_PSC_ERROR_INVALID_ENTRY,
    VMGEXIT_PSC_ERROR_INVALID_HDR,
)
from coco_snp.uapi import (
    GHCB_ERR_INVALID_SCRATCH_AREA,
    GHCB_ERR_MISSING_INPUT,
    GHCB_HV_RESP_MALFORMED_INPUT,
    GHCB_HV_RESP_NO_ACTION,
    GHCB_MSR_INFO_MASK,
    GHCB_MSR_PSC_REQ,
    GHCB_MSR_PSC_RESP,
    GHCB_MSR_PSC_RESP_ERROR,
    GHCB_SHARED_BUFFER,
    GHCB_SHARED_BUFFER_END,
    PAGE_SHIFT,
    PAGE_SIZE,
    PscOp,
)

__all__ = ["EXIT_HYPERCALL", "PSC_CALL", "PSC_MSR_CALL", "psc_entry"]

#: ``ctx.vm_state`` key: False models a VMM without ``KVM_CAP_EXIT_HYPERCALL`` bit 12
#: (``user_exit_on_hypercall(kvm, KVM_HC_MAP_GPA_RANGE)`` false). Default True.
EXIT_HYPERCALL = "kvm.exit_hypercall"

_U16 = struct.Struct("<H")
_U64 = struct.Struct("<Q")
_U64_MAX = (1 << 64) - 1
_HDR = 8  # sizeof(struct psc_hdr)
_ENTRY = 8  # sizeof(struct psc_entry)
_GFN_MASK = (1 << 40) - 1  # psc_entry.gfn : 40
_PAGES_2M = 512  # 4 KiB pages in a 2 MiB entry (snp_do_psc: "huge ? 512 : 1")
_CODES = {
    0: "0",
    VMGEXIT_PSC_ERROR_GENERIC: "VMGEXIT_PSC_ERROR_GENERIC",
    VMGEXIT_PSC_ERROR_INVALID_HDR: "VMGEXIT_PSC_ERROR_INVALID_HDR",
    VMGEXIT_PSC_ERROR_INVALID_ENTRY: "VMGEXIT_PSC_ERROR_INVALID_ENTRY",
}


def psc_entry(gfn: int, op: int, *, huge: bool = False, cur_page: int = 0) -> int:
    """A ``struct psc_entry`` as the u64 the guest writes (sev-common.h bitfields)."""
    return (cur_page & 0xFFF) | ((gfn & _GFN_MASK) << 12) | ((op & 0xF) << 52) | (int(huge) << 56)


def _fields(entry: int) -> tuple[int, int, int, bool]:
    """``(cur_page, gfn, operation, pagesize)`` of a ``struct psc_entry``."""
    return entry & 0xFFF, (entry >> 12) & _GFN_MASK, (entry >> 52) & 0xF, bool((entry >> 56) & 1)


def _map_gpa_exit(ctx: KernelContext, gpa: int, npages: int, attrs_: int, how: str) -> ExitImage:
    """The PSC exits of sev.c: nr, ret (0), args[0..2]; ``flags`` and args[3..5] untouched."""
    write_exit(
        ctx.run,
        KvmExitReason.HYPERCALL,
        KvmHypercallExit,
        {"nr": int(HypercallNr.MAP_GPA_RANGE), "ret": 0, "args": (gpa, npages, attrs_)},
    )
    return ExitImage(f"KVM_EXIT_HYPERCALL/KVM_HC_MAP_GPA_RANGE ({how})", KvmExitReason.HYPERCALL)


def _checked_ret(ctx: KernelContext) -> int:
    """``hypercall.ret``, or KVM_RUN's -EINVAL where ``kvm_is_valid_map_gpa_range_ret()`` rules."""
    ret = hypercall_ret(ctx.run)
    if ctx.has(kernels.MAP_GPA_RANGE_RET_CHECKED) and ret not in (0, Errno.EINVAL, Errno.EAGAIN):
        raise KvmRunRejected(
            f"MAP_GPA_RANGE: hypercall.ret={ret} is not 0, EINVAL (22) or EAGAIN (11); "
            "KVM_RUN fails with EINVAL (kvm_is_valid_map_gpa_range_ret, Linux 7.2)"
        )
    return ret


def _encryption(op: int) -> int:
    return int(MapGpaRangeAttr.ENCRYPTED if op == PscOp.PRIVATE else MapGpaRangeAttr.DECRYPTED)


# -- snp.psc_msr ------------------------------------------------------------------------


def _msr_view(cpu: GuestCpu, value: int) -> GuestView:
    cpu.ghcb["msr"] = value
    name = "GHCB_MSR_PSC_RESP" if value == GHCB_MSR_PSC_RESP else "GHCB_MSR_PSC_RESP_ERROR"
    return GuestView({"msr": value}, f"GHCB MSR={value:#x} ({name})")


def _psc_msr_enter(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    msr = cpu.ghcb.get("msr", 0) & _U64_MAX
    if msr & GHCB_MSR_INFO_MASK != GHCB_MSR_PSC_REQ:
        return _msr_view(cpu, GHCB_MSR_PSC_RESP_ERROR)
    gfn = (msr >> 12) & _GFN_MASK  # GHCB_MSR_PSC_REQ_TO_GFN: bits 51:12
    op = (msr >> 52) & 0xF  # GHCB_MSR_PSC_REQ_TO_OP: bits 55:52
    if op not in (PscOp.PRIVATE, PscOp.SHARED) or not ctx.vm_state.get(EXIT_HYPERCALL, True):
        return _msr_view(cpu, GHCB_MSR_PSC_RESP_ERROR)
    attrs_ = _encryption(op) | int(MapGpaRangeAttr.PAGE_SZ_4K)
    return _map_gpa_exit(ctx, gfn << PAGE_SHIFT, 1, attrs_, "GHCB MSR PSC")


def _psc_msr_resume(ctx: KernelContext, cpu: GuestCpu) -> GuestView:
    ret = _checked_ret(ctx)
    return _msr_view(cpu, GHCB_MSR_PSC_RESP_ERROR if ret else GHCB_MSR_PSC_RESP)


# -- snp.psc ----------------------------------------------------------------------------


@attrs.define
class _Psc:
    """``svm->sev_es.psc`` of one vCPU: the validated header and the batch in flight."""

    desc: int  #: GPA of the psc_buffer (SW_SCRATCH)
    cur_idx: int
    end_idx: int
    batch_size: int = 0


def _key(cpu: GuestCpu) -> str:
    return f"snp.psc.{cpu.apic_id}"  # svm->sev_es.psc is per vCPU


def _answer(cpu: GuestCpu, info1: int, info2: int, why: str) -> GuestView:
    cpu.ghcb["sw_exitinfo1"] = info1
    cpu.ghcb["sw_exitinfo2"] = info2
    text = _CODES.get(info2, f"GHCB error {info2}") if info1 == GHCB_HV_RESP_NO_ACTION else why
    return GuestView(
        {"sw_exitinfo1": info1, "sw_exitinfo2": info2},
        f"SW_EXITINFO1={info1} SW_EXITINFO2={info2:#x} ({text})",
    )


def _complete_psc(ctx: KernelContext, cpu: GuestCpu, code: int) -> GuestView:
    """``snp_complete_psc()``: forget the state; SW_EXITINFO1 = 0, SW_EXITINFO2 = code."""
    ctx.vm_state.pop(_key(cpu), None)
    return _answer(cpu, GHCB_HV_RESP_NO_ACTION, code, "")


def _entry(ctx: KernelContext, st: _Psc, idx: int) -> int:
    value: int = _U64.unpack(ctx.memory.read(st.desc + _HDR + _ENTRY * idx, _ENTRY))[0]
    return value


def _psc_enter(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    scratch = cpu.ghcb.get("sw_scratch")
    ghcb = cpu.ghcb.get("ghcb_gpa", (scratch or 0) & ~(PAGE_SIZE - 1)) & _U64_MAX
    if not ghcb or ghcb % PAGE_SIZE or not ctx.memory.contains(ghcb, PAGE_SIZE):
        # sev_handle_vmgexit: no GHCB GPA, or kvm_vcpu_map() fails: "Without a GHCB,
        # just return right back to the guest" (a GPA with GHCBInfo bits is an MSR request)
        return GuestView({}, f"GHCB {ghcb:#x} not usable: KVM returns to the guest, no answer")
    if scratch is None:  # sev_es_are_required_ghcb_fields_valid(): SW_SCRATCH not valid
        return _answer(cpu, GHCB_HV_RESP_MALFORMED_INPUT, GHCB_ERR_MISSING_INPUT, "no SW_SCRATCH")
    cpu.ghcb["sw_exitinfo1"] = cpu.ghcb["sw_exitinfo2"] = 0  # svm_vmgexit_success(svm, 0)
    # setup_vmgexit_scratch(svm, true, sizeof(struct psc_hdr)), GHCB v2: inside the GHCB
    scratch &= _U64_MAX
    if (
        not scratch
        or scratch & ~(PAGE_SIZE - 1) != ghcb
        or scratch < ghcb + GHCB_SHARED_BUFFER
        or scratch + _HDR > ghcb + GHCB_SHARED_BUFFER_END
    ):
        return _answer(
            cpu,
            GHCB_HV_RESP_MALFORMED_INPUT,
            GHCB_ERR_INVALID_SCRATCH_AREA,
            "GHCB_ERR_INVALID_SCRATCH_AREA: SW_SCRATCH not in the GHCB shared buffer",
        )
    sa_len = ghcb + GHCB_SHARED_BUFFER_END - scratch  # svm->sev_es.ghcb_sa_len
    # snp_begin_psc()
    if not ctx.vm_state.get(EXIT_HYPERCALL, True):
        return _complete_psc(ctx, cpu, VMGEXIT_PSC_ERROR_GENERIC)
    max_nr_entries = (sa_len - _HDR) // _ENTRY
    # at most VMGEXIT_PSC_MAX_COUNT (253) here, so the kernel's WARN_ON_ONCE cannot fire
    cur, end = struct.unpack("<HH", ctx.memory.read(scratch, 4))
    if end >= max_nr_entries:
        return _complete_psc(ctx, cpu, VMGEXIT_PSC_ERROR_INVALID_HDR)
    st = _Psc(scratch, cur, end)
    ctx.vm_state[_key(cpu)] = st
    return _do_psc(ctx, cpu, st)


def _do_psc(ctx: KernelContext, cpu: GuestCpu, st: _Psc) -> ExitImage | GuestView:
    """``snp_do_psc()``: find the next range, batch adjacent entries, exit or complete."""
    mem = ctx.memory
    while True:  # next_range:
        idx = st.cur_idx
        while idx <= st.end_idx:  # find the start of the next range which needs processing
            start = _entry(ctx, st, idx)
            cur_page, gfn, op, pagesize = _fields(start)
            huge = pagesize
            npages = _PAGES_2M if huge else 1
            if cur_page > npages or gfn % npages:
                return _complete_psc(ctx, cpu, VMGEXIT_PSC_ERROR_INVALID_ENTRY)
            if cur_page:  # partly done 2M range: the rest as 4K pages
                npages -= cur_page
                gfn += cur_page
                huge = False
            if npages:
                break
            # guest_psc->hdr.cur_entry++: a read-modify-write of the guest's u16
            seen = _U16.unpack(mem.read(st.desc, 2))[0]
            mem.write(st.desc, _U16.pack((seen + 1) & 0xFFFF))
            idx += 1
        if idx > st.end_idx:  # nothing more to process
            return _complete_psc(ctx, cpu, 0)
        st.cur_idx, st.batch_size = idx, 1
        start_gfn = _fields(start)[1]  # entry_start.gfn: before skipping the pages done
        while idx + 1 <= st.end_idx:
            idx += 1
            e_cur, e_gfn, e_op, e_size = _fields(_entry(ctx, st, idx))
            if e_op != op or e_gfn != start_gfn + npages or e_cur or e_size != huge:
                break
            st.batch_size += 1
            npages += _PAGES_2M if huge else 1
        if op in (PscOp.PRIVATE, PscOp.SHARED):
            size = MapGpaRangeAttr.PAGE_SZ_2M if pagesize else MapGpaRangeAttr.PAGE_SZ_4K
            attrs_ = _encryption(op) | int(size)  # entry_start.pagesize, not huge
            return _map_gpa_exit(ctx, gfn << PAGE_SHIFT, npages, attrs_, "SNP PSC")
        _complete_one(ctx, st)  # SMASH/UNSMASH and unknown ops: done, no exit


def _complete_one(ctx: KernelContext, st: _Psc) -> None:
    """``__snp_complete_one_psc()``: mark the batch done, ``hdr.cur_entry`` past it."""
    mem = ctx.memory
    idx = st.cur_idx
    while st.batch_size:
        at = st.desc + _HDR + _ENTRY * idx
        entry = _U64.unpack(mem.read(at, _ENTRY))[0]
        done = _PAGES_2M if _fields(entry)[3] else 1  # entry.pagesize ? 512 : 1
        mem.write(at, _U64.pack((entry & ~0xFFF) | done))  # the cur_page bitfield only
        st.batch_size -= 1
        idx += 1
    st.cur_idx = idx
    mem.write(st.desc, _U16.pack(idx & 0xFFFF))  # guest_psc->hdr.cur_entry = idx


def _psc_resume(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    """``snp_complete_one_psc()``: any valid non-zero ret is GENERIC (SNP has no retry)."""
    st = ctx.vm_state.get(_key(cpu))
    if not isinstance(st, _Psc):
        raise KvmRunRejected("PSC completion without a page-state change in progress")
    if _checked_ret(ctx):
        return _complete_psc(ctx, cpu, VMGEXIT_PSC_ERROR_GENERIC)
    _complete_one(ctx, st)
    return _do_psc(ctx, cpu, st)


#: A one-entry descriptor in the GHCB's shared buffer (GHCB at 0x8000, SW_SCRATCH at
#: 0x8800): psc_hdr cur 0, end 0; gfn 0x100 to private, 4 KiB.
_EXAMPLE_GHCB = 0x8000
_EXAMPLE_DESC = {
    _EXAMPLE_GHCB + GHCB_SHARED_BUFFER: _U16.pack(0) * 4
    + _U64.pack(psc_entry(0x100, PscOp.PRIVATE))
}

PSC_MSR_CALL = GuestCall(
    name="snp.psc_msr",
    description="GHCB_MSR_PSC_REQ: one 4 KiB page via KVM_HC_MAP_GPA_RANGE (sev.c "
    "snp_begin_psc_msr, snp_complete_psc_msr)",
    enter=_psc_msr_enter,
    resume=_psc_msr_resume,
    examples=(
        CallExample(
            name="gfn 0x33 to private",
            ghcb={"msr": GHCB_MSR_PSC_REQ | 0x33 << 12 | PscOp.PRIVATE << 52},
        ),
    ),
)
PSC_CALL = GuestCall(
    name="snp.psc",
    description="SVM_VMGEXIT_PSC: batched entries via KVM_HC_MAP_GPA_RANGE (sev.c "
    "snp_begin_psc, snp_do_psc, snp_complete_one_psc)",
    enter=_psc_enter,
    resume=_psc_resume,
    examples=(
        CallExample(
            name="one entry",
            ghcb={"ghcb_gpa": _EXAMPLE_GHCB, "sw_scratch": _EXAMPLE_GHCB + GHCB_SHARED_BUFFER},
            memory=_EXAMPLE_DESC,
        ),
    ),
)
