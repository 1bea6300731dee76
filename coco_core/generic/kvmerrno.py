# SPDX-License-Identifier: Apache-2.0
"""The positive-errno spaces KVM translates, and MAP_GPA_RANGE's completion rules.

Upstream converged on one convention for results KVM translates: userspace
writes a *positive* errno into a ``kvm_run`` field, KVM maps it for the guest,
and anything it does not expect fails ``KVM_RUN`` with ``-EINVAL``
(docs/reference/kernel-abi.md §5, "Bottom line"). Values: ``include/uapi/asm-generic/errno-base.h``.
"""

from __future__ import annotations

import enum

from coco_core.errorspace import ErrorSpace, Landing
from coco_core.status import CoCoStatus

__all__ = ["MAP_GPA_RANGE_ERRNO", "MAP_GPA_RANGE_LEGACY", "MSR_ERROR", "Errno"]


class Errno(enum.IntEnum):
    """The errno values KVM's CoCo completions use (asm-generic/errno-base.h)."""

    EIO = 5  # EIO
    EAGAIN = 11  # EAGAIN
    EINVAL = 22  # EINVAL
    ENOSPC = 28  # ENOSPC


#: ``hypercall.ret`` for KVM_HC_MAP_GPA_RANGE from Linux 7.2:
#: ``kvm_is_valid_map_gpa_range_ret(ret) = !ret || ret == EINVAL || ret == EAGAIN``
#: (kvm-x86 misc, 3e2dec1ede0a/5d40e5b49442; docs/reference/kernel-abi.md §2.5, §3.4).
MAP_GPA_RANGE_ERRNO = ErrorSpace(
    id="kvm.map_gpa_range",
    title="KVM_HC_MAP_GPA_RANGE hypercall.ret, positive errno checked by KVM (Linux 7.2+)",
    width=64,
    landing=Landing.KVM_RUN_TRANSLATED,
    names={0: "0", Errno.EAGAIN: "EAGAIN", Errno.EINVAL: "EINVAL"},
    primary={
        CoCoStatus.OK: 0,
        CoCoStatus.RETRY: Errno.EAGAIN,
        CoCoStatus.INVALID: Errno.EINVAL,
    },
    fallbacks={
        CoCoStatus.BUFFER_TOO_SMALL: CoCoStatus.INVALID,
        CoCoStatus.UNSUPPORTED: CoCoStatus.INVALID,
        CoCoStatus.IN_FLIGHT: CoCoStatus.RETRY,
        CoCoStatus.SERVICE_UNAVAILABLE: CoCoStatus.INVALID,
        CoCoStatus.ERROR: CoCoStatus.INVALID,
    },
    kernel_accepts=frozenset({0, Errno.EAGAIN, Errno.EINVAL}),
    source="Documentation/virt/kvm/api.rst KVM_EXIT_HYPERCALL; arch/x86/kvm/x86.h "
    "kvm_is_valid_map_gpa_range_ret (kvm-x86 misc 2026-05-29, Linux 7.2)",
)

#: ``hypercall.ret`` for KVM_HC_MAP_GPA_RANGE on Linux 6.16-7.1: zero is success,
#: any non-zero value is an error (TDX INVALID_OPERAND, SNP PSC GENERIC); no retry.
MAP_GPA_RANGE_LEGACY = ErrorSpace(
    id="kvm.map_gpa_range_legacy",
    title="KVM_HC_MAP_GPA_RANGE hypercall.ret, zero or any error (Linux 6.16-7.1)",
    width=64,
    landing=Landing.KVM_RUN_TRANSLATED,
    names={0: "0", Errno.EINVAL: "EINVAL"},
    primary={CoCoStatus.OK: 0, CoCoStatus.INVALID: Errno.EINVAL},
    fallbacks={
        CoCoStatus.RETRY: CoCoStatus.INVALID,
        CoCoStatus.BUFFER_TOO_SMALL: CoCoStatus.INVALID,
        CoCoStatus.UNSUPPORTED: CoCoStatus.INVALID,
        CoCoStatus.IN_FLIGHT: CoCoStatus.INVALID,
        CoCoStatus.SERVICE_UNAVAILABLE: CoCoStatus.INVALID,
        CoCoStatus.ERROR: CoCoStatus.INVALID,
    },
    source="arch/x86/kvm/vmx/tdx.c tdx_complete_vmcall_map_gpa, arch/x86/kvm/svm/sev.c "
    "snp_complete_psc (Linux 6.16-7.1)",
)

#: ``msr.error`` of a user-space MSR exit: 0 completes, 1 injects #GP
#: (include/uapi/linux/kvm.h, "user -> kernel"; Documentation/virt/kvm/api.rst).
MSR_ERROR = ErrorSpace(
    id="kvm.msr_error",
    title="kvm_run.msr.error for user-space MSR exits",
    width=8,
    landing=Landing.KVM_RUN_TRANSLATED,
    names={0: "0", 1: "#GP"},
    primary={CoCoStatus.OK: 0, CoCoStatus.ERROR: 1},
    fallbacks={
        s: CoCoStatus.ERROR for s in CoCoStatus if s not in (CoCoStatus.OK, CoCoStatus.ERROR)
    },
    source="include/uapi/linux/kvm.h struct kvm_run msr, Linux 5.10+",
)
