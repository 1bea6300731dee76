# SPDX-License-Identifier: Apache-2.0
"""The ``tdx`` member of ``kvm_run``'s exit union, and the TDVMCALL leaf numbers.

Source: ``include/uapi/linux/kvm.h`` of Linux 6.16 (``KVM_EXIT_TDX`` 40, added by
Paolo Bonzini's consolidation of Binbin Wu's series, commits ``cf207eac06f6``
GetQuote, ``25e8b1dd4883`` GetTdVmCallInfo, ``4580dbef5ce0``
SetupEventNotifyInterrupt), unchanged through Linux 7.2 (linux-libc-dev 7.2.13);
docs/reference/kernel-abi.md §2.1 and §1.3. In ``struct kvm_run`` the member reads::

    /* KVM_EXIT_TDX */
    struct {
            __u64 flags;
            __u64 nr;
            union {
                    struct {
                            __u64 ret;
                            __u64 data[5];
                    } unknown;
                    struct {
                            __u64 ret;
                            __u64 gpa;
                            __u64 size;
                    } get_quote;
                    struct {
                            __u64 ret;
                            __u64 leaf;
                            __u64 r11, r12, r13, r14;
                    } get_tdvmcall_info;
                    struct {
                            __u64 ret;
                            __u64 vector;
                    } setup_event_notify;
            };
    } tdx;

The hot path decodes the flat :class:`KvmTdxExit` (the ``unknown`` view, which
aliases every variant) with one ``unpack_from`` and reads ``data[]`` per ``nr``;
:data:`TDX_LAYOUT` is the nested tree reviewers read (``coco abi offsets``).

The separate-exit proposal of 2025 (not merged) is kept as
:class:`KvmTdxGetQuote2025` and :class:`KvmTdxSetupEventNotify2025`; see
:data:`PROPOSAL_2025_SOURCE` for what was read and what is unverified.
"""

from __future__ import annotations

import enum

from coco_core.plugin import (
    U8,
    U64,
    CStruct,
    Layout,
    c_field,
    c_struct,
    run_offset,
    struct_of,
    union_of,
)

__all__ = [
    "EXIT_REASON_TDCALL",
    "PROPOSAL_2025_SOURCE",
    "PROPOSAL_2025_TDVMCALL_INFO_SOURCE",
    "TDX_DATA_OFFSET",
    "TDX_FLAGS_OFFSET",
    "TDX_LAYOUT",
    "TDX_NR_OFFSET",
    "TDX_RET_OFFSET",
    "TDX_SOURCE",
    "KvmTdxExit",
    "KvmTdxGetQuote2025",
    "KvmTdxSetupEventNotify2025",
    "ProposalExit2025",
    "TdvmcallLeaf",
    "proposal_2025_union_members",
    "tdx_union_members",
]

TDX_SOURCE = "include/uapi/linux/kvm.h, Linux 6.16 (unchanged through 7.2)"


class TdvmcallLeaf(enum.IntEnum):
    """TDG.VP.VMCALL sub-functions (guest R11) KVM forwards or handles.

    Source: ``arch/x86/include/asm/shared/tdx.h`` (Linux 6.16); QEMU
    ``target/i386/kvm/tdx.h``; docs/reference/kernel-abi.md §2.2.
    """

    GET_TD_VM_CALL_INFO = 0x10000  # TDVMCALL_GET_TD_VM_CALL_INFO
    MAP_GPA = 0x10001  # TDVMCALL_MAP_GPA
    GET_QUOTE = 0x10002  # TDVMCALL_GET_QUOTE
    REPORT_FATAL_ERROR = 0x10003  # TDVMCALL_REPORT_FATAL_ERROR
    SETUP_EVENT_NOTIFY_INTERRUPT = 0x10004  # TDVMCALL_SETUP_EVENT_NOTIFY_INTERRUPT


@c_struct("struct kvm_run_tdx", size=0x40, source=TDX_SOURCE)
class KvmTdxExit(CStruct):
    """
    /* KVM_EXIT_TDX, read through its "unknown" view */
    struct {
            __u64 flags;
            __u64 nr;
            union {
                    struct {
                            __u64 ret;
                            __u64 data[5];
                    } unknown;
                    ...
            };
    } tdx;

    ``data[0]`` is ``get_quote.gpa``, ``get_tdvmcall_info.leaf`` and
    ``setup_event_notify.vector``; ``data[1]`` is ``get_quote.size`` and
    ``get_tdvmcall_info.r11``; ``data[2..4]`` are ``r12..r14``.
    """

    flags: int = c_field(U64, offset=0x00)
    nr: int = c_field(U64, offset=0x08)
    ret: int = c_field(U64, offset=0x10)
    data: tuple[int, ...] = c_field(U64, offset=0x18, count=5)


#: ``EXIT_REASON_TDCALL`` (arch/x86/include/uapi/asm/vmx.h, linux-libc-dev 7.2.13): the VMX
#: exit reason in the low half of ``tdh_vp_enter()``'s status for a TDG.VP.VMCALL
#: (tdx.c tdx_to_vmx_exit_reason); with TDX_SUCCESS in the high half it is the whole
#: ``vp_enter_ret`` tdx_handle_exit() passes on to handle_tdvmcall().
EXIT_REASON_TDCALL = 77

#: ``kvm_run.tdx.flags``: offset from the start of ``kvm_run`` (§1.3: 32)
TDX_FLAGS_OFFSET = run_offset(KvmTdxExit, "flags")
#: ``kvm_run.tdx.nr``, the TDVMCALL leaf (guest R11); the dispatch discriminator (§1.3: 40)
TDX_NR_OFFSET = run_offset(KvmTdxExit, "nr")
#: ``kvm_run.tdx.<any>.ret``, the same slot for every variant (§1.3: 48)
TDX_RET_OFFSET = run_offset(KvmTdxExit, "ret")
#: ``kvm_run.tdx.unknown.data[0]`` (= get_quote.gpa, get_tdvmcall_info.leaf, vector) (§1.3: 56)
TDX_DATA_OFFSET = run_offset(KvmTdxExit, "data")


def _tdx_tree() -> Layout:
    """The ``tdx`` member as the header nests it (anonymous union of four views)."""
    unknown = struct_of("struct", [("ret", U64), ("data", U64, 5)])
    get_quote = struct_of("struct", [("ret", U64), ("gpa", U64), ("size", U64)])
    get_tdvmcall_info = struct_of(
        "struct",
        [("ret", U64), ("leaf", U64), ("r11", U64), ("r12", U64), ("r13", U64), ("r14", U64)],
    )
    setup_event_notify = struct_of("struct", [("ret", U64), ("vector", U64)])
    views = union_of(
        "union",
        [
            ("unknown", unknown),
            ("get_quote", get_quote),
            ("get_tdvmcall_info", get_tdvmcall_info),
            ("setup_event_notify", setup_event_notify),
        ],
    )
    return struct_of("struct", [("flags", U64), ("nr", U64), (None, views)], source=TDX_SOURCE)


#: The nested ``tdx`` layout for ``AbiPart.union_members["tdx"]``.
TDX_LAYOUT: Layout = _tdx_tree()


def tdx_union_members() -> dict[str, Layout]:
    """``{"tdx": layout}`` for the released ABIs (Linux 6.16 .. 7.2)."""
    return {"tdx": TDX_LAYOUT}


# -- the 2025 separate-exit proposal (not merged) --------------------------------------

#: Where the proposal's layouts were read. The February 2025 RFC v1 itself was
#: not located; the revision encoded here is the next one.
PROPOSAL_2025_SOURCE = (
    "Binbin Wu, '[PATCH 1/2] KVM: TDX: Handle TDG.VP.VMCALL<GetQuote>' and "
    "'[PATCH 2/2] KVM: TDX: Handle TDG.VP.VMCALL<SetupEventNotifyInterrupt>', "
    "kvm@vger.kernel.org 2025-04-02, <20250402001557.173586-1-binbin.wu@linux.intel.com> "
    "(follows the Feb 2025 RFC v1, which was not read); not merged"
)
#: The later RFC that added GetTdVmCallInfo as its own exit, with GetQuote moved to 40.
PROPOSAL_2025_TDVMCALL_INFO_SOURCE = (
    "Binbin Wu, '[RFC PATCH 3/4] KVM: TDX: Exit to userspace for GetTdVmCallInfo', "
    "kvm@vger.kernel.org 2025-06-10, <20250610021422.1214715-4-binbin.wu@linux.intel.com>: "
    "KVM_EXIT_TDX_GET_QUOTE 40, KVM_EXIT_TDX_GET_TDVMCALL_INFO 41, "
    "struct { __u64 ret; __u64 leaf; __u64 leaf_output[4]; } tdx_get_tdvmcall_info"
)


class ProposalExit2025(enum.IntEnum):
    """Exit numbers of the 2025-04-02 revision (``include/uapi/linux/kvm.h`` in the patch).

    41 and 42 were chosen to leave 40 to ``KVM_EXIT_SNP_REQ_CERTS`` (cover
    letter); a later revision moved GetQuote to 40. Not merged.
    """

    TDX_GET_QUOTE = 41  # KVM_EXIT_TDX_GET_QUOTE
    TDX_SETUP_EVENT_NOTIFY = 42  # KVM_EXIT_TDX_SETUP_EVENT_NOTIFY


@c_struct("struct kvm_run_tdx_get_quote", size=0x18, source=PROPOSAL_2025_SOURCE)
class KvmTdxGetQuote2025(CStruct):
    """
    /* KVM_EXIT_TDX_GET_QUOTE */
    struct {
            __u64 ret;
            __u64 gpa;
            __u64 size;
    } tdx_get_quote;
    """

    ret: int = c_field(U64, offset=0x00)
    gpa: int = c_field(U64, offset=0x08)
    size: int = c_field(U64, offset=0x10)


@c_struct("struct kvm_run_tdx_setup_event_notify", size=0x10, source=PROPOSAL_2025_SOURCE)
class KvmTdxSetupEventNotify2025(CStruct):
    """
    /* KVM_EXIT_TDX_SETUP_EVENT_NOTIFY */
    struct {
            __u64 ret;
            __u8 vector;
    } tdx_setup_event_notify;
    """

    ret: int = c_field(U64, offset=0x00)
    vector: int = c_field(U8, offset=0x08)


def _anon(c: type[CStruct]) -> Layout:
    lay = c.c_layout()
    return Layout("struct", "struct", lay.members, lay.size, lay.align, lay.packed, lay.source)


def proposal_2025_union_members() -> dict[str, Layout]:
    """The proposal's ``kvm_run`` union members (2025-04-02 revision)."""
    return {
        "tdx_get_quote": _anon(KvmTdxGetQuote2025),
        "tdx_setup_event_notify": _anon(KvmTdxSetupEventNotify2025),
    }
