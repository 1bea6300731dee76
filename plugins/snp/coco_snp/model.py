# SPDX-License-Identifier: Apache-2.0
"""KVM's side of the SNP exits, for the kernel model (docs/reference/kernel-abi.md §3).

Every rule names the function of ``arch/x86/kvm/svm/sev.c`` it mirrors; the tree read
is kvm-x86 @ 1a27afa0511e404fd87c1a5e643945940ef72f90 for the released kernels, and
the patch mails named below for the proposals. Guest calls and how the guest state is
given (:class:`~coco_core.model.base.GuestCpu`; a GHCB field present in ``ghcb`` is a
field the guest marked valid):

``snp.ext_guest_request``
    (``sev_handle_vmgexit``, ``snp_handle_ext_guest_req``, ``snp_complete_req_certs``,
    ``snp_handle_guest_req``) ``regs["rax"]`` certificate buffer GPA, ``regs["rbx"]`` its
    size in pages (both must be present: ``kvm_ghcb_rax_is_valid``/``_rbx_``),
    ``ghcb["msg_type"]`` the plaintext message type (default 5, ``SNP_MSG_REPORT_REQ``; the
    model takes it from here instead of the request page's byte 52). Optional
    ``ghcb["req_gpa"]``/``ghcb["resp_gpa"]`` (SW_EXITINFO1/2): checked page aligned and
    distinct. The VM enabled certificate requests if ``ctx.vm_state["snp.req_certs"]`` is
    true. The firmware modelled always succeeds (firmware error 0); the view says whether it
    was called (``firmware_called``). Every answer sets SW_EXITINFO1 (0, or 2 for a refused
    input).
``snp.psc_msr``, ``snp.psc``
    :mod:`coco_snp.psc_model`.
``snp.term_msr`` / ``snp.term_ghcb``
    (``sev_handle_vmgexit_msr_protocol`` ``out_terminate``; ``SVM_VMGEXIT_TERM_REQUEST``)
    ``ghcb["msr"]`` (0x100 | reason) or ``ghcb["ghcb_gpa"]``: ``KVM_EXIT_SYSTEM_EVENT``
    type 6, ``ndata`` 1, ``data[0]`` = the value; nothing else of the union is written;
    no completion.
``snp.kvm_hypercall``
    (``SVM_EXIT_VMMCALL`` → ``kvm_emulate_hypercall``, x86.c) ``regs["rax"]`` the hypercall
    number, ``rbx``/``rcx``/``rdx`` the arguments, ``ghcb["cpl"]`` the GHCB CPL (default 0).
    ``KVM_HC_MAP_GPA_RANGE`` exits as ``KVM_EXIT_HYPERCALL``; ``complete_hypercall_exit()``
    puts ``hypercall.ret`` into RAX as it is, with no errno check
    (:func:`coco_core.plugin.pv_hypercall`).

Generations are the ABI names: ``linux-6.16`` .. ``linux-7.2`` and the proposals
(``kvm-exit-coco-v1``, ``kvm-exit-coco-v2``, ``snp-req-certs-v3`` .. ``-v7``). v1 is read
from [PATCH v1 3/5] and [PATCH v1 5/5] (2024-06-21); v2..v7 sit on trees with the 6.11
``snp_handle_ext_guest_req()`` (``request_invalid``, ``kvm_clear_guest`` → ``-EIO``).
"""

from __future__ import annotations

import errno
import struct

from coco_core.plugin import (
    X86_64_REGISTERS,
    CallExample,
    CStruct,
    Errno,
    ExitImage,
    GuestCall,
    GuestCpu,
    GuestView,
    HypercallNr,
    KernelContext,
    KvmExitReason,
    KvmRunRejected,
    KvmSystemEventExit,
    MapGpaRangeAttr,
    ModelPart,
    SystemEventType,
    hypercall_ret,
    kernels,
    pv_hypercall,
    run_offset,
    write_exit,
)
from coco_snp.ghcb import (
    GHCB_ERR_INVALID_INPUT,
    SNP_GUEST_VMM_ERR_BUSY,
    SNP_GUEST_VMM_ERR_GENERIC,
    SNP_GUEST_VMM_ERR_GENERIC_V1,
    SNP_GUEST_VMM_ERR_INVALID_LEN,
    decode_exitinfo2,
    encode_exitinfo2,
)
from coco_snp.psc_model import EXIT_HYPERCALL, PSC_CALL, PSC_MSR_CALL
from coco_snp.uapi import (
    GHCB_ERR_MISSING_INPUT,
    GHCB_HV_RESP_MALFORMED_INPUT,
    GHCB_HV_RESP_NO_ACTION,
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
    KvmExitSnpReqCertsV6,
)

__all__ = ["EMPTY_CERT_TABLE", "EXIT_HYPERCALL", "MODEL", "REQ_CERTS_ENABLED"]

#: ``ctx.vm_state`` key: KVM_SEV_SNP_ENABLE_REQ_CERTS (or the proposals' capability) done.
REQ_CERTS_ENABLED = "snp.req_certs"
#: KVM's "empty table" when certificate requests are not enabled: 24 zero bytes (§3.1).
EMPTY_CERT_TABLE = bytes(24)

_U32 = struct.Struct("<I")
_U64_MAX = (1 << 64) - 1
_V1 = "kvm-exit-coco-v1"
_U32_LAYOUTS = ("snp-req-certs-v3", "snp-req-certs-v4", "snp-req-certs-v5")
_LENIENT = ("kvm-exit-coco-v2", *_U32_LAYOUTS)  # "else GENERIC" (v2..v5: [PATCH v5 1/1])


def _set(cpu: GuestCpu, info1: int, info2: int, rbx: bool) -> dict[str, int]:
    cpu.ghcb["sw_exitinfo1"] = info1
    cpu.ghcb["sw_exitinfo2"] = info2
    values = {"sw_exitinfo1": info1, "sw_exitinfo2": info2}
    if rbx:
        values["rbx"] = cpu.reg("rbx")
    return values


def _bad_input(cpu: GuestCpu, code: int, why: str) -> GuestView:
    """``svm_vmgexit_bad_input()``: SW_EXITINFO1 = 2, the GHCB_ERR_* code in SW_EXITINFO2."""
    values = _set(cpu, GHCB_HV_RESP_MALFORMED_INPUT, code, rbx=False)
    return GuestView(
        {**values, "firmware_called": 0},
        f"SW_EXITINFO1=2 SW_EXITINFO2={code} (GHCB error, no exit): {why}",
    )


def _firmware(cpu: GuestCpu, note: str) -> GuestView:
    """``snp_handle_guest_req()``: the modelled firmware succeeds, SNP_GUEST_ERR(0, 0)."""
    values = _set(cpu, GHCB_HV_RESP_NO_ACTION, 0, rbx=True)
    return GuestView({**values, "firmware_called": 1}, f"SW_EXITINFO2=0 (firmware called){note}")


def _vmm_error(cpu: GuestCpu, vmm: int, *, v1: bool = False) -> GuestView:
    """``snp_req_certs_err()``: SW_EXITINFO2 = SNP_GUEST_ERR(vmm, 0); firmware not called."""
    value = encode_exitinfo2(vmm)
    values = _set(cpu, GHCB_HV_RESP_NO_ACTION, value, rbx=True)
    return GuestView(
        {**values, "firmware_called": 0},
        f"{decode_exitinfo2(value, v1=v1)}, RBX={cpu.reg('rbx')}",
    )


# -- snp.ext_guest_request ------------------------------------------------------------------


def _ext_enter(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    gen = ctx.generation
    req, resp = cpu.ghcb.get("req_gpa"), cpu.ghcb.get("resp_gpa")
    if req is not None and resp is not None:
        if gen == _V1 and (req % PAGE_SIZE or resp % PAGE_SIZE):
            # [PATCH v1 3/5] snp_handle_ext_guest_req: "!PAGE_ALIGNED(req_gpa) ... return -EINVAL"
            raise KvmRunRejected("v1: request/response page not page aligned; KVM_RUN -EINVAL")
        if gen != _V1 and (req % PAGE_SIZE or resp % PAGE_SIZE or req == resp):
            # sev_handle_vmgexit: !PAGE_ALIGNED(exit_info_1/2) || exit_info_1 == exit_info_2
            return _bad_input(cpu, GHCB_ERR_INVALID_INPUT, "request/response pages")
    _set(cpu, 0, 0, rbx=False)  # svm_vmgexit_success(svm, 0) before the switch
    if cpu.ghcb.get("msg_type", SNP_MSG_REPORT_REQ) != SNP_MSG_REPORT_REQ:
        return _firmware(cpu, "; not a report request, no certificates")
    if "rax" not in cpu.regs or "rbx" not in cpu.regs or cpu.regs["rax"] % PAGE_SIZE:
        # !kvm_ghcb_rax_is_valid || !kvm_ghcb_rbx_is_valid || !PAGE_ALIGNED(data_gpa)
        if gen == _V1:  # v1 3/5: goto abort_request, SNP_GUEST_VMM_ERR_GENERIC (BIT(31))
            return _vmm_error(cpu, SNP_GUEST_VMM_ERR_GENERIC_V1, v1=True)
        return _bad_input(cpu, GHCB_ERR_INVALID_INPUT, "RAX/RBX not valid or RAX not aligned")
    gpa, npages = cpu.regs["rax"] & _U64_MAX, cpu.regs["rbx"] & _U64_MAX
    if not ctx.vm_state.get(REQ_CERTS_ENABLED) or (
        ctx.released and not ctx.has(kernels.SNP_REQ_CERTS_EXIT)
    ):
        return _empty_table(ctx, cpu, gpa, npages)
    return _req_certs_exit(ctx, gpa, npages)


def _empty_table(ctx: KernelContext, cpu: GuestCpu, gpa: int, npages: int) -> GuestView:
    """Certificates not enabled: 24 zero bytes at RAX if RBX != 0, then the firmware."""
    if npages:
        if not ctx.memory.contains(gpa, len(EMPTY_CERT_TABLE)):
            if ctx.generation == _V1:  # v1 3/5: kvm_write_guest fails -> abort_request
                return _vmm_error(cpu, SNP_GUEST_VMM_ERR_GENERIC_V1, v1=True)
            # snp_handle_ext_guest_req: "if (data_npages && kvm_clear_guest(kvm, data_gpa,
            # 24)) return -EIO;" -- KVM_RUN fails, the guest gets no answer
            raise KvmRunRejected(
                f"kvm_clear_guest({gpa:#x}, 24) fails: the certificate buffer is not guest "
                "memory; KVM_RUN returns -EIO",
                errno.EIO,
            )
        ctx.memory.write(gpa, EMPTY_CERT_TABLE)
    return _firmware(cpu, "; certificate requests not enabled, empty table")


#: generation → (exit number, layout, address field, npages mask) of its certificate exit;
#: v1 5/5 and v2 write ``coco.nr`` too. Releases: exit 43, ``gpa``.
_REQ_CERTS_EXITS: dict[str, tuple[int, type[CStruct], str, int]] = {
    _V1: (KVM_EXIT_COCO, KvmExitCocoV1, "gfn", 0xFFFFFFFF),
    "kvm-exit-coco-v2": (KVM_EXIT_COCO, KvmExitCocoV2, "gfn", 0xFFFFFFFF),
    **dict.fromkeys(
        _U32_LAYOUTS, (KVM_EXIT_SNP_REQ_CERTS_V3, KvmExitSnpReqCertsV3, "gfn", 0xFFFFFFFF)
    ),
    "snp-req-certs-v6": (KVM_EXIT_SNP_REQ_CERTS_V3, KvmExitSnpReqCertsV6, "gfn", _U64_MAX),
    "snp-req-certs-v7": (KVM_EXIT_SNP_REQ_CERTS_V7, KvmExitSnpReqCerts, "gpa", _U64_MAX),
}
_RELEASED_EXIT = (KVM_EXIT_SNP_REQ_CERTS, KvmExitSnpReqCerts, "gpa", _U64_MAX)


def _req_certs_exit(ctx: KernelContext, gpa: int, npages: int) -> ExitImage:
    """The certificate exit of ``ctx.generation``: the fields its handler sets, ``ret`` = 0."""
    reason, layout, address, mask = _REQ_CERTS_EXITS.get(ctx.generation, _RELEASED_EXIT)
    fields: dict[str, int | tuple[int, ...]] = {
        address: gpa >> PAGE_SHIFT if address == "gfn" else gpa,  # gpa_to_gfn(data_gpa)
        "npages": npages & mask,
        "ret": 0,
    }
    if layout in (KvmExitCocoV1, KvmExitCocoV2):  # KVM_EXIT_COCO and v3..v6 share 40
        fields["nr"] = KVM_EXIT_COCO_REQ_CERTS
        write_exit(ctx.run, reason, layout, fields)
        return ExitImage("KVM_EXIT_COCO/KVM_EXIT_COCO_REQ_CERTS", reason)
    write_exit(ctx.run, reason, layout, fields)
    return ExitImage("KVM_EXIT_SNP_REQ_CERTS", reason)


def _ext_resume(ctx: KernelContext, cpu: GuestCpu) -> GuestView:
    run, gen = ctx.run, ctx.generation
    if gen == _V1:
        npages, ret = struct.unpack_from("<II", run, run_offset(KvmExitCocoV1, "npages"))
        # [PATCH v1 5/5] snp_complete_req_certs: INVALID_LEN sets RBX; any other non-zero
        # ret becomes SNP_GUEST_VMM_ERR_GENERIC (BIT(31)); ret is not passed through.
        if ret == 0:
            return _firmware(cpu, "")
        if ret == KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN:
            cpu.regs["rbx"] = npages
            return _vmm_error(cpu, SNP_GUEST_VMM_ERR_INVALID_LEN, v1=True)
        return _vmm_error(cpu, SNP_GUEST_VMM_ERR_GENERIC_V1, v1=True)
    if gen == "kvm-exit-coco-v2":
        ret = _U32.unpack_from(run, run_offset(KvmExitCocoV2, "ret"))[0]
        npages = _U32.unpack_from(run, run_offset(KvmExitCocoV2, "npages"))[0]
    elif gen in _U32_LAYOUTS:
        npages, ret = struct.unpack_from("<II", run, run_offset(KvmExitSnpReqCertsV3, "npages"))
    else:  # v6, v7, released: the same u64 npages/ret offsets
        npages, ret = struct.unpack_from("<QQ", run, run_offset(KvmExitSnpReqCerts, "npages"))
    if ret == 0:
        return _firmware(cpu, "")
    if ret == Errno.ENOSPC:
        cpu.regs["rbx"] = npages  # vcpu->arch.regs[VCPU_REGS_RBX] = snp_req_certs.npages
        return _vmm_error(cpu, SNP_GUEST_VMM_ERR_INVALID_LEN)
    if ret == Errno.EAGAIN:
        return _vmm_error(cpu, SNP_GUEST_VMM_ERR_BUSY)
    if ret == Errno.EIO or gen in _LENIENT:
        return _vmm_error(cpu, SNP_GUEST_VMM_ERR_GENERIC)
    raise KvmRunRejected(
        f"snp_complete_req_certs: ret={ret} is not 0, ENOSPC, EAGAIN or EIO; KVM_RUN fails "
        "with EINVAL"
    )


# -- termination ------------------------------------------------------------------------------


def _term_msr(ctx: KernelContext, cpu: GuestCpu) -> ExitImage:
    """``out_terminate``: data[0] = control->ghcb_gpa, the GHCB MSR value."""
    return _sev_term(ctx, cpu.ghcb.get("msr", 0))


def _term_ghcb(ctx: KernelContext, cpu: GuestCpu) -> ExitImage:
    """``SVM_VMGEXIT_TERM_REQUEST``: data[0] = control->ghcb_gpa, the GHCB page GPA."""
    return _sev_term(ctx, cpu.ghcb.get("ghcb_gpa", 0))


def _sev_term(ctx: KernelContext, value: int) -> ExitImage:
    fields: dict[str, int | tuple[int, ...]] = {
        "type": int(SystemEventType.SEV_TERM),
        "ndata": 1,
        "data": (value & _U64_MAX,),
    }
    write_exit(ctx.run, KvmExitReason.SYSTEM_EVENT, KvmSystemEventExit, fields)
    return ExitImage("KVM_EXIT_SYSTEM_EVENT/KVM_SYSTEM_EVENT_SEV_TERM", KvmExitReason.SYSTEM_EVENT)


# -- snp.kvm_hypercall: VMMCALL through the GHCB, x86.c's PV path ------------------------------


def _hypercall_enter(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    if "rax" not in cpu.regs:  # sev_es_are_required_ghcb_fields_valid: RAX and CPL for VMMCALL
        return _bad_input(cpu, GHCB_ERR_MISSING_INPUT, "RAX not marked valid")
    _set(cpu, 0, 0, rbx=False)  # svm_vmgexit_success(svm, 0)
    args = (cpu.reg("rbx"), cpu.reg("rcx"), cpu.reg("rdx"))
    exited = pv_hypercall(
        ctx.run,
        cpu.regs["rax"],
        args,
        cpl=cpu.ghcb.get("cpl", 0),
        exit_enabled=bool(ctx.vm_state.get(EXIT_HYPERCALL, True)),
    )
    if exited:
        return ExitImage(
            "KVM_EXIT_HYPERCALL/KVM_HC_MAP_GPA_RANGE (PV VMMCALL)", KvmExitReason.HYPERCALL
        )
    return _hypercall_resume(ctx, cpu)


def _hypercall_resume(ctx: KernelContext, cpu: GuestCpu) -> GuestView:
    """x86.c ``complete_hypercall_exit()``: RAX <- hypercall.ret, verbatim (64-bit guest)."""
    ret = hypercall_ret(ctx.run)
    cpu.regs["rax"] = ret
    return GuestView({"rax": ret}, f"RAX={ret:#x} (hypercall.ret as written, no errno check)")


#: The SNP calls the kernel model runs.
MODEL = ModelPart(
    vendor="snp",
    registers=X86_64_REGISTERS,
    calls=(
        GuestCall(
            name="snp.ext_guest_request",
            description="SVM_VMGEXIT_EXT_GUEST_REQUEST: certificates via KVM_EXIT_SNP_REQ_CERTS "
            "(sev.c snp_handle_ext_guest_req, snp_complete_req_certs; kernel-abi.md §3.1, §3.2)",
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
        PSC_MSR_CALL,
        PSC_CALL,
        GuestCall(
            name="snp.term_msr",
            description="GHCB_MSR_TERM_REQ: KVM_SYSTEM_EVENT_SEV_TERM, data[0] = MSR value "
            "(sev.c out_terminate)",
            enter=_term_msr,
            resume=None,
            examples=(CallExample(name="reason set 1", ghcb={"msr": 0x100 | 1 << 12}),),
        ),
        GuestCall(
            name="snp.term_ghcb",
            description="SVM_VMGEXIT_TERM_REQUEST: KVM_SYSTEM_EVENT_SEV_TERM, data[0] = GHCB GPA "
            "(sev.c sev_handle_vmgexit)",
            enter=_term_ghcb,
            resume=None,
            examples=(CallExample(name="GHCB at 0x3000", ghcb={"ghcb_gpa": 0x3000}),),
        ),
        GuestCall(
            name="snp.kvm_hypercall",
            description="SVM_EXIT_VMMCALL: KVM's PV hypercall; KVM_HC_MAP_GPA_RANGE exits, RAX <- "
            "hypercall.ret verbatim (x86.c ____kvm_emulate_hypercall, complete_hypercall_exit)",
            enter=_hypercall_enter,
            resume=_hypercall_resume,
            examples=(
                CallExample(
                    name="MAP_GPA_RANGE: one page to private",
                    regs={
                        "rax": HypercallNr.MAP_GPA_RANGE,
                        "rbx": 0x100000,
                        "rcx": 1,
                        "rdx": MapGpaRangeAttr.ENCRYPTED,
                    },
                ),
            ),
        ),
    ),
)
