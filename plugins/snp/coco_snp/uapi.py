# SPDX-License-Identifier: Apache-2.0
"""SEV-SNP's part of the KVM uapi, released and proposed, as the headers spell it.

Released (``include/uapi/linux/kvm.h``, Linux 7.0+, confirmed against the Linux 7.2
headers of Debian ``linux-libc-dev`` 7.2.13; docs/reference/kernel-abi.md §3.2, §7):
``KVM_EXIT_SNP_REQ_CERTS`` (43) with ``struct kvm_exit_snp_req_certs`` at offset 32 of
``kvm_run``, enabled per VM with ``KVM_SEV_SNP_ENABLE_REQ_CERTS`` before any vCPU exists.

Proposed and not merged (docs/reference/kernel-abi.md §5, thread "SEV-SNP: Add KVM support for
attestation and KVM_EXIT_COCO" and its successors):

=========  ==========  ==============================  ===================================
revision   date        exit                            layout
=========  ==========  ==============================  ===================================
v1         2024-06-21  ``KVM_EXIT_COCO`` 40            ``nr`` u8, ``req_certs {gfn u64,
                                                       npages u32, ret u32}``, 24 bytes
v2         2024-11-19  ``KVM_EXIT_COCO`` 40            ``nr`` u8, ``ret`` u32 in the header,
                                                       ``req_certs {gfn, npages u32}``, 32 B
v3         2024-12-18  ``KVM_EXIT_SNP_REQ_CERTS`` 40   ``{gfn u64, npages u32, ret u32}``
v4         2025-01-20  ``KVM_EXIT_SNP_REQ_CERTS`` 40   as v3
v5         2025-02-19  ``KVM_EXIT_SNP_REQ_CERTS`` 40   as v3
v6         2025-04-28  ``KVM_EXIT_SNP_REQ_CERTS`` 40   ``{gfn, npages, ret}`` u64
v7         2026-01-09  ``KVM_EXIT_SNP_REQ_CERTS`` 42   ``{gpa, npages, ret}`` u64 (merged as 43)
=========  ==========  ==============================  ===================================

v6 is read from ``[PATCH v6 1/2]`` <20250428195113.392303-2-michael.roth@amd.com> (its
``include/uapi/linux/kvm.h`` hunk: ``__u64 gfn``, ``KVM_EXIT_SNP_REQ_CERTS 40``) and
``[PATCH v6 2/2]`` <20250428195113.392303-3-michael.roth@amd.com>
(``KVM_X86_SEV_SNP_REQ_CERTS 1``); ``gpa`` and attribute 2 came with v7. v3 is
<20241218152226.1113411-1-michael.roth@amd.com>, v4
<20250120215818.522175-2-huibo.wang@amd.com>, v5
<20250219151505.3538323-2-michael.roth@amd.com> (the ABI parts in plugin.py name them).

The C text in each class docstring is the header's (the proposals' flattened
``struct kvm_exit_coco`` members are named as the C members they mirror). The nested
:class:`~coco_core.layout.Layout` trees in :data:`UNION_MEMBERS` are what ``coco abi``
prints (``kvm_run.coco.req_certs.gfn``).
"""

from __future__ import annotations

import enum

from coco_core.plugin import U8, U32, U64, CStruct, Layout, c_field, c_struct, struct_of, union_of

__all__ = [
    "GHCB_ERR_INVALID_EVENT",
    "GHCB_ERR_INVALID_SCRATCH_AREA",
    "GHCB_ERR_MISSING_INPUT",
    "GHCB_HV_RESP_MALFORMED_INPUT",
    "GHCB_HV_RESP_NO_ACTION",
    "GHCB_MSR_INFO_MASK",
    "GHCB_MSR_PSC_REQ",
    "GHCB_MSR_PSC_RESP",
    "GHCB_MSR_PSC_RESP_ERROR",
    "GHCB_MSR_TERM_REASON_MASK",
    "GHCB_MSR_TERM_REASON_POS",
    "GHCB_MSR_TERM_REASON_SET_MASK",
    "GHCB_MSR_TERM_REASON_SET_POS",
    "GHCB_MSR_TERM_REQ",
    "GHCB_SHARED_BUFFER",
    "GHCB_SHARED_BUFFER_END",
    "GHCB_SW_EXITINFO1_OFFSET",
    "GHCB_SW_EXITINFO2_OFFSET",
    "HEADER",
    "KVM_CAP_EXIT_COCO_V1",
    "KVM_CAP_EXIT_COCO_V2",
    "KVM_CAP_EXIT_SNP_REQ_CERTS_V3",
    "KVM_EXIT_COCO",
    "KVM_EXIT_COCO_MAX",
    "KVM_EXIT_COCO_REQ_CERTS",
    "KVM_EXIT_COCO_REQ_CERTS_ERR_GENERIC",
    "KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN",
    "KVM_EXIT_SNP_REQ_CERTS",
    "KVM_EXIT_SNP_REQ_CERTS_V3",
    "KVM_EXIT_SNP_REQ_CERTS_V7",
    "KVM_SEV_SNP_ENABLE_REQ_CERTS",
    "KVM_X86_GRP_SEV",
    "KVM_X86_SEV_SNP_REQ_CERTS",
    "KVM_X86_SEV_SNP_REQ_CERTS_V6",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "SNP_MSG_REPORT_REQ",
    "SNP_REQ_CERTS_VALUES",
    "SVM_EXIT_VMMCALL",
    "UNION_MEMBERS",
    "VMGEXIT_PSC_MAX_COUNT",
    "GhcbTermReasonSet",
    "KvmExitCocoV1",
    "KvmExitCocoV2",
    "KvmExitSnpReqCerts",
    "KvmExitSnpReqCertsV3",
    "KvmExitSnpReqCertsV6",
    "KvmSevCmd",
    "PscOp",
    "SvmVmgexit",
    "TermReasonGeneral",
    "TermReasonLinux",
    "union_members",
]

HEADER = "include/uapi/linux/kvm.h, Linux 7.0+ (checked against linux-libc-dev 7.2.13)"
_V1 = (
    "[PATCH v1] SEV-SNP: Add KVM support for attestation and KVM_EXIT_COCO, 2024-06-21 "
    "(docs/reference/kernel-abi.md §5 item 1)"
)
_V2 = (
    "KVM_EXIT_COCO v2, 2024-11-19, <20241119133513.3612633-*> "
    "(docs/reference/kernel-abi.md §5 item 5)"
)
_V3 = (
    "KVM_EXIT_SNP_REQ_CERTS v3..v5, Dec 2024 - 2025-02-19 (docs/reference/kernel-abi.md §5 item 6)"
)
_V6 = (
    "[PATCH v6 1/2] KVM: Introduce KVM_EXIT_SNP_REQ_CERTS for SNP certificate-fetching, "
    "2025-04-28 <20250428195113.392303-2-michael.roth@amd.com>"
)

# -- pages -------------------------------------------------------------------------------

PAGE_SHIFT = 12  # PAGE_SHIFT (x86: 4 KiB pages; the proposals' gfn is gpa >> 12)
PAGE_SIZE = 1 << PAGE_SHIFT  # PAGE_SIZE

# -- exit numbers and capabilities ------------------------------------------------------

KVM_EXIT_SNP_REQ_CERTS = 43  # KVM_EXIT_SNP_REQ_CERTS (kvm.h, Linux 7.0+; kernel-abi.md §7)
KVM_EXIT_SNP_REQ_CERTS_V7 = 42  # KVM_EXIT_SNP_REQ_CERTS as posted in v7 (2026-01-09, §1.2)
KVM_EXIT_SNP_REQ_CERTS_V3 = 40  # KVM_EXIT_SNP_REQ_CERTS in v3..v6 (v6 1/2 kvm.h hunk; §5 item 6)
KVM_CAP_EXIT_SNP_REQ_CERTS_V3 = 239  # KVM_CAP_EXIT_SNP_REQ_CERTS, v3..v5 (dropped in v6)
KVM_EXIT_COCO = 40  # KVM_EXIT_COCO, v1 and v2 (§5 items 1, 5)
KVM_CAP_EXIT_COCO_V1 = 237  # KVM_CAP_EXIT_COCO, v1 (§5 item 1)
KVM_CAP_EXIT_COCO_V2 = 239  # KVM_CAP_EXIT_COCO, v2 (§5 item 5)
KVM_EXIT_COCO_REQ_CERTS = 0  # KVM_EXIT_COCO_REQ_CERTS (v1, v2: kvm_exit_coco.nr)
KVM_EXIT_COCO_MAX = 1  # KVM_EXIT_COCO_MAX (v1)
KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN = 1  # KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN (v1)
KVM_EXIT_COCO_REQ_CERTS_ERR_GENERIC = 1 << 31  # KVM_EXIT_COCO_REQ_CERTS_ERR_GENERIC (v1)

#: The ``ret`` values ``snp_complete_req_certs()`` accepts (positive errno, kernel-abi.md §3.2):
#: 0, EIO 5, EAGAIN 11, ENOSPC 28 (include/uapi/asm-generic/errno-base.h).
SNP_REQ_CERTS_VALUES = frozenset({0, 5, 11, 28})

# -- enabling (arch/x86/include/uapi/asm/kvm.h, Linux 7.0+; kernel-abi.md §3.2) ----------

KVM_X86_GRP_SEV = 1  # KVM_X86_GRP_SEV
KVM_X86_SEV_SNP_REQ_CERTS = 2  # KVM_X86_SEV_SNP_REQ_CERTS (linux-libc-dev 7.2.13 asm/kvm.h)
#: ``KVM_X86_SEV_SNP_REQ_CERTS`` as v6 posted it ([PATCH v6 2/2], asm/kvm.h hunk): 1; v7
#: took 2 because ``KVM_X86_SNP_POLICY_BITS`` had become 1.
KVM_X86_SEV_SNP_REQ_CERTS_V6 = 1
#: ``enum sev_cmd_id``: KVM_SEV_SNP_LAUNCH_START = 100, _UPDATE 101, _FINISH 102, then
#: KVM_SEV_SNP_ENABLE_REQ_CERTS. COMPUTED from the enum order (kernel-abi.md §3.2), not read
#: as a literal.
KVM_SEV_SNP_ENABLE_REQ_CERTS = 103  # KVM_SEV_SNP_ENABLE_REQ_CERTS

# -- guest messages and VMGEXIT codes ----------------------------------------------------

#: ``SNP_MSG_REPORT_REQ`` = 5: the sixth member of ``enum msg_type`` in
#: arch/x86/include/asm/sev.h (kernel-internal, moved there from the sev-guest driver by
#: "[PATCH v1 2/5] x86/sev: Move sev_guest.h into common SEV header", 2024-06-21; not in
#: any uapi header). The only message type KVM fetches certificates for (sev.c
#: snp_handle_ext_guest_req).
SNP_MSG_REPORT_REQ = 5  # SNP_MSG_REPORT_REQ


#: ``SVM_EXIT_VMMCALL`` (arch/x86/include/uapi/asm/svm.h, linux-libc-dev 7.2.13): the GHCB
#: exit code of a VMMCALL (KVM's PV hypercall), 0x081
SVM_EXIT_VMMCALL = 0x081


class SvmVmgexit(enum.IntEnum):
    """``SVM_VMGEXIT_*`` exit codes (arch/x86/include/uapi/asm/svm.h; kernel-abi.md §3)."""

    PSC = 0x80000010  # SVM_VMGEXIT_PSC
    GUEST_REQUEST = 0x80000011  # SVM_VMGEXIT_GUEST_REQUEST
    EXT_GUEST_REQUEST = 0x80000012  # SVM_VMGEXIT_EXT_GUEST_REQUEST
    TERM_REQUEST = 0x8000FFFE  # SVM_VMGEXIT_TERM_REQUEST


class PscOp(enum.IntEnum):
    """Page-state operations (arch/x86/include/asm/sev-common.h; kernel-abi.md §3.4).

    The MSR protocol (``SNP_PAGE_STATE_*``) and the GHCB PSC entries
    (``VMGEXIT_PSC_OP_*``) use the same numbers.
    """

    PRIVATE = 1  # VMGEXIT_PSC_OP_PRIVATE / SNP_PAGE_STATE_PRIVATE
    SHARED = 2  # VMGEXIT_PSC_OP_SHARED / SNP_PAGE_STATE_SHARED


# -- GHCB MSR protocol (arch/x86/include/asm/sev-common.h) -------------------------------

GHCB_MSR_INFO_MASK = 0xFFF  # GHCB_MSR_INFO_MASK = GENMASK_ULL(11, 0)
GHCB_MSR_PSC_REQ = 0x014  # GHCB_MSR_PSC_REQ
GHCB_MSR_PSC_RESP = 0x015  # GHCB_MSR_PSC_RESP
#: "Set highest bit as a generic error response" (sev-common.h, since the SNP host series).
GHCB_MSR_PSC_RESP_ERROR = (1 << 63) | GHCB_MSR_PSC_RESP  # GHCB_MSR_PSC_RESP_ERROR
GHCB_MSR_TERM_REQ = 0x100  # GHCB_MSR_TERM_REQ
GHCB_MSR_TERM_REASON_SET_POS = 12  # GHCB_MSR_TERM_REASON_SET_POS
GHCB_MSR_TERM_REASON_SET_MASK = 0xF  # GHCB_MSR_TERM_REASON_SET_MASK
GHCB_MSR_TERM_REASON_POS = 16  # GHCB_MSR_TERM_REASON_POS
GHCB_MSR_TERM_REASON_MASK = 0xFF  # GHCB_MSR_TERM_REASON_MASK

#: ``GHCB_ERR_*`` (sev-common.h): the reason in SW_EXITINFO2 when SW_EXITINFO1 is 2
#: (``GHCB_HV_RESP_MALFORMED_INPUT``). ``GHCB_ERR_INVALID_INPUT`` (5) is in coco_snp.ghcb.
GHCB_ERR_INVALID_SCRATCH_AREA = 3  # GHCB_ERR_INVALID_SCRATCH_AREA
GHCB_ERR_MISSING_INPUT = 4  # GHCB_ERR_MISSING_INPUT
GHCB_ERR_INVALID_EVENT = 6  # GHCB_ERR_INVALID_EVENT
#: ``GHCB_HV_RESP_*`` (sev-common.h): SW_EXITINFO1 as KVM answers a GHCB NAE event
#: (sev.c svm_vmgexit_success / _no_action: 0; svm_vmgexit_bad_input: 2).
GHCB_HV_RESP_NO_ACTION = 0  # GHCB_HV_RESP_NO_ACTION
GHCB_HV_RESP_MALFORMED_INPUT = 2  # GHCB_HV_RESP_MALFORMED_INPUT
#: ``struct ghcb`` (arch/x86/include/asm/svm.h): the save area and ``reserved_save``
#: fill 2048 bytes, then ``shared_buffer[GHCB_SHARED_BUF_SIZE]`` (2032) up to
#: ``reserved_0xff0``. A GHCB v2 scratch area must lie in it (sev.c setup_vmgexit_scratch).
GHCB_SHARED_BUFFER = 0x800  # offsetof(struct ghcb, shared_buffer)
GHCB_SHARED_BUFFER_END = GHCB_SHARED_BUFFER + 2032  # offsetof(struct ghcb, reserved_0xff0)
#: ``VMGEXIT_PSC_MAX_COUNT`` (sev-common.h): the GHCB-defined most PSC entries, the
#: ``(2032 - sizeof(struct psc_hdr)) / sizeof(struct psc_entry)`` that fit the shared
#: buffer. (``VMGEXIT_PSC_MAX_ENTRY`` = 64 sizes the Linux guest's own stack buffer.)
VMGEXIT_PSC_MAX_COUNT = 253  # VMGEXIT_PSC_MAX_COUNT

#: Offsets in the GHCB page (GHCB spec 56421, save-area layout; arch/x86/include/asm/svm.h
#: ``struct ghcb_save_area``): ``sw_exit_info_1`` 0x398, ``sw_exit_info_2`` 0x3a0.
GHCB_SW_EXITINFO1_OFFSET = 0x398
GHCB_SW_EXITINFO2_OFFSET = 0x3A0


class GhcbTermReasonSet(enum.IntEnum):
    """Termination reason sets (sev-common.h; GHCB spec 56421 "Termination Request")."""

    GEN = 0  # SEV_TERM_SET_GEN: the GHCB spec's general set
    LINUX = 1  # SEV_TERM_SET_LINUX: set 1 is guest-defined; these are Linux's codes


class TermReasonGeneral(enum.IntEnum):
    """Reason set 0 codes (GHCB spec 56421; sev-common.h)."""

    SEV_ES_GEN_REQ = 0  # GHCB_SEV_ES_GEN_REQ: general termination request
    SEV_ES_PROT_UNSUPPORTED = 1  # GHCB_SEV_ES_PROT_UNSUPPORTED: GHCB protocol not supported
    SNP_UNSUPPORTED = 2  # GHCB_SNP_UNSUPPORTED: SEV-SNP not supported


class TermReasonLinux(enum.IntEnum):
    """Reason set 1 codes as a Linux guest uses them.

    arch/x86/include/asm/sev-common.h (``GHCB_TERM_*``, read in gregkh/linux @ 5ba594f2):
    0..5 since the SNP guest series, 6..9 with the SVSM support, 10 Secure TSC, 11 the
    SVSM calling-area remap.
    """

    REGISTER = 0  # GHCB_TERM_REGISTER: GHCB GPA registration failure
    PSC = 1  # GHCB_TERM_PSC: page state change failure
    PVALIDATE = 2  # GHCB_TERM_PVALIDATE: PVALIDATE failure
    NOT_VMPL0 = 3  # GHCB_TERM_NOT_VMPL0: SNP guest is not running at VMPL-0
    CPUID = 4  # GHCB_TERM_CPUID: CPUID-validation failure
    CPUID_HV = 5  # GHCB_TERM_CPUID_HV: CPUID failure during hypervisor fallback
    SECRETS_PAGE = 6  # GHCB_TERM_SECRETS_PAGE: secrets page failure
    NO_SVSM = 7  # GHCB_TERM_NO_SVSM: SVSM is not advertised in the secrets page
    SVSM_VMPL0 = 8  # GHCB_TERM_SVSM_VMPL0: SVSM is present but has set VMPL to 0
    SVSM_CAA = 9  # GHCB_TERM_SVSM_CAA: SVSM is present but CAA is not page aligned
    SECURE_TSC = 10  # GHCB_TERM_SECURE_TSC: Secure TSC initialization failed
    SVSM_CA_REMAP_FAIL = 11  # GHCB_TERM_SVSM_CA_REMAP_FAIL: SVSM CA could not be remapped


# -- layouts -------------------------------------------------------------------------------


@c_struct("struct kvm_exit_snp_req_certs", size=0x18, source=HEADER)
class KvmExitSnpReqCerts(CStruct):
    """
    struct kvm_exit_snp_req_certs {
            __u64 gpa;
            __u64 npages;
            __u64 ret;
    };
    """

    gpa: int = c_field(U64, offset=0x00)
    npages: int = c_field(U64, offset=0x08)
    ret: int = c_field(U64, offset=0x10)


@c_struct("struct kvm_exit_coco", size=0x18, source=_V1)
class KvmExitCocoV1(CStruct):
    """
    struct kvm_exit_coco {
    #define KVM_EXIT_COCO_REQ_CERTS 0
    #define KVM_EXIT_COCO_MAX       1
            __u8 nr;
            __u8 pad0[7];
            union {
                    struct {
                            __u64 gfn;
                            __u32 npages;
    #define KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN 1
    #define KVM_EXIT_COCO_REQ_CERTS_ERR_GENERIC     (1 << 31)
                            __u32 ret;
                    } req_certs;
            };
    };
    """

    nr: int = c_field(U8, offset=0x00)
    pad0: bytes = c_field(U8, offset=0x01, count=7)
    gfn: int = c_field(U64, offset=0x08)  # req_certs.gfn
    npages: int = c_field(U32, offset=0x10)  # req_certs.npages
    ret: int = c_field(U32, offset=0x14)  # req_certs.ret


@c_struct("struct kvm_exit_coco", size=0x20, source=_V2)
class KvmExitCocoV2(CStruct):
    """
    struct kvm_exit_coco {
            __u8 nr;
            __u8 pad0[7];
            __u32 ret;
            __u32 pad1;
            union {
                    struct {
                            __u64 gfn;
                            __u32 npages;
                    } req_certs;
            };
    };
    """

    nr: int = c_field(U8, offset=0x00)
    pad0: bytes = c_field(U8, offset=0x01, count=7)
    ret: int = c_field(U32, offset=0x08)
    pad1: int = c_field(U32, offset=0x0C)
    gfn: int = c_field(U64, offset=0x10)  # req_certs.gfn
    npages: int = c_field(U32, offset=0x18)  # req_certs.npages


@c_struct("struct kvm_exit_snp_req_certs", size=0x10, source=_V3)
class KvmExitSnpReqCertsV3(CStruct):
    """
    struct kvm_exit_snp_req_certs {
            __u64 gfn;
            __u32 npages;
            __u32 ret;
    };
    """

    gfn: int = c_field(U64, offset=0x00)
    npages: int = c_field(U32, offset=0x08)
    ret: int = c_field(U32, offset=0x0C)


@c_struct("struct kvm_exit_snp_req_certs", size=0x18, source=_V6)
class KvmExitSnpReqCertsV6(CStruct):
    """
    struct kvm_exit_snp_req_certs {
            __u64 gfn;
            __u64 npages;
            __u64 ret;
    };
    """

    gfn: int = c_field(U64, offset=0x00)
    npages: int = c_field(U64, offset=0x08)
    ret: int = c_field(U64, offset=0x10)


@c_struct("struct kvm_sev_cmd", size=0x18, source="arch/x86/include/uapi/asm/kvm.h, Linux 5.x+")
class KvmSevCmd(CStruct):
    """
    struct kvm_sev_cmd {
            __u32 id;
            __u32 pad0;
            __u64 data;
            __u32 error;
            __u32 sev_fd;
    };
    """

    id: int = c_field(U32, offset=0x00)
    pad0: int = c_field(U32, offset=0x04)
    data: int = c_field(U64, offset=0x08)
    error: int = c_field(U32, offset=0x10)
    sev_fd: int = c_field(U32, offset=0x14)


def _coco_v1_tree() -> Layout:
    req = struct_of("struct", [("gfn", U64), ("npages", U32), ("ret", U32)])
    return struct_of(
        "struct kvm_exit_coco",
        [("nr", U8), ("pad0", U8, 7), (None, union_of("union", [("req_certs", req)]))],
        source=_V1,
    )


def _coco_v2_tree() -> Layout:
    req = struct_of("struct", [("gfn", U64), ("npages", U32)])
    return struct_of(
        "struct kvm_exit_coco",
        [
            ("nr", U8),
            ("pad0", U8, 7),
            ("ret", U32),
            ("pad1", U32),
            (None, union_of("union", [("req_certs", req)])),
        ],
        source=_V2,
    )


#: ABI name → ``{kvm_run union member: layout}`` for every SNP ABI this plugin knows.
UNION_MEMBERS: dict[str, dict[str, Layout]] = {
    "released": {"snp_req_certs": KvmExitSnpReqCerts.c_layout()},
    "kvm-exit-coco-v1": {"coco": _coco_v1_tree()},
    "kvm-exit-coco-v2": {"coco": _coco_v2_tree()},
    "snp-req-certs-v3": {"snp_req_certs": KvmExitSnpReqCertsV3.c_layout()},
    "snp-req-certs-v6": {"snp_req_certs": KvmExitSnpReqCertsV6.c_layout()},
}


def union_members(abi: str) -> dict[str, Layout]:
    """The SNP union members of ``abi``: ``released`` (every release with the exit), or a proposal.

    v4 and v5 share v3's layout, v7 the released one.
    """
    if abi in ("released", "snp-req-certs-v7"):
        return dict(UNION_MEMBERS["released"])
    if abi in ("snp-req-certs-v4", "snp-req-certs-v5"):
        return dict(UNION_MEMBERS["snp-req-certs-v3"])
    return dict(UNION_MEMBERS[abi])
