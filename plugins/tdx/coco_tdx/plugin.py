# SPDX-License-Identifier: Apache-2.0
"""The TDX plugin's registration: vendor, ABIs, error spaces, kernel model, CLI.

For every released kernel with :data:`~coco_core.kernels.TDX_EXIT` (one row of
:data:`coco_core.kernels.RELEASES` each; Linux 6.16 on) the plugin contributes
``KVM_EXIT_TDX`` (40) with its ``tdx`` union member, the ``nr`` discriminator,
decoders for GetQuote, SetupEventNotifyInterrupt, GetTdVmCallInfo and any other
``nr``, the ``KVM_SYSTEM_EVENT_TDX_FATAL`` decoder, and KVM's completion
duties. ``KVM_HC_MAP_GPA_RANGE`` is the core's (vendor ``kvm``); the TDX side
of MapGPA lives in the kernel model (:mod:`coco_tdx.model`).

The 2025 separate-exit proposal is registered as ABI
``tdx-separate-exits-2025`` (``released=False``) so it can be compared.
"""

from __future__ import annotations

from coco_core.plugin import (
    KVM_RUN_FRAME,
    AbiPart,
    CompletionDuty,
    KvmExitReason,
    Registrar,
    hookimpl,
    kernels,
)
from coco_tdx import doorbell
from coco_tdx.complete import PROPOSAL_2025_DECODERS, RELEASED_DECODERS, TDX_NR
from coco_tdx.ghci import GET_QUOTE_STATUS, QGS, TDVMCALL
from coco_tdx.model import MODEL
from coco_tdx.uapi import (
    PROPOSAL_2025_SOURCE,
    PROPOSAL_2025_TDVMCALL_INFO_SOURCE,
    TDX_SOURCE,
    ProposalExit2025,
    proposal_2025_union_members,
    tdx_union_members,
)

__all__ = ["PROPOSAL_2025_ABI", "coco_register_vendor"]

PROPOSAL_2025_ABI = "tdx-separate-exits-2025"

_DUTIES = (
    CompletionDuty(
        exit_name="KVM_EXIT_TDX/*",
        field="kvm_run.tdx.*.ret",
        kernel_action="tdx.*.ret → R10 verbatim (no validation; tdx_complete_simple)",
    ),
    CompletionDuty(
        exit_name="KVM_EXIT_TDX/GET_TD_VM_CALL_INFO",
        field="kvm_run.tdx.get_tdvmcall_info.{ret,r11,r12,r13,r14}",
        kernel_action="ret → R10; get_tdvmcall_info r11..r14 → R11..R14 "
        "(tdx_complete_get_td_vm_call_info); KVM pre-fills SUCCESS and zeros",
    ),
    CompletionDuty(
        exit_name="KVM_EXIT_TDX/unknown",
        field="kvm_run.tdx.unknown.ret",
        kernel_action="unknown nr: leave ret = SUBFUNC_UNSUPPORTED (pre-filled) and re-enter "
        "(api.rst: userspace need not do anything)",
    ),
    CompletionDuty(
        exit_name="KVM_EXIT_SYSTEM_EVENT/KVM_SYSTEM_EVENT_TDX_FATAL",
        field="(none)",
        kernel_action="no completion: the TD does not run again (QEMU treats it as a guest panic)",
    ),
)

_RELEASED_NOTES = (
    "KVM validates only the GetQuote GPA's shared bit (INVALID_OPERAND, no exit) and "
    "the SetupEventNotifyInterrupt vector (32..255); size and alignment are the VMM's job.",
    "GetTdVmCallInfo leaf 0 is answered in the kernel; only leaf 1 exits.",
    "GetQuote is no longer individually enumerable in GetTdVmCallInfo leaf 1 R11 "
    "(<20250717022010.677645-1-xiaoyao.li@intel.com>); SetupEventNotifyInterrupt is BIT(1).",
)


def _released_part(k: kernels.Kernel) -> AbiPart:
    return AbiPart(
        abi=k.name,
        vendor="tdx",
        source=TDX_SOURCE + "; arch/x86/kvm/vmx/tdx.c (kvm-x86), docs/reference/kernel-abi.md §2",
        released=True,
        exits={"KVM_EXIT_TDX": int(KvmExitReason.TDX)},
        union_members=tdx_union_members(),
        error_spaces=(TDVMCALL, GET_QUOTE_STATUS, QGS),
        duties=_DUTIES,
        decoders=RELEASED_DECODERS,
        discriminators=(TDX_NR,),
        notes=_RELEASED_NOTES,
        order=k.date,
    )


def _proposal_part() -> AbiPart:
    return AbiPart(
        abi=PROPOSAL_2025_ABI,
        vendor="tdx",
        source=PROPOSAL_2025_SOURCE,
        released=False,
        exits={f"KVM_EXIT_{e.name}": int(e) for e in ProposalExit2025},
        union_members=proposal_2025_union_members(),
        error_spaces=(TDVMCALL, GET_QUOTE_STATUS, QGS),
        duties=(
            CompletionDuty(
                exit_name="KVM_EXIT_TDX_GET_QUOTE / KVM_EXIT_TDX_SETUP_EVENT_NOTIFY",
                field="kvm_run.tdx_get_quote.ret (setup_event_notify.ret aliases it)",
                kernel_action="ret → R10 verbatim (tdx_complete_tdcall_common)",
            ),
        ),
        decoders=PROPOSAL_2025_DECODERS,
        notes=(
            "Not merged: replaced by the single KVM_EXIT_TDX in Linux 6.16.",
            "Encoded from the 2025-04-02 revision; the February 2025 RFC v1 was not read "
            "(UNVERIFIED that its numbers and layouts match).",
            "KVM did not pre-fill ret in this revision: tdx_get_quote() wrote exit_reason, "
            "gpa and size, tdx_setup_event_notify() exit_reason and vector ([PATCH 1/2] "
            "<20250402001557.173586-2-binbin.wu@linux.intel.com>, [PATCH 2/2] "
            "<20250402001557.173586-3-binbin.wu@linux.intel.com>); ret held what the union "
            "held. Both completed with tdx_complete_tdcall_common(): R10 <- "
            "tdx_get_quote.ret, which setup_event_notify.ret aliases (static_assert).",
            "GetTdVmCallInfo had no exit in this revision (KVM answered leaf 0, "
            "INVALID_OPERAND otherwise). A later RFC gave it its own exit, numbered 41 "
            "after GetQuote moved to 40, and so cannot share this ABI: "
            + PROPOSAL_2025_TDVMCALL_INFO_SOURCE,
            "MapGPA and ReportFatalError: KVM_EXIT_HYPERCALL and KVM_EXIT_SYSTEM_EVENT as "
            "in the released ABI (the core's part is not registered for this name).",
        ),
        order="2025-04",
        frame=KVM_RUN_FRAME,
        renumbers="not merged: 41 and 42 went to KVM_EXIT_ARM_SEA and KVM_EXIT_ARM_LDST64B "
        "(kernel-abi.md §1)",
    )


@hookimpl
def coco_register_vendor(registrar: Registrar) -> None:
    """Register TDX: the vendor, its ABIs, the kernel model and ``coco tdx``."""
    registrar.add_vendor("tdx", "Intel TDX")
    for k in kernels.released():
        if kernels.has(k.name, kernels.TDX_EXIT):
            registrar.add_abi(_released_part(k))
    registrar.add_abi(_proposal_part())
    # The kernel's calls, and the emulated TEE's doorbell routing as a second part.
    registrar.add_model(MODEL)
    registrar.add_model(doorbell.DOORBELL_MODEL)
    registrar.add_scenario(
        "tdx",
        "td-requests",
        "coco_tdx.demo:scenario",
        "event notify, TdVmCallInfo, GetQuote via the development QGS, MapGPA, ReportFatalError",
    )
    registrar.add_command(
        "tdx", "coco_tdx.cli:configure_parser", "Intel TDX: quotes, the development QGS"
    )
