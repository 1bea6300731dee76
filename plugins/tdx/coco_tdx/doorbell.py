# SPDX-License-Identifier: Apache-2.0
"""The TDX doorbell of the emulated TEE: which guest call a ``TDG.VP.VMCALL`` names.

A guest on the emulated TEE (:mod:`coco_core.emulated.tee`) sets the registers as
``TDG.VP.VMCALL`` takes them (GHCI 1.5, "TDG.VP.VMCALL Interface") and rings
:data:`DOORBELL_PORT` (``0x0CC0``, ``coco_core.emulated.doorbell.DOORBELL_TDVMCALL_PORT``)
instead of executing ``TDCALL``:

======  =====================================================================
R10     0: a GHCI standard call; non-zero: a KVM hypercall, R10 its number
R11     the leaf (:class:`~coco_tdx.uapi.TdvmcallLeaf`)
R12..   the leaf's arguments, as the GHCI defines them
======  =====================================================================

and reads R10 (status) and R11..R14 (outputs) afterwards, exactly as after
``TDCALL``. Nothing is mirrored from a GHCB (``ghcb_to_regs`` is empty): TDX
passes everything in registers.

:func:`route` maps the leaf to the kernel model's call. R10 ≠ 0 is
``tdx.kvm_hypercall``: ``tdx_to_vmx_exit_reason()`` makes it ``EXIT_REASON_VMCALL``
and ``tdx_emulate_vmcall()`` hands it to KVM's PV hypercall code (arch/x86/kvm/vmx/tdx.c,
kvm-x86 @ 09c6f74e). A leaf the model has no call for goes to
:data:`UNSUPPORTED_CALL`, which answers in the kernel with R10 =
``TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED``, what ``handle_tdvmcall()`` does for a leaf
it does not forward.

Interrupts: ``SetupEventNotifyInterrupt`` is answered and the vector recorded,
but this software KVM does not usefully deliver an injected interrupt to the
demo guests (no IDT, no APIC set up); the guests poll the GetQuote buffer
status instead, which the GHCI allows (the Linux guest polls too).
"""

from __future__ import annotations

from coco_core.plugin import (
    DOORBELL_TDVMCALL_PORT,
    GuestCall,
    GuestCpu,
    GuestView,
    KernelContext,
    ModelPart,
)
from coco_tdx.ghci import TDVMCALL, TdvmcallStatus
from coco_tdx.uapi import TdvmcallLeaf

__all__ = [
    "CALLS",
    "DOORBELL_MODEL",
    "DOORBELL_PORT",
    "GHCB_TO_REGS",
    "KVM_HYPERCALL",
    "UNSUPPORTED",
    "UNSUPPORTED_CALL",
    "route",
]

#: the TDVMCALL doorbell port (``coco_core.emulated.doorbell.DOORBELL_TDVMCALL_PORT``)
DOORBELL_PORT = DOORBELL_TDVMCALL_PORT
#: TDX has no GHCB: nothing to mirror
GHCB_TO_REGS: dict[str, str] = {}
#: the model call that answers registers naming no call
UNSUPPORTED = "tdx.unsupported"

#: the model call for a TDVMCALL with R10 != 0 (KVM's PV hypercall)
KVM_HYPERCALL = "tdx.kvm_hypercall"
#: leaf (R11) → kernel-model call (coco_tdx.model)
CALLS: dict[int, str] = {
    TdvmcallLeaf.GET_TD_VM_CALL_INFO: "tdx.get_tdvmcall_info",
    TdvmcallLeaf.MAP_GPA: "tdx.map_gpa",
    TdvmcallLeaf.GET_QUOTE: "tdx.get_quote",
    TdvmcallLeaf.REPORT_FATAL_ERROR: "tdx.report_fatal_error",
    TdvmcallLeaf.SETUP_EVENT_NOTIFY_INTERRUPT: "tdx.setup_event_notify",
}


def route(cpu: GuestCpu) -> str | None:
    """The call a ``TDG.VP.VMCALL`` names: by R11 when R10 is 0, else KVM's PV hypercall."""
    if cpu.reg("r10") != 0:  # tdvmcall_exit_type() != 0: EXIT_REASON_VMCALL
        return KVM_HYPERCALL
    return CALLS.get(cpu.reg("r11"), UNSUPPORTED)


def _enter_unsupported(ctx: KernelContext, cpu: GuestCpu) -> GuestView:
    """``handle_tdvmcall()`` default: R10 = SUBFUNC_UNSUPPORTED, no exit."""
    status = int(TdvmcallStatus.SUBFUNC_UNSUPPORTED)
    cpu.regs["r10"] = status
    return GuestView({"r10": status}, f"R10={TDVMCALL.name_of(status)}")


UNSUPPORTED_CALL = GuestCall(
    name=UNSUPPORTED,
    description="a TDG.VP.VMCALL leaf KVM does not forward: R10 = SUBFUNC_UNSUPPORTED, "
    "answered in the kernel (tdx.c handle_tdvmcall)",
    enter=_enter_unsupported,
    resume=None,
)

#: Everything the emulated TEE needs from TDX in one part (register it with
#: ``registrar.add_model(DOORBELL_MODEL)`` next to the kernel model).
DOORBELL_MODEL = ModelPart(
    vendor="tdx",
    calls=(UNSUPPORTED_CALL,),
    doorbell_port=DOORBELL_PORT,
    route=route,
    ghcb_to_regs=GHCB_TO_REGS,
)
