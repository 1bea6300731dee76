# SPDX-License-Identifier: Apache-2.0
"""SNP error spaces: what userspace writes, and what the guest then sees in its GHCB.

Two kinds of space, for each ABI revision (docs/reference/kernel-abi.md §3.2, §3.3, §3.4, §5):

* what userspace writes into ``kvm_run`` (``snp.req_certs``: positive errno that KVM
  translates and otherwise rejects; the proposals' ``snp.coco_v1``/``snp.req_certs_v2``);
* what lands in the guest's GHCB ``SW_EXITINFO2`` after KVM translated it
  (``snp.ghcb_vmm``, ``snp.ghcb_vmm_v1``, ``snp.psc``). These are
  :attr:`~coco_core.errorspace.Landing.GUEST_REGISTER` spaces: a trace uses them to show
  what the guest saw; no decoder writes them.

``SW_EXITINFO2`` of a guest request is ``SNP_GUEST_ERR(vmm_err, fw_err)`` =
``vmm_err << 32 | fw_err`` (include/uapi/linux/sev-guest.h); :func:`decode_exitinfo2` and
:func:`encode_exitinfo2` take it apart and put it together.
"""

from __future__ import annotations

import attrs

from coco_core.plugin import CoCoStatus, Errno, ErrorSpace, Landing
from coco_snp.uapi import (
    GHCB_MSR_PSC_RESP,
    GHCB_MSR_PSC_RESP_ERROR,
    KVM_EXIT_COCO_REQ_CERTS_ERR_GENERIC,
    KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN,
)

__all__ = [
    "GHCB_ERR_INVALID_INPUT",
    "GHCB_MSR_PSC",
    "GHCB_VMM",
    "GHCB_VMM_V1",
    "PSC",
    "REQ_CERTS",
    "REQ_CERTS_COCO_V1",
    "REQ_CERTS_ERRNO_V2",
    "SNP_GUEST_FW_ERR_MASK",
    "SNP_GUEST_VMM_ERR_BUSY",
    "SNP_GUEST_VMM_ERR_GENERIC",
    "SNP_GUEST_VMM_ERR_GENERIC_V1",
    "SNP_GUEST_VMM_ERR_INVALID_LEN",
    "SNP_GUEST_VMM_ERR_SHIFT",
    "VMGEXIT_PSC_ERROR_GENERIC",
    "VMGEXIT_PSC_ERROR_INVALID_ENTRY",
    "VMGEXIT_PSC_ERROR_INVALID_HDR",
    "ExitInfo2",
    "decode_exitinfo2",
    "encode_exitinfo2",
]

# -- include/uapi/linux/sev-guest.h (kernel-abi.md §3.3, VERIFIED) ------------------------

SNP_GUEST_FW_ERR_MASK = 0xFFFFFFFF  # SNP_GUEST_FW_ERR_MASK = GENMASK_ULL(31, 0)
SNP_GUEST_VMM_ERR_SHIFT = 32  # SNP_GUEST_VMM_ERR_SHIFT
SNP_GUEST_VMM_ERR_INVALID_LEN = 1  # SNP_GUEST_VMM_ERR_INVALID_LEN
SNP_GUEST_VMM_ERR_BUSY = 2  # SNP_GUEST_VMM_ERR_BUSY
#: ``SNP_GUEST_VMM_ERR_GENERIC`` = ``(~0U)``: uapi in v2..v6, KVM-private in sev.c since v7.
SNP_GUEST_VMM_ERR_GENERIC = 0xFFFFFFFF  # SNP_GUEST_VMM_ERR_GENERIC
#: v1's ``SNP_GUEST_VMM_ERR_GENERIC`` = ``BIT(31)`` (proposed uapi, kernel-abi.md §3.3).
SNP_GUEST_VMM_ERR_GENERIC_V1 = 1 << 31  # SNP_GUEST_VMM_ERR_GENERIC (v1)

#: ``GHCB_ERR_INVALID_INPUT`` (arch/x86/include/asm/sev-common.h): KVM's answer, in
#: SW_EXITINFO2 with SW_EXITINFO1 = 2, to a malformed request it refuses without an exit.
GHCB_ERR_INVALID_INPUT = 5  # GHCB_ERR_INVALID_INPUT

# -- arch/x86/include/asm/sev-common.h (kernel-abi.md §3.4, VERIFIED) --------------------

VMGEXIT_PSC_ERROR_GENERIC = 0x100 << 32  # VMGEXIT_PSC_ERROR_GENERIC (0x100UL << 32)
VMGEXIT_PSC_ERROR_INVALID_HDR = (1 << 32) | 1  # VMGEXIT_PSC_ERROR_INVALID_HDR
VMGEXIT_PSC_ERROR_INVALID_ENTRY = (1 << 32) | 2  # VMGEXIT_PSC_ERROR_INVALID_ENTRY


def _others_to(target: CoCoStatus, *primary: CoCoStatus) -> dict[CoCoStatus, CoCoStatus]:
    return {s: target for s in CoCoStatus if s not in primary and s is not target}


# -- what userspace writes -----------------------------------------------------------------

#: ``kvm_run.snp_req_certs.ret`` (Linux 7.0+): positive errno, translated by
#: ``snp_complete_req_certs()``; anything else fails KVM_RUN with EINVAL (§3.2).
REQ_CERTS = ErrorSpace(
    id="snp.req_certs",
    title="kvm_run.snp_req_certs.ret, positive errno translated by KVM (Linux 7.0+)",
    width=64,
    landing=Landing.KVM_RUN_TRANSLATED,
    names={0: "0", Errno.EIO: "EIO", Errno.EAGAIN: "EAGAIN", Errno.ENOSPC: "ENOSPC"},
    primary={
        CoCoStatus.OK: 0,
        CoCoStatus.BUFFER_TOO_SMALL: Errno.ENOSPC,
        CoCoStatus.RETRY: Errno.EAGAIN,
        CoCoStatus.ERROR: Errno.EIO,
    },
    fallbacks=_others_to(
        CoCoStatus.ERROR, CoCoStatus.OK, CoCoStatus.BUFFER_TOO_SMALL, CoCoStatus.RETRY
    ),
    kernel_accepts=frozenset({0, Errno.EIO, Errno.EAGAIN, Errno.ENOSPC}),
    source="Documentation/virt/kvm/api.rst KVM_EXIT_SNP_REQ_CERTS; arch/x86/kvm/svm/sev.c "
    "snp_complete_req_certs (Linux 7.0+, [PATCH v7 1/2] 2026-01-09)",
)

#: ``kvm_run.coco.req_certs.ret`` of the v1 proposal: KVM-defined codes with the GHCB's
#: values (the "hybrid" space Sean objected to, §5 item 2). [PATCH v1 5/5]
#: ``snp_complete_req_certs()``: ERR_INVALID_LEN sets RBX and INVALID_LEN, any other
#: non-zero value becomes SNP_GUEST_VMM_ERR_GENERIC; nothing is rejected. No BUSY: RETRY
#: falls back to GENERIC.
REQ_CERTS_COCO_V1 = ErrorSpace(
    id="snp.coco_v1",
    title="kvm_run.coco.req_certs.ret (KVM_EXIT_COCO v1 proposal, 2024-06-21)",
    width=32,
    landing=Landing.KVM_RUN_TRANSLATED,
    names={
        0: "0",
        KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN: "KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN",
        KVM_EXIT_COCO_REQ_CERTS_ERR_GENERIC: "KVM_EXIT_COCO_REQ_CERTS_ERR_GENERIC",
    },
    primary={
        CoCoStatus.OK: 0,
        CoCoStatus.BUFFER_TOO_SMALL: KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN,
        CoCoStatus.ERROR: KVM_EXIT_COCO_REQ_CERTS_ERR_GENERIC,
    },
    fallbacks=_others_to(CoCoStatus.ERROR, CoCoStatus.OK, CoCoStatus.BUFFER_TOO_SMALL),
    source="[PATCH v1] SEV-SNP: Add KVM support for attestation and KVM_EXIT_COCO, 2024-06-21 "
    "(docs/reference/kernel-abi.md §5 item 1)",
)

#: ``ret`` of the v2..v5 proposals: errno, ENOSPC and EAGAIN mapped, any other non-zero
#: value the generic error ([PATCH v5 1/1] ``snp_complete_req_certs()``; v3 and v4 INFERRED
#: to keep it). v6 has the strict switch (``REQ_CERTS``), asked for in the v5 review.
REQ_CERTS_ERRNO_V2 = ErrorSpace(
    id="snp.req_certs_v2",
    title="req_certs ret as errno, other non-zero values generic (proposals v2..v5)",
    width=32,
    landing=Landing.KVM_RUN_TRANSLATED,
    names={0: "0", Errno.EIO: "EIO", Errno.EAGAIN: "EAGAIN", Errno.ENOSPC: "ENOSPC"},
    primary={
        CoCoStatus.OK: 0,
        CoCoStatus.BUFFER_TOO_SMALL: Errno.ENOSPC,
        CoCoStatus.RETRY: Errno.EAGAIN,
        CoCoStatus.ERROR: Errno.EIO,
    },
    fallbacks=_others_to(
        CoCoStatus.ERROR, CoCoStatus.OK, CoCoStatus.BUFFER_TOO_SMALL, CoCoStatus.RETRY
    ),
    source="KVM_EXIT_COCO v2 2024-11-19 <20241119133513.3612633-*>; KVM_EXIT_SNP_REQ_CERTS "
    "v3..v5 (v5: <20250219151505.3538323-2-michael.roth@amd.com>)",
)

# -- what the guest sees -------------------------------------------------------------------

#: The guest request's SW_EXITINFO2 after KVM translated ``snp_req_certs.ret`` (§3.2 table).
GHCB_VMM = ErrorSpace(
    id="snp.ghcb_vmm",
    title="guest SW_EXITINFO2 = VMM error << 32 | firmware error (SNP guest request)",
    width=64,
    landing=Landing.GUEST_REGISTER,
    names={
        0: "0",
        SNP_GUEST_VMM_ERR_INVALID_LEN << 32: "SNP_GUEST_VMM_ERR_INVALID_LEN",
        SNP_GUEST_VMM_ERR_BUSY << 32: "SNP_GUEST_VMM_ERR_BUSY",
        SNP_GUEST_VMM_ERR_GENERIC << 32: "SNP_GUEST_VMM_ERR_GENERIC",
    },
    primary={
        CoCoStatus.OK: 0,
        CoCoStatus.BUFFER_TOO_SMALL: SNP_GUEST_VMM_ERR_INVALID_LEN << 32,
        CoCoStatus.RETRY: SNP_GUEST_VMM_ERR_BUSY << 32,
        CoCoStatus.ERROR: SNP_GUEST_VMM_ERR_GENERIC << 32,
    },
    fallbacks=_others_to(
        CoCoStatus.ERROR, CoCoStatus.OK, CoCoStatus.BUFFER_TOO_SMALL, CoCoStatus.RETRY
    ),
    source="include/uapi/linux/sev-guest.h SNP_GUEST_ERR, SNP_GUEST_VMM_ERR_*; "
    "arch/x86/kvm/svm/sev.c SNP_GUEST_VMM_ERR_GENERIC (~0U) (Linux 7.0+)",
)

#: What the guest saw under the v1 proposal: GENERIC was ``BIT(31)`` ([PATCH v1 1/5]
#: sev-guest.h); [PATCH v1 5/5] wrote INVALID_LEN or GENERIC, never ``ret`` itself.
GHCB_VMM_V1 = ErrorSpace(
    id="snp.ghcb_vmm_v1",
    title="guest SW_EXITINFO2 under the KVM_EXIT_COCO v1 proposal (GENERIC = BIT(31))",
    width=64,
    landing=Landing.GUEST_REGISTER,
    names={
        0: "0",
        SNP_GUEST_VMM_ERR_INVALID_LEN << 32: "SNP_GUEST_VMM_ERR_INVALID_LEN",
        SNP_GUEST_VMM_ERR_GENERIC_V1 << 32: "SNP_GUEST_VMM_ERR_GENERIC",
    },
    primary={
        CoCoStatus.OK: 0,
        CoCoStatus.BUFFER_TOO_SMALL: SNP_GUEST_VMM_ERR_INVALID_LEN << 32,
        CoCoStatus.ERROR: SNP_GUEST_VMM_ERR_GENERIC_V1 << 32,
    },
    fallbacks=_others_to(CoCoStatus.ERROR, CoCoStatus.OK, CoCoStatus.BUFFER_TOO_SMALL),
    source="[PATCH v1] KVM_EXIT_COCO 2024-06-21, include/uapi/linux/sev-guest.h "
    "SNP_GUEST_VMM_ERR_GENERIC BIT(31) (docs/reference/kernel-abi.md §3.3)",
)

#: The GHCB PSC result in SW_EXITINFO2 (sev-common.h; §3.4). KVM gives GENERIC for any
#: non-zero MAP_GPA_RANGE ret (SNP has no retry); INVALID_HDR/ENTRY are KVM's own checks.
PSC = ErrorSpace(
    id="snp.psc",
    title="guest SW_EXITINFO2 after a GHCB page-state change",
    width=64,
    landing=Landing.GUEST_REGISTER,
    names={
        0: "0",
        VMGEXIT_PSC_ERROR_GENERIC: "VMGEXIT_PSC_ERROR_GENERIC",
        VMGEXIT_PSC_ERROR_INVALID_HDR: "VMGEXIT_PSC_ERROR_INVALID_HDR",
        VMGEXIT_PSC_ERROR_INVALID_ENTRY: "VMGEXIT_PSC_ERROR_INVALID_ENTRY",
    },
    primary={
        CoCoStatus.OK: 0,
        CoCoStatus.INVALID: VMGEXIT_PSC_ERROR_INVALID_HDR,
        CoCoStatus.ERROR: VMGEXIT_PSC_ERROR_GENERIC,
    },
    decodes={VMGEXIT_PSC_ERROR_INVALID_ENTRY: CoCoStatus.INVALID},
    fallbacks=_others_to(CoCoStatus.ERROR, CoCoStatus.OK, CoCoStatus.INVALID),
    source="arch/x86/include/asm/sev-common.h VMGEXIT_PSC_ERROR_*; arch/x86/kvm/svm/sev.c "
    "snp_complete_one_psc",
)

#: The GHCB MSR value after an MSR-protocol page-state change (sev-common.h:
#: ``GHCB_MSR_PSC_RESP`` 0x015, ``GHCB_MSR_PSC_RESP_ERROR`` = BIT_ULL(63) | 0x015).
GHCB_MSR_PSC = ErrorSpace(
    id="snp.ghcb_msr_psc",
    title="guest GHCB MSR after an MSR-protocol page-state change",
    width=64,
    landing=Landing.GUEST_REGISTER,
    names={
        GHCB_MSR_PSC_RESP: "GHCB_MSR_PSC_RESP",
        GHCB_MSR_PSC_RESP_ERROR: "GHCB_MSR_PSC_RESP_ERROR",
    },
    primary={CoCoStatus.OK: GHCB_MSR_PSC_RESP, CoCoStatus.ERROR: GHCB_MSR_PSC_RESP_ERROR},
    fallbacks=_others_to(CoCoStatus.ERROR, CoCoStatus.OK),
    source="arch/x86/include/asm/sev-common.h GHCB_MSR_PSC_RESP, GHCB_MSR_PSC_RESP_ERROR; "
    "arch/x86/kvm/svm/sev.c snp_complete_psc_msr",
)

# -- SW_EXITINFO2 both ways ------------------------------------------------------------------

_VMM_NAMES = {
    0: "0",
    SNP_GUEST_VMM_ERR_INVALID_LEN: "SNP_GUEST_VMM_ERR_INVALID_LEN",
    SNP_GUEST_VMM_ERR_BUSY: "SNP_GUEST_VMM_ERR_BUSY",
    SNP_GUEST_VMM_ERR_GENERIC: "SNP_GUEST_VMM_ERR_GENERIC",
}
_VMM_NAMES_V1 = {
    0: "0",
    SNP_GUEST_VMM_ERR_INVALID_LEN: "SNP_GUEST_VMM_ERR_INVALID_LEN",
    SNP_GUEST_VMM_ERR_GENERIC_V1: "SNP_GUEST_VMM_ERR_GENERIC (v1)",
}


@attrs.frozen
class ExitInfo2:
    """A guest request's ``SW_EXITINFO2``, taken apart.

    :param raw: the 64-bit value.
    :param vmm_error: bits 63:32, the VMM's (KVM's) error.
    :param fw_error: bits 31:0, the firmware's status.
    :param vmm_name: the ``SNP_GUEST_VMM_ERR_*`` name, None if unknown.
    """

    raw: int
    vmm_error: int
    fw_error: int
    vmm_name: str | None

    def __str__(self) -> str:
        vmm = self.vmm_name or f"unknown VMM error {self.vmm_error:#x}"
        return f"SW_EXITINFO2={self.raw:#018x} (vmm {vmm}, firmware {self.fw_error:#x})"


def decode_exitinfo2(raw: int, *, v1: bool = False) -> ExitInfo2:
    """Split a guest request's ``SW_EXITINFO2``; ``v1`` names BIT(31) as GENERIC."""
    raw &= (1 << 64) - 1
    vmm = raw >> SNP_GUEST_VMM_ERR_SHIFT
    names = _VMM_NAMES_V1 if v1 else _VMM_NAMES
    return ExitInfo2(raw, vmm, raw & SNP_GUEST_FW_ERR_MASK, names.get(vmm))


def encode_exitinfo2(vmm_error: int, fw_error: int = 0) -> int:
    """``SNP_GUEST_ERR(vmm_error, fw_error)``; each half is truncated to 32 bits as in C."""
    return ((vmm_error & 0xFFFFFFFF) << SNP_GUEST_VMM_ERR_SHIFT) | (
        fw_error & SNP_GUEST_FW_ERR_MASK
    )
