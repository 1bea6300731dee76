# SPDX-License-Identifier: Apache-2.0
"""KVM's vendor-neutral side of an exit, for the kernel model: the field writer, the PV hypercall.

:func:`write_exit` writes ``exit_reason`` and only the ``kvm_run`` fields an exit
handler sets. KVM never clears the exit union: every field a handler does not
write keeps what the previous exit (or userspace) left there, e.g. the PSC exits
of ``sev.c`` set ``hypercall.nr``, ``ret`` and ``args[0..2]`` and leave
``args[3..5]`` and ``flags`` alone.

:func:`pv_hypercall` and :func:`hypercall_ret` are the paravirtual
``KVM_HC_MAP_GPA_RANGE`` path of ``arch/x86/kvm/x86.c`` (kvm-x86 @ 1a27afa0):
``____kvm_emulate_hypercall()`` and the ``hypercall.ret`` that
``complete_hypercall_exit()`` copies **verbatim** into the guest (x86.c: RAX, for
an SEV guest's VMMCALL; tdx.c: R10, for a TDX guest's TDVMCALL with R10 ≠ 0,
through ``tdx_emulate_vmcall()``). No errno rule applies on this path in any
release: ``kvm_is_valid_map_gpa_range_ret()`` (arch/x86/kvm/x86.h) is called only
by the SNP PSC and TDX MapGPA completions, so an ``EINVAL`` written by userspace
reaches the guest as 22.

Both callers run a guest with protected state, for which
``is_64_bit_hypercall()`` is true (x86.h: ``guest_state_protected ||
is_64_bit_mode()``): the arguments are not truncated to 32 bits, ``flags`` gets
``KVM_EXIT_HYPERCALL_LONG_MODE`` and the result is not truncated either.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Mapping

from coco_core.generic.uapi import (
    EXIT_REASON,
    EXIT_UNION_OFFSET,
    KVM_EXIT_HYPERCALL_LONG_MODE,
    HypercallNr,
    KvmExitReason,
    KvmHypercallExit,
)
from coco_core.layout import CStruct, CType

__all__ = [
    "KVM_EINVAL",
    "KVM_ENOSYS",
    "KVM_EPERM",
    "KVM_HC_VAPIC_POLL_IRQ",
    "PV_HYPERCALL_ERRORS",
    "hypercall_ret",
    "pv_hypercall",
    "write_exit",
]

#: ``KVM_ENOSYS`` (include/uapi/linux/kvm_para.h, Linux 7.2)
KVM_ENOSYS = 1000
#: ``KVM_EINVAL`` = ``EINVAL`` (kvm_para.h)
KVM_EINVAL = errno.EINVAL
#: ``KVM_EPERM`` = ``EPERM`` (kvm_para.h)
KVM_EPERM = errno.EPERM
#: ``KVM_HC_VAPIC_POLL_IRQ`` (kvm_para.h): answered 0 in the kernel
KVM_HC_VAPIC_POLL_IRQ = 1

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_U64_MAX = (1 << 64) - 1
#: KVM's in-kernel refusals of a PV hypercall as the guest reads them (x86.c ``out:``
#: stores ``-KVM_ENOSYS``, ``-KVM_EINVAL`` or ``-KVM_EPERM`` in an unsigned long)
PV_HYPERCALL_ERRORS = frozenset(-e & _U64_MAX for e in (KVM_ENOSYS, KVM_EINVAL, KVM_EPERM))
_PAGE_SHIFT = 12  # x86 PAGE_SHIFT
_HC_RET = EXIT_UNION_OFFSET + KvmHypercallExit.offset_of("ret")


def write_exit(
    run: bytearray | memoryview,
    reason: int,
    exit_struct: type[CStruct],
    fields: Mapping[str, int | tuple[int, ...]],
) -> None:
    """Write ``exit_reason`` and the named fields of ``exit_struct`` (at kvm_run 32), nothing else.

    An array member takes a tuple of its leading elements (``{"args": (a0, a1, a2)}``
    writes ``args[0..2]`` and leaves ``args[3..5]``).

    :raises ValueError: a field is not a scalar member, or a tuple is longer than the array.
    """
    _U32.pack_into(run, EXIT_REASON, reason)
    layout = exit_struct.c_layout()
    for name, value in fields.items():
        member = layout.member(name)
        if not isinstance(member.type, CType):
            raise ValueError(f"{layout.name}.{name} is not a scalar or an array of scalars")
        values = value if isinstance(value, tuple) else (value,)
        if len(values) > (member.count or 1):
            raise ValueError(f"{layout.name}.{name}: {len(values)} values for {member.count}")
        struct.pack_into(
            f"<{len(values)}{member.type.code}",
            run,
            EXIT_UNION_OFFSET + member.offset,
            *values,
        )


def pv_hypercall(
    run: bytearray | memoryview,
    nr: int,
    args: tuple[int, int, int],
    *,
    cpl: int,
    exit_enabled: bool,
) -> bool:
    """``____kvm_emulate_hypercall()`` for a protected-state guest: True if it exited.

    :param nr: the hypercall number (SEV: RAX; TDX: R10).
    :param args: ``a0``..``a2`` (SEV: RBX, RCX, RDX; TDX: R11, R12, R13).
    :param cpl: the guest's CPL (SEV-ES: the GHCB's CPL field; TDX: 0).
    :param exit_enabled: ``user_exit_on_hypercall(kvm, KVM_HC_MAP_GPA_RANGE)``
        (``KVM_CAP_EXIT_HYPERCALL`` bit 12).
    :returns: True when ``KVM_EXIT_HYPERCALL`` was written into ``run`` (``nr``,
        ``ret`` = 0, ``args[0..2]``, ``flags`` = ``LONG_MODE``); False when KVM
        answered in the kernel, with the answer in ``hypercall.ret`` as x86.c's
        ``out:`` label writes it (``-KVM_EPERM``, ``-KVM_EINVAL``,
        ``-KVM_ENOSYS`` as u64, or 0 for ``KVM_HC_VAPIC_POLL_IRQ``).

    ``KVM_HC_KICK_CPU``, ``CLOCK_PAIRING``, ``SEND_IPI`` and ``SCHED_YIELD`` need
    KVM PV features in the guest's CPUID (``guest_pv_has()``); the model assumes
    none are offered and answers ``-KVM_ENOSYS`` for them, as for any other number.
    """
    nr &= _U64_MAX
    gpa, npages, attrs_ = (a & _U64_MAX for a in args)
    if cpl:
        ret = -KVM_EPERM
    elif nr == KVM_HC_VAPIC_POLL_IRQ:
        ret = 0
    elif nr != HypercallNr.MAP_GPA_RANGE or not exit_enabled:
        ret = -KVM_ENOSYS
    elif gpa % (1 << _PAGE_SHIFT) or not npages or (gpa >> _PAGE_SHIFT) + npages > _U64_MAX:
        # !PAGE_ALIGNED(gpa) || !npages || gpa_to_gfn(gpa) + npages <= gpa_to_gfn(gpa)
        ret = -KVM_EINVAL
    else:
        write_exit(
            run,
            KvmExitReason.HYPERCALL,
            KvmHypercallExit,
            {
                "nr": int(HypercallNr.MAP_GPA_RANGE),
                "ret": 0,
                "args": (gpa, npages, attrs_),
                "flags": KVM_EXIT_HYPERCALL_LONG_MODE,
            },
        )
        return True
    _U64.pack_into(run, _HC_RET, ret & _U64_MAX)
    return False


def hypercall_ret(run: bytearray | memoryview) -> int:
    """``vcpu->run->hypercall.ret``: what ``complete_hypercall_exit()`` hands the guest as is."""
    value: int = _U64.unpack_from(run, _HC_RET)[0]
    return value
