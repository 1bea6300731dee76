# SPDX-License-Identifier: Apache-2.0
"""KVM's side of the SNP exits, for the kernel model (reference/kernel-abi.md §3).

Guest calls and how the guest state is given (:class:`~coco_core.model.base.GuestCpu`):

``snp.ext_guest_request``
    ``regs["rax"]`` certificate buffer GPA, ``regs["rbx"]`` its size in pages,
    ``ghcb["msg_type"]`` the plaintext message type (default 5, ``SNP_MSG_REPORT_REQ``;
    the model takes it from here instead of the request page's byte 52). Optional
    ``ghcb["req_gpa"]``/``ghcb["resp_gpa"]``: checked page aligned and distinct.
    The VM enabled certificate requests if ``ctx.vm_state["snp.req_certs"]`` is true.
    The firmware modelled always succeeds (firmware error 0); the view says whether it
    was called (``firmware_called``).
``snp.psc_msr``
    ``ghcb["msr"]``: the GHCB MSR value (``GHCB_MSR_PSC_REQ`` 0x014, gfn bits 51:12,
    op bits 55:52). Result: ``ghcb["msr"]`` = ``GHCB_MSR_PSC_RESP`` or ``_RESP_ERROR``.
``snp.psc``
    ``ghcb["sw_scratch"]``: GPA of a ``struct snp_psc_desc`` in guest memory (``psc_hdr``
    {u16 cur_entry, u16 end_entry, u32 reserved} then u64 entries: cur_page 11:0, gfn
    51:12, operation 55:52, pagesize bit 56). KVM's walk (``snp_begin_psc``): adjacent
    entries with the same op and page size become one ``KVM_HC_MAP_GPA_RANGE`` exit,
    ``args[1]`` counts 4 KiB pages (512 per 2 MiB entry). Progress (``cur_page``,
    ``cur_entry``) is written back into the descriptor, nowhere else.
``snp.term_msr`` / ``snp.term_ghcb``
    ``ghcb["msr"]`` (0x100 | reason) or ``ghcb["ghcb_gpa"]``: ``KVM_EXIT_SYSTEM_EVENT``
    type 6, ``ndata`` 1, ``data[0]`` = the value; no completion.

Generations are the ABI names: ``linux-6.16`` .. ``linux-7.2`` and the proposals
(``kvm-exit-coco-v1``, ``kvm-exit-coco-v2``, ``snp-req-certs-v3`` .. ``-v7``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from coco_core.plugin import (
    EXIT_REASON,
    EXIT_UNION_OFFSET,
    EXIT_UNION_SIZE,
    X86_64_REGISTERS,
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
    ModelPart,
    SystemEventType,
    kernels,
    run_offset,
)
from coco_snp.ghcb import (
    GHCB_ERR_INVALID_INPUT,
    SNP_GUEST_VMM_ERR_BUSY,
    SNP_GUEST_VMM_ERR_GENERIC,
    SNP_GUEST_VMM_ERR_INVALID_LEN,
    VMGEXIT_PSC_ERROR_GENERIC,
    VMGEXIT_PSC_ERROR_INVALID_ENTRY,
    VMGEXIT_PSC_ERROR_INVALID_HDR,
    decode_exitinfo2,
    encode_exitinfo2,
)
from coco_snp.uapi import (
    GHCB_MSR_INFO_MASK,
    GHCB_MSR_PSC_REQ,
    GHCB_MSR_PSC_RESP,
    GHCB_MSR_PSC_RESP_ERROR,
    KVM_EXIT_COCO,
    KVM_EXIT_COCO_REQ_CERTS,
    KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN,
    KVM_EXIT_SNP_REQ_CERTS,
    KVM_EXIT_SNP_REQ_CERTS_V3,
    KVM_EXIT_SNP_REQ_CERTS_V7,
    PAGE_SHIFT,
    PAGE_SIZE,
    SNP_MSG_REPORT_REQ,
    KvmExitCocoV1,
    KvmExitCocoV2,
    KvmExitSnpReqCerts,
    KvmExitSnpReqCertsV3,
    PscOp,
)

__all__ = [
    "EMPTY_CERT_TABLE",
    "GHCB_ERR_INVALID_SCRATCH_AREA",
    "MODEL",
    "REQ_CERTS_ENABLED",
    "VMGEXIT_PSC_MAX_COUNT",
]

#: ``ctx.vm_state`` key: KVM_SEV_SNP_ENABLE_REQ_CERTS (or the proposals' capability) done.
REQ_CERTS_ENABLED = "snp.req_certs"
#: KVM's "empty table" when certificate requests are not enabled: 24 zero bytes (§3.1).
EMPTY_CERT_TABLE = bytes(24)
#: ``VMGEXIT_PSC_MAX_COUNT`` (arch/x86/include/asm/sev-common.h; kernel-abi.md §3.4).
VMGEXIT_PSC_MAX_COUNT = 253
#: ``GHCB_ERR_INVALID_SCRATCH_AREA`` (sev-common.h): a scratch area KVM cannot map.
GHCB_ERR_INVALID_SCRATCH_AREA = 3

_U = EXIT_UNION_OFFSET
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_HC_ARGS = struct.Struct("<QQQQ")  # hypercall nr, args[0..2] at kvm_run 32
_SYSEV = struct.Struct("<IIQ")  # system_event type, ndata, data[0] at kvm_run 32
_PSC_HDR = struct.Struct("<HHI")  # struct psc_hdr
_RET_HC = run_offset(KvmHypercallExit, "ret")  # hypercall.ret
_SW_EXITINFO1_ERROR = 2  # SW_EXITINFO1 = 2: error in SW_EXITINFO2 (sev-common.h comment)
_PSC_KEY = "snp.psc"


def _begin_exit(ctx: KernelContext, reason: int) -> None:
    run = ctx.run
    run[_U : _U + EXIT_UNION_SIZE] = bytes(EXIT_UNION_SIZE)
    _U32.pack_into(run, EXIT_REASON, reason)


def _ghcb_error(cpu: GuestCpu, code: int, why: str) -> GuestView:
    cpu.ghcb["sw_exitinfo1"] = _SW_EXITINFO1_ERROR
    cpu.ghcb["sw_exitinfo2"] = code
    return GuestView(
        {"sw_exitinfo1": _SW_EXITINFO1_ERROR, "sw_exitinfo2": code, "firmware_called": 0},
        f"SW_EXITINFO1=2 SW_EXITINFO2={code} (GHCB error, no exit): {why}",
    )


def _strict_ret(ctx: KernelContext) -> bool:
    """True for kernels that reject unknown MAP_GPA_RANGE ret values (7.2+, §3.4)."""
    return ctx.has(kernels.MAP_GPA_RANGE_RET_CHECKED)


# -- snp.ext_guest_request ------------------------------------------------------------------


def _firmware(cpu: GuestCpu, note: str) -> GuestView:
    # The modelled firmware always succeeds: SW_EXITINFO2 = SNP_GUEST_ERR(0, 0).
    cpu.ghcb["sw_exitinfo2"] = 0
    return GuestView(
        {"sw_exitinfo2": 0, "rbx": cpu.reg("rbx"), "firmware_called": 1},
        f"SW_EXITINFO2=0 (firmware called){note}",
    )


def _guest_request_error(cpu: GuestCpu, vmm: int, *, v1: bool = False) -> GuestView:
    value = encode_exitinfo2(vmm)
    cpu.ghcb["sw_exitinfo2"] = value
    return GuestView(
        {"sw_exitinfo2": value, "rbx": cpu.reg("rbx"), "firmware_called": 0},
        f"{decode_exitinfo2(value, v1=v1)}, RBX={cpu.reg('rbx')}",
    )


#: Exit number of the u64 layout per generation; v6's 40 is UNVERIFIED (assumed as v3..v5).
_REQ_CERTS_REASON = {
    "snp-req-certs-v6": KVM_EXIT_SNP_REQ_CERTS_V3,
    "snp-req-certs-v7": KVM_EXIT_SNP_REQ_CERTS_V7,
}


def _ext_enter(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    req, resp = cpu.ghcb.get("req_gpa"), cpu.ghcb.get("resp_gpa")
    if (
        req is not None
        and resp is not None
        and (req % PAGE_SIZE or resp % PAGE_SIZE or req == resp)
    ):
        return _ghcb_error(cpu, GHCB_ERR_INVALID_INPUT, "request/response pages")
    if cpu.ghcb.get("msg_type", SNP_MSG_REPORT_REQ) != SNP_MSG_REPORT_REQ:
        return _firmware(cpu, "; not a report request, no certificates")
    gpa, npages = cpu.reg("rax") & (2**64 - 1), cpu.reg("rbx") & (2**64 - 1)
    if gpa % PAGE_SIZE:
        return _ghcb_error(cpu, GHCB_ERR_INVALID_INPUT, "RAX not page aligned")
    gen = ctx.generation
    if not ctx.vm_state.get(REQ_CERTS_ENABLED) or (
        ctx.released and not ctx.has(kernels.SNP_REQ_CERTS_EXIT)
    ):
        # sev.c: with certificates off KVM writes an empty table if RBX != 0; a failed
        # write goes to request_invalid (GHCB_ERR_INVALID_INPUT).
        if npages:
            if not ctx.memory.contains(gpa, len(EMPTY_CERT_TABLE)):
                return _ghcb_error(cpu, GHCB_ERR_INVALID_INPUT, "certificate buffer not in RAM")
            ctx.memory.write(gpa, EMPTY_CERT_TABLE)
        return _firmware(cpu, "; certificate requests not enabled, empty table")
    run = ctx.run
    if gen == "kvm-exit-coco-v1":
        _begin_exit(ctx, KVM_EXIT_COCO)
        struct.pack_into(
            "<B7xQII", run, _U, KVM_EXIT_COCO_REQ_CERTS, gpa >> PAGE_SHIFT, npages & 0xFFFFFFFF, 0
        )
        return ExitImage("KVM_EXIT_COCO/KVM_EXIT_COCO_REQ_CERTS", KVM_EXIT_COCO)
    if gen == "kvm-exit-coco-v2":
        _begin_exit(ctx, KVM_EXIT_COCO)
        struct.pack_into(
            "<B7xIIQI",
            run,
            _U,
            KVM_EXIT_COCO_REQ_CERTS,
            0,
            0,
            gpa >> PAGE_SHIFT,
            npages & 0xFFFFFFFF,
        )
        return ExitImage("KVM_EXIT_COCO/KVM_EXIT_COCO_REQ_CERTS", KVM_EXIT_COCO)
    if gen in ("snp-req-certs-v3", "snp-req-certs-v4", "snp-req-certs-v5"):
        _begin_exit(ctx, KVM_EXIT_SNP_REQ_CERTS_V3)
        struct.pack_into("<QII", run, _U, gpa >> PAGE_SHIFT, npages & 0xFFFFFFFF, 0)
        return ExitImage("KVM_EXIT_SNP_REQ_CERTS", KVM_EXIT_SNP_REQ_CERTS_V3)
    reason = _REQ_CERTS_REASON.get(gen, KVM_EXIT_SNP_REQ_CERTS)
    _begin_exit(ctx, reason)
    struct.pack_into("<QQQ", run, _U, gpa, npages, 0)
    return ExitImage("KVM_EXIT_SNP_REQ_CERTS", reason)


def _ext_resume(ctx: KernelContext, cpu: GuestCpu) -> GuestView:
    run, gen = ctx.run, ctx.generation
    if gen == "kvm-exit-coco-v1":
        npages, ret = struct.unpack_from("<II", run, run_offset(KvmExitCocoV1, "npages"))
        if ret == 0:
            return _firmware(cpu, "")
        if ret == KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN:
            cpu.regs["rbx"] = npages
            return _guest_request_error(cpu, SNP_GUEST_VMM_ERR_INVALID_LEN, v1=True)
        # INFERRED: v1 passed ret through as the VMM error (the hybrid space, §5 item 2).
        return _guest_request_error(cpu, ret, v1=True)
    if gen == "kvm-exit-coco-v2":
        ret = _U32.unpack_from(run, run_offset(KvmExitCocoV2, "ret"))[0]
        npages = _U32.unpack_from(run, run_offset(KvmExitCocoV2, "npages"))[0]
        strict = False
    elif gen in ("snp-req-certs-v3", "snp-req-certs-v4", "snp-req-certs-v5"):
        npages, ret = struct.unpack_from("<II", run, run_offset(KvmExitSnpReqCertsV3, "npages"))
        strict = False
    else:
        npages, ret = struct.unpack_from("<QQ", run, run_offset(KvmExitSnpReqCerts, "npages"))
        strict = gen != "snp-req-certs-v6"  # v6 lenient: UNVERIFIED
    if ret == 0:
        return _firmware(cpu, "")
    if ret == Errno.ENOSPC:
        cpu.regs["rbx"] = npages
        return _guest_request_error(cpu, SNP_GUEST_VMM_ERR_INVALID_LEN)
    if ret == Errno.EAGAIN:
        return _guest_request_error(cpu, SNP_GUEST_VMM_ERR_BUSY)
    if ret == Errno.EIO or not strict:
        return _guest_request_error(cpu, SNP_GUEST_VMM_ERR_GENERIC)
    raise KvmRunRejected(
        f"snp_complete_req_certs: ret={ret} is not 0, ENOSPC, EAGAIN or EIO; KVM_RUN fails "
        "with EINVAL"
    )


# -- snp.psc_msr ------------------------------------------------------------------------------


def _map_gpa_exit(ctx: KernelContext, gpa: int, npages: int, attrs: int) -> ExitImage:
    _begin_exit(ctx, KvmExitReason.HYPERCALL)
    _HC_ARGS.pack_into(ctx.run, _U, HypercallNr.MAP_GPA_RANGE, gpa, npages, attrs)
    return ExitImage("KVM_EXIT_HYPERCALL/KVM_HC_MAP_GPA_RANGE", KvmExitReason.HYPERCALL)


def _check_ret(ctx: KernelContext) -> int:
    ret: int = _U64.unpack_from(ctx.run, _RET_HC)[0]
    if _strict_ret(ctx) and ret not in (0, Errno.EINVAL, Errno.EAGAIN):
        raise KvmRunRejected(
            f"MAP_GPA_RANGE: hypercall.ret={ret} is not 0, EINVAL or EAGAIN; KVM_RUN fails "
            "with EINVAL (Linux 7.2)"
        )
    return ret


def _msr_view(cpu: GuestCpu, value: int) -> GuestView:
    cpu.ghcb["msr"] = value
    name = "GHCB_MSR_PSC_RESP" if value == GHCB_MSR_PSC_RESP else "GHCB_MSR_PSC_RESP_ERROR"
    return GuestView({"msr": value}, f"GHCB MSR={value:#x} ({name})")


def _psc_msr_enter(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    msr = cpu.ghcb.get("msr", 0) & (2**64 - 1)
    if msr & GHCB_MSR_INFO_MASK != GHCB_MSR_PSC_REQ:
        return _msr_view(cpu, GHCB_MSR_PSC_RESP_ERROR)
    gfn = (msr >> 12) & ((1 << 40) - 1)  # GHCB_MSR_PSC_REQ_TO_GFN: bits 51:12
    op = (msr >> 52) & 0xF  # GHCB_MSR_PSC_REQ_TO_OP: bits 55:52
    if op not in (PscOp.PRIVATE, PscOp.SHARED) or not ctx.vm_state.get("kvm.exit_hypercall", True):
        return _msr_view(cpu, GHCB_MSR_PSC_RESP_ERROR)
    enc = MapGpaRangeAttr.ENCRYPTED if op == PscOp.PRIVATE else MapGpaRangeAttr.DECRYPTED
    return _map_gpa_exit(ctx, gfn << PAGE_SHIFT, 1, int(enc | MapGpaRangeAttr.PAGE_SZ_4K))


def _psc_msr_resume(ctx: KernelContext, cpu: GuestCpu) -> GuestView:
    ret = _check_ret(ctx)
    return _msr_view(cpu, GHCB_MSR_PSC_RESP_ERROR if ret else GHCB_MSR_PSC_RESP)


# -- snp.psc (GHCB protocol) ---------------------------------------------------------------


def _psc_done(ctx: KernelContext, cpu: GuestCpu, code: int) -> GuestView:
    ctx.vm_state.pop(_PSC_KEY, None)
    cpu.ghcb["sw_exitinfo2"] = code
    names = {
        0: "0",
        VMGEXIT_PSC_ERROR_GENERIC: "VMGEXIT_PSC_ERROR_GENERIC",
        VMGEXIT_PSC_ERROR_INVALID_HDR: "VMGEXIT_PSC_ERROR_INVALID_HDR",
        VMGEXIT_PSC_ERROR_INVALID_ENTRY: "VMGEXIT_PSC_ERROR_INVALID_ENTRY",
    }
    return GuestView({"sw_exitinfo2": code}, f"SW_EXITINFO2={code:#x} ({names[code]})")


def _psc_begin(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    desc = cpu.ghcb.get("sw_scratch", -1)
    mem = ctx.memory
    while True:
        if desc < 0 or not mem.contains(desc, _PSC_HDR.size):
            return _ghcb_error(cpu, GHCB_ERR_INVALID_SCRATCH_AREA, "PSC descriptor not in RAM")
        cur, end, _rsvd = _PSC_HDR.unpack(mem.read(desc, _PSC_HDR.size))
        if end >= VMGEXIT_PSC_MAX_COUNT:
            return _psc_done(ctx, cpu, VMGEXIT_PSC_ERROR_INVALID_HDR)
        size = _PSC_HDR.size + 8 * (end + 1)
        if not mem.contains(desc, size):
            return _ghcb_error(cpu, GHCB_ERR_INVALID_SCRATCH_AREA, "PSC entries not in RAM")
        raw = mem.read(desc, size)
        entries = list(struct.unpack_from(f"<{end + 1}Q", raw, _PSC_HDR.size))
        # Find the start of the next range that needs work (snp_begin_psc).
        idx = cur
        gfn = npages = 0
        huge = False
        while idx <= end:
            e = entries[idx]
            cur_page, gfn, huge = e & 0xFFF, (e >> 12) & ((1 << 40) - 1), bool((e >> 56) & 1)
            npages = 512 if huge else 1
            if cur_page > npages or gfn % npages:
                return _psc_done(ctx, cpu, VMGEXIT_PSC_ERROR_INVALID_ENTRY)
            if cur_page:
                if not huge:
                    return _psc_done(ctx, cpu, VMGEXIT_PSC_ERROR_INVALID_ENTRY)
                gfn, npages, huge = gfn + cur_page, npages - cur_page, False
            if npages:
                break
            idx += 1
        if idx != cur:  # hdr.cur_entry advanced past finished entries
            mem.write(desc, struct.pack("<H", min(idx, 0xFFFF)))
        if idx > end:
            return _psc_done(ctx, cpu, 0)
        first = entries[idx]
        op = (first >> 52) & 0xF
        last = idx
        while last + 1 <= end:
            e = entries[last + 1]
            same = (e >> 52) & 0xF == op and bool((e >> 56) & 1) == huge and not e & 0xFFF
            if not same or (e >> 12) & ((1 << 40) - 1) != gfn + npages:
                break
            last += 1
            npages += 512 if huge else 1
        ctx.vm_state[_PSC_KEY] = (desc, idx, last)
        if op in (PscOp.PRIVATE, PscOp.SHARED):
            enc = MapGpaRangeAttr.ENCRYPTED if op == PscOp.PRIVATE else MapGpaRangeAttr.DECRYPTED
            size_attr = MapGpaRangeAttr.PAGE_SZ_2M if huge else MapGpaRangeAttr.PAGE_SZ_4K
            return _map_gpa_exit(ctx, gfn << PAGE_SHIFT, npages, int(enc | size_attr))
        _psc_mark_done(ctx)  # SMASH/UNSMASH: skipped as done, no exit (sev.c)


def _psc_mark_done(ctx: KernelContext) -> None:
    """``__snp_complete_one_psc``: entries idx..last done, cur_entry past them."""
    state = ctx.vm_state.get(_PSC_KEY)
    if not isinstance(state, tuple):
        return
    desc, idx, last = state
    mem = ctx.memory
    for i in range(idx, last + 1):
        at = desc + _PSC_HDR.size + 8 * i
        e = _U64.unpack(mem.read(at, 8))[0]
        done = 512 if (e >> 56) & 1 else 1
        mem.write(at, _U64.pack((e & ~0xFFF) | done))
    mem.write(desc, struct.pack("<H", min(last + 1, 0xFFFF)))


def _psc_enter(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    if not ctx.vm_state.get("kvm.exit_hypercall", True):
        return _psc_done(ctx, cpu, VMGEXIT_PSC_ERROR_GENERIC)
    return _psc_begin(ctx, cpu)


def _psc_resume(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    ret = _check_ret(ctx)
    if ret:  # SNP has no retry: EINVAL and EAGAIN both give GENERIC (§3.4)
        return _psc_done(ctx, cpu, VMGEXIT_PSC_ERROR_GENERIC)
    _psc_mark_done(ctx)
    return _psc_begin(ctx, cpu)


# -- termination ------------------------------------------------------------------------------


def _term(key: str) -> Callable[[KernelContext, GuestCpu], ExitImage | GuestView]:
    def enter(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
        _begin_exit(ctx, KvmExitReason.SYSTEM_EVENT)
        _SYSEV.pack_into(
            ctx.run, _U, SystemEventType.SEV_TERM, 1, cpu.ghcb.get(key, 0) & (2**64 - 1)
        )
        return ExitImage(
            "KVM_EXIT_SYSTEM_EVENT/KVM_SYSTEM_EVENT_SEV_TERM", KvmExitReason.SYSTEM_EVENT
        )

    return enter


#: A one-entry PSC descriptor at 0x8000 (psc_hdr cur 0, end 0; gfn 0x100 to private, 4 KiB).
_PSC_DESC = {0x8000: _PSC_HDR.pack(0, 0, 0) + _U64.pack(0x100 << 12 | PscOp.PRIVATE << 52)}

#: The SNP calls the kernel model runs.
MODEL = ModelPart(
    vendor="snp",
    registers=X86_64_REGISTERS,
    calls=(
        GuestCall(
            name="snp.ext_guest_request",
            description="SVM_VMGEXIT_EXT_GUEST_REQUEST: certificates via KVM_EXIT_SNP_REQ_CERTS "
            "(arch/x86/kvm/svm/sev.c; kernel-abi.md §3.1, §3.2, §5)",
            enter=_ext_enter,
            resume=_ext_resume,
            examples=(
                CallExample(
                    name="one page, certificates enabled",
                    regs={"rax": 0x10000, "rbx": 1},
                    vm_state={REQ_CERTS_ENABLED: True},
                ),
            ),
        ),
        GuestCall(
            name="snp.psc_msr",
            description="GHCB_MSR_PSC_REQ: one 4 KiB page via KVM_HC_MAP_GPA_RANGE (sev.c; §3.4)",
            enter=_psc_msr_enter,
            resume=_psc_msr_resume,
            examples=(
                CallExample(
                    name="gfn 0x33 to private",
                    ghcb={"msr": GHCB_MSR_PSC_REQ | 0x33 << 12 | PscOp.PRIVATE << 52},
                ),
            ),
        ),
        GuestCall(
            name="snp.psc",
            description="SVM_VMGEXIT_PSC: batched entries via KVM_HC_MAP_GPA_RANGE (sev.c; §3.4)",
            enter=_psc_enter,
            resume=_psc_resume,
            examples=(
                CallExample(name="one entry", ghcb={"sw_scratch": 0x8000}, memory=_PSC_DESC),
            ),
        ),
        GuestCall(
            name="snp.term_msr",
            description="GHCB_MSR_TERM_REQ: KVM_SYSTEM_EVENT_SEV_TERM, data[0] = MSR value (§3.5)",
            enter=_term("msr"),
            resume=None,
            examples=(CallExample(name="reason set 1", ghcb={"msr": 0x100 | 1 << 12}),),
        ),
        GuestCall(
            name="snp.term_ghcb",
            description="SVM_VMGEXIT_TERM_REQUEST: KVM_SYSTEM_EVENT_SEV_TERM, data[0] = GHCB GPA "
            "(§3.5)",
            enter=_term("ghcb_gpa"),
            resume=None,
            examples=(CallExample(name="GHCB at 0x3000", ghcb={"ghcb_gpa": 0x3000}),),
        ),
    ),
)
