# SPDX-License-Identifier: Apache-2.0
"""The core's own plugin: the vendor-neutral exits of every released kernel.

Registered like any plugin (built-ins are plugins too), once per row of
:data:`coco_core.kernels.RELEASES`: the exit numbers the kernel's header
defines, the ``kvm_run`` frame and its generic union members, the generic
decoders (``KVM_EXIT_IO``, the MSR exits, ``KVM_EXIT_MEMORY_FAULT``,
``KVM_EXIT_HYPERCALL`` with ``KVM_HC_MAP_GPA_RANGE`` in the error space of
the kernel's generation) and KVM's completion duties. Vendor plugins add
their own exits to the same ABIs.
"""

from __future__ import annotations

from coco_core import kernels
from coco_core.abi import AbiPart, CompletionDuty
from coco_core.generic.decoders import (
    HYPERCALL_NR,
    IO,
    MEMORY_FAULT,
    RDMSR,
    SYSTEM_EVENT_TYPE,
    WRMSR,
    map_gpa_decoder,
)
from coco_core.generic.kvmerrno import MAP_GPA_RANGE_ERRNO, MAP_GPA_RANGE_LEGACY, MSR_ERROR
from coco_core.generic.uapi import KVM_RUN_FRAME, KvmExitReason, generic_union_members
from coco_core.hookspecs import hookimpl
from coco_core.registry import Registrar

__all__ = ["coco_register_vendor", "generic_part", "released_exits"]


def released_exits(abi: str) -> dict[str, int]:
    """``KVM_EXIT_*`` name → number for a released kernel ABI (up to its ``last_exit``)."""
    top = kernels.kernel(abi).last_exit
    return {f"KVM_EXIT_{r.name}": int(r) for r in KvmExitReason if r <= top}


def _duties(ret_checked: bool) -> tuple[CompletionDuty, ...]:
    map_gpa = CompletionDuty(
        exit_name="KVM_EXIT_HYPERCALL/KVM_HC_MAP_GPA_RANGE",
        field="kvm_run.hypercall.ret",
        kernel_action="TDX: 0 advances (R10=SUCCESS when done, RETRY with R11=next GPA if "
        "events are pending), error sets R10 and R11=next GPA; SNP: 0 marks PSC entries done, "
        "error gives VMGEXIT_PSC_ERROR_GENERIC"
        + ("; EAGAIN gives TDVMCALL RETRY on TDX" if ret_checked else ""),
        rejects="KVM_RUN fails with EINVAL for anything but 0, EINVAL, EAGAIN"
        if ret_checked
        else "any non-zero value is an error",
    )
    msr = CompletionDuty(
        exit_name="KVM_EXIT_X86_RDMSR/WRMSR",
        field="kvm_run.msr.error, kvm_run.msr.data",
        kernel_action="error=1 injects #GP; RDMSR data goes to EDX:EAX",
    )
    fault = CompletionDuty(
        exit_name="KVM_EXIT_MEMORY_FAULT",
        field="(none)",
        kernel_action="KVM_RUN returned -1 with EFAULT/EHWPOISON; userspace converts the range "
        "(KVM_SET_MEMORY_ATTRIBUTES) and re-runs",
    )
    return (map_gpa, msr, fault)


def generic_part(k: kernels.Kernel) -> AbiPart:
    """The core's part of released kernel ``k``."""
    checked = kernels.has(k.name, kernels.MAP_GPA_RANGE_RET_CHECKED)
    return AbiPart(
        abi=k.name,
        vendor="kvm",
        source=f"Linux {k.name.removeprefix('linux-')} ({k.date}), {k.header}",
        released=True,
        exits=released_exits(k.name),
        union_members=generic_union_members(),
        error_spaces=(MAP_GPA_RANGE_ERRNO if checked else MAP_GPA_RANGE_LEGACY, MSR_ERROR),
        duties=_duties(checked),
        decoders=(IO, RDMSR, WRMSR, MEMORY_FAULT, map_gpa_decoder(ret_checked=checked)),
        discriminators=(HYPERCALL_NR, SYSTEM_EVENT_TYPE),
        order=k.date,
        frame=KVM_RUN_FRAME,
    )


@hookimpl
def coco_register_vendor(registrar: Registrar) -> None:
    """Register the generic exits for every released kernel."""
    for k in kernels.released():
        registrar.add_abi(generic_part(k))
