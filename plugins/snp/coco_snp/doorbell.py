# SPDX-License-Identifier: Apache-2.0
"""The SNP doorbell of the emulated TEE: GHCB requests carried in registers.

A guest on the emulated TEE (:mod:`coco_core.emulated.tee`) has no GHCB page and no
GHCB MSR the hypervisor can read, so the GHCB fields travel in registers. It
rings :data:`DOORBELL_PORT` (``0x0CC1``, ``coco_core.emulated.doorbell.DOORBELL_VMGEXIT_PORT``)
where an SNP guest executes ``VMGEXIT``. The convention (this module's own;
the GHCB spec has no register form):

======  ==============================================================  =========
reg     meaning                                                          GHCB field
======  ==============================================================  =========
R12     ``SW_EXITCODE`` (:class:`~coco_snp.uapi.SvmVmgexit`), or
        :data:`MSR_PROTOCOL` (``0xC0010130``, the GHCB MSR number) for
        the GHCB MSR protocol
R11     the GHCB MSR value, in and out (MSR protocol only)                ``msr``
RAX     GHCB RAX: the certificate buffer GPA (extended guest request)    (RAX)
RBX     GHCB RBX: its size in pages, in; pages needed, out               (RBX)
R14     ``SW_EXITINFO1``, in and out (2 = error in SW_EXITINFO2)         ``sw_exitinfo1``
R13     ``SW_EXITINFO2``, in and out (the result the guest checks)       ``sw_exitinfo2``
R15     ``SW_SCRATCH``: the PSC descriptor GPA (``SVM_VMGEXIT_PSC``)     ``sw_scratch``
R10     the GHCB GPA: the page the PSC descriptor must lie in, and       ``ghcb_gpa``
        ``SVM_VMGEXIT_TERM_REQUEST``'s ``data[0]``
======  ==============================================================  =========

:data:`GHCB_TO_REGS` is that table for :attr:`ModelPart.ghcb_to_regs
<coco_core.model.base.ModelPart.ghcb_to_regs>`: the emulated TEE seeds the GHCB
fields from these registers and mirrors them back after the call.

:func:`route`: R12 names the exit code (``SVM_EXIT_VMMCALL`` 0x81 is KVM's PV
hypercall, ``snp.kvm_hypercall``: RAX the number, RBX..RDX the arguments); for the
MSR protocol the low 12 bits of
R11 (``GHCB_MSR_INFO``) name the request (``GHCB_MSR_PSC_REQ`` → ``snp.psc_msr``,
``GHCB_MSR_TERM_REQ`` → ``snp.term_msr``). Anything else goes to
:data:`UNSUPPORTED_CALL`, which answers in the kernel as KVM does
(arch/x86/kvm/svm/sev.c, kvm-x86 @ 1a27afa0):

* an unknown ``SW_EXITCODE``: ``sev_handle_vmgexit()`` ``default:`` →
  ``svm_vmgexit_bad_input(svm, GHCB_ERR_INVALID_EVENT)``: ``SW_EXITINFO1`` = 2,
  ``SW_EXITINFO2`` = ``GHCB_ERR_INVALID_EVENT`` (6);
* an unknown MSR-protocol request: ``sev_handle_vmgexit_msr_protocol()``
  ``default:`` "keep GHCB MSR value as-is": the guest reads back its own
  request code, not the ``*_RESP`` it waits for.
"""

from __future__ import annotations

from coco_core.plugin import (
    DOORBELL_VMGEXIT_PORT,
    GuestCall,
    GuestCpu,
    GuestView,
    KernelContext,
    ModelPart,
)
from coco_snp.uapi import (
    GHCB_ERR_INVALID_EVENT,
    GHCB_HV_RESP_MALFORMED_INPUT,
    GHCB_MSR_INFO_MASK,
    GHCB_MSR_PSC_REQ,
    GHCB_MSR_TERM_REQ,
    SVM_EXIT_VMMCALL,
    SvmVmgexit,
)

__all__ = [
    "DOORBELL_MODEL",
    "DOORBELL_PORT",
    "EXIT_CODES",
    "GHCB_ERR_INVALID_EVENT",
    "GHCB_TO_REGS",
    "MSR_PROTOCOL",
    "MSR_REQUESTS",
    "UNSUPPORTED",
    "UNSUPPORTED_CALL",
    "route",
]

#: the VMGEXIT doorbell port (``coco_core.emulated.doorbell.DOORBELL_VMGEXIT_PORT``)
DOORBELL_PORT = DOORBELL_VMGEXIT_PORT
#: R12 for the GHCB MSR protocol: ``MSR_AMD64_SEV_ES_GHCB`` (arch/x86/include/asm/msr-index.h)
MSR_PROTOCOL = 0xC0010130
_EXITINFO1_ERROR = GHCB_HV_RESP_MALFORMED_INPUT  # SW_EXITINFO1 = 2: error in SW_EXITINFO2
#: the model call that answers registers naming no call
UNSUPPORTED = "snp.unsupported"

#: GHCB field → the register that carries it (see the module table)
GHCB_TO_REGS: dict[str, str] = {
    "msr": "r11",
    "sw_exitinfo1": "r14",
    "sw_exitinfo2": "r13",
    "sw_scratch": "r15",
    "ghcb_gpa": "r10",
}

#: ``SW_EXITCODE`` (R12) → kernel-model call (coco_snp.model)
EXIT_CODES: dict[int, str] = {
    SvmVmgexit.EXT_GUEST_REQUEST: "snp.ext_guest_request",
    SvmVmgexit.PSC: "snp.psc",
    SvmVmgexit.TERM_REQUEST: "snp.term_ghcb",
    SVM_EXIT_VMMCALL: "snp.kvm_hypercall",
}
#: ``GHCB_MSR_INFO`` of the MSR value (R11) → kernel-model call
MSR_REQUESTS: dict[int, str] = {
    GHCB_MSR_PSC_REQ: "snp.psc_msr",
    GHCB_MSR_TERM_REQ: "snp.term_msr",
}


def route(cpu: GuestCpu) -> str | None:
    """The call a doorbell names: by R12, or by the MSR request code; else :data:`UNSUPPORTED`."""
    code = cpu.reg("r12")
    if code == MSR_PROTOCOL:
        return MSR_REQUESTS.get(cpu.reg("r11") & GHCB_MSR_INFO_MASK, UNSUPPORTED)
    return EXIT_CODES.get(code, UNSUPPORTED)


def _enter_unsupported(ctx: KernelContext, cpu: GuestCpu) -> GuestView:
    """KVM's in-kernel answer to an exit code or MSR request it does not know."""
    if cpu.reg("r12") == MSR_PROTOCOL:
        msr = cpu.ghcb.get("msr", cpu.reg("r11"))
        return GuestView({"msr": msr}, f"GHCB MSR={msr:#x} unchanged (unknown MSR request)")
    cpu.ghcb["sw_exitinfo1"] = _EXITINFO1_ERROR
    cpu.ghcb["sw_exitinfo2"] = GHCB_ERR_INVALID_EVENT
    return GuestView(
        {"sw_exitinfo1": _EXITINFO1_ERROR, "sw_exitinfo2": GHCB_ERR_INVALID_EVENT},
        "SW_EXITINFO1=2 SW_EXITINFO2=GHCB_ERR_INVALID_EVENT (unknown exit code)",
    )


UNSUPPORTED_CALL = GuestCall(
    name=UNSUPPORTED,
    description="a VMGEXIT KVM does not know: SW_EXITINFO1=2, SW_EXITINFO2=GHCB_ERR_INVALID_EVENT; "
    "an unknown MSR-protocol request leaves the GHCB MSR as it was (sev.c "
    "sev_handle_vmgexit, sev_handle_vmgexit_msr_protocol)",
    enter=_enter_unsupported,
    resume=None,
)

#: Everything the emulated TEE needs from SNP in one part (register it with
#: ``registrar.add_model(DOORBELL_MODEL)`` next to the kernel model).
DOORBELL_MODEL = ModelPart(
    vendor="snp",
    calls=(UNSUPPORTED_CALL,),
    doorbell_port=DOORBELL_PORT,
    route=route,
    ghcb_to_regs=GHCB_TO_REGS,
)
