# SPDX-License-Identifier: Apache-2.0
"""``struct kvm_run`` and the generic exits CoCo uses, as the kernel header has them.

Source: ``include/uapi/linux/kvm.h`` and ``arch/x86/include/uapi/asm/kvm_para.h``
of Linux 7.2 (Debian ``linux-libc-dev`` 7.2.13); the numbers below that predate
7.2 are unchanged since the release named in their comment. ``kvm_run`` is the
``mmap`` of a vCPU fd.

This is the only declaration of ``struct kvm_run`` in coco: :class:`KvmRun`,
checked against the C ABI and ctypes at import. Every offset coco reads or
writes is derived from it (:data:`EXIT_REASON`, :data:`EXIT_UNION_OFFSET`,
:func:`run_offset` for a member of an exit struct), and so is
:data:`KVM_RUN_FRAME`, which tells the dispatcher where the exit reason and the
exit union are.

Only vendor-neutral members live here. ``tdx`` and ``snp_req_certs`` belong to
the TDX and SNP plugins, which register them with their ABIs.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from coco_core.abi import RunFrame
from coco_core.errors import LayoutError
from coco_core.layout import (
    U8,
    U16,
    U32,
    U64,
    CStruct,
    Layout,
    MemberSpec,
    c_field,
    c_struct,
    struct_of,
    union_of,
)

__all__ = [
    "EXIT_REASON",
    "EXIT_UNION_OFFSET",
    "EXIT_UNION_SIZE",
    "GENERIC_MEMBERS",
    "IMMEDIATE_EXIT",
    "KVM_EXIT_HYPERCALL_LONG_MODE",
    "KVM_EXIT_IO_IN",
    "KVM_EXIT_IO_OUT",
    "KVM_MEMORY_ATTRIBUTE_PRIVATE",
    "KVM_RUN_FRAME",
    "KVM_RUN_SIZE",
    "PAGE_SIZE",
    "HypercallNr",
    "KvmExitReason",
    "KvmHypercallExit",
    "KvmIoExit",
    "KvmMemoryFaultExit",
    "KvmMsrExit",
    "KvmRun",
    "KvmSystemEventExit",
    "MapGpaRangeAttr",
    "MemoryExitFlag",
    "MsrExitReason",
    "SystemEventType",
    "generic_union_members",
    "kvm_run_layout",
    "run_offset",
]

HEADER = "include/uapi/linux/kvm.h, Linux 7.2"


class KvmExitReason(enum.IntEnum):
    """``KVM_EXIT_*`` (include/uapi/linux/kvm.h, Linux 7.2)."""

    UNKNOWN = 0  # KVM_EXIT_UNKNOWN
    EXCEPTION = 1  # KVM_EXIT_EXCEPTION
    IO = 2  # KVM_EXIT_IO
    HYPERCALL = 3  # KVM_EXIT_HYPERCALL
    DEBUG = 4  # KVM_EXIT_DEBUG
    HLT = 5  # KVM_EXIT_HLT
    MMIO = 6  # KVM_EXIT_MMIO
    IRQ_WINDOW_OPEN = 7  # KVM_EXIT_IRQ_WINDOW_OPEN
    SHUTDOWN = 8  # KVM_EXIT_SHUTDOWN
    FAIL_ENTRY = 9  # KVM_EXIT_FAIL_ENTRY
    INTR = 10  # KVM_EXIT_INTR
    SET_TPR = 11  # KVM_EXIT_SET_TPR
    TPR_ACCESS = 12  # KVM_EXIT_TPR_ACCESS
    S390_SIEIC = 13  # KVM_EXIT_S390_SIEIC
    S390_RESET = 14  # KVM_EXIT_S390_RESET
    DCR = 15  # KVM_EXIT_DCR (deprecated)
    NMI = 16  # KVM_EXIT_NMI
    INTERNAL_ERROR = 17  # KVM_EXIT_INTERNAL_ERROR
    OSI = 18  # KVM_EXIT_OSI
    PAPR_HCALL = 19  # KVM_EXIT_PAPR_HCALL
    S390_UCONTROL = 20  # KVM_EXIT_S390_UCONTROL
    WATCHDOG = 21  # KVM_EXIT_WATCHDOG
    S390_TSCH = 22  # KVM_EXIT_S390_TSCH
    EPR = 23  # KVM_EXIT_EPR
    SYSTEM_EVENT = 24  # KVM_EXIT_SYSTEM_EVENT
    S390_STSI = 25  # KVM_EXIT_S390_STSI
    IOAPIC_EOI = 26  # KVM_EXIT_IOAPIC_EOI
    HYPERV = 27  # KVM_EXIT_HYPERV
    ARM_NISV = 28  # KVM_EXIT_ARM_NISV
    X86_RDMSR = 29  # KVM_EXIT_X86_RDMSR
    X86_WRMSR = 30  # KVM_EXIT_X86_WRMSR
    DIRTY_RING_FULL = 31  # KVM_EXIT_DIRTY_RING_FULL
    AP_RESET_HOLD = 32  # KVM_EXIT_AP_RESET_HOLD
    X86_BUS_LOCK = 33  # KVM_EXIT_X86_BUS_LOCK
    XEN = 34  # KVM_EXIT_XEN
    RISCV_SBI = 35  # KVM_EXIT_RISCV_SBI
    RISCV_CSR = 36  # KVM_EXIT_RISCV_CSR
    NOTIFY = 37  # KVM_EXIT_NOTIFY
    LOONGARCH_IOCSR = 38  # KVM_EXIT_LOONGARCH_IOCSR
    MEMORY_FAULT = 39  # KVM_EXIT_MEMORY_FAULT
    TDX = 40  # KVM_EXIT_TDX (Linux 6.16)
    ARM_SEA = 41  # KVM_EXIT_ARM_SEA
    ARM_LDST64B = 42  # KVM_EXIT_ARM_LDST64B
    SNP_REQ_CERTS = 43  # KVM_EXIT_SNP_REQ_CERTS (Linux 7.0)


class HypercallNr(enum.IntEnum):
    """``KVM_HC_*`` hypercalls that can exit (include/uapi/linux/kvm_para.h)."""

    MAP_GPA_RANGE = 12  # KVM_HC_MAP_GPA_RANGE


class MapGpaRangeAttr(enum.IntFlag):
    """``KVM_MAP_GPA_RANGE_*`` (arch/x86/include/uapi/asm/kvm_para.h, Linux 5.16+)."""

    PAGE_SZ_4K = 0  # KVM_MAP_GPA_RANGE_PAGE_SZ_4K
    PAGE_SZ_2M = 1 << 0  # KVM_MAP_GPA_RANGE_PAGE_SZ_2M
    PAGE_SZ_1G = 1 << 1  # KVM_MAP_GPA_RANGE_PAGE_SZ_1G
    ENCRYPTED = 1 << 4  # KVM_MAP_GPA_RANGE_ENCRYPTED = KVM_MAP_GPA_RANGE_ENC_STAT(1)
    DECRYPTED = 0  # KVM_MAP_GPA_RANGE_DECRYPTED = KVM_MAP_GPA_RANGE_ENC_STAT(0)


#: The x86 base page (SDM vol. 3A, 4.5): the unit of ``KVM_HC_MAP_GPA_RANGE``'s
#: page count and of KVM memory slots.
PAGE_SIZE = 4096

#: ``kvm_run.io.direction`` (include/uapi/linux/kvm.h)
KVM_EXIT_IO_IN = 0  # KVM_EXIT_IO_IN
KVM_EXIT_IO_OUT = 1  # KVM_EXIT_IO_OUT

#: ``KVM_MEMORY_ATTRIBUTE_PRIVATE`` (include/uapi/linux/kvm.h, Linux 6.8+), the
#: attribute ``KVM_SET_MEMORY_ATTRIBUTES`` sets for a private range
KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3

#: ``KVM_EXIT_HYPERCALL_LONG_MODE`` = ``_BITULL(0)`` (arch/x86/include/uapi/asm/kvm.h)
KVM_EXIT_HYPERCALL_LONG_MODE = 1 << 0


class SystemEventType(enum.IntEnum):
    """``KVM_SYSTEM_EVENT_*`` (include/uapi/linux/kvm.h, Linux 7.2)."""

    SHUTDOWN = 1  # KVM_SYSTEM_EVENT_SHUTDOWN
    RESET = 2  # KVM_SYSTEM_EVENT_RESET
    CRASH = 3  # KVM_SYSTEM_EVENT_CRASH
    WAKEUP = 4  # KVM_SYSTEM_EVENT_WAKEUP
    SUSPEND = 5  # KVM_SYSTEM_EVENT_SUSPEND
    SEV_TERM = 6  # KVM_SYSTEM_EVENT_SEV_TERM
    TDX_FATAL = 7  # KVM_SYSTEM_EVENT_TDX_FATAL (Linux 6.16)


class MemoryExitFlag(enum.IntFlag):
    """``KVM_MEMORY_EXIT_FLAG_*`` (include/uapi/linux/kvm.h, Linux 6.8+)."""

    PRIVATE = 1 << 3  # KVM_MEMORY_EXIT_FLAG_PRIVATE


class MsrExitReason(enum.IntFlag):
    """``KVM_MSR_EXIT_REASON_*`` (include/uapi/linux/kvm.h, Linux 5.10+)."""

    INVAL = 1 << 0  # KVM_MSR_EXIT_REASON_INVAL
    UNKNOWN = 1 << 1  # KVM_MSR_EXIT_REASON_UNKNOWN
    FILTER = 1 << 2  # KVM_MSR_EXIT_REASON_FILTER


@c_struct("struct kvm_run", size=0x930, source=HEADER)
class KvmRun(CStruct):
    """
    struct kvm_run {
            /* in */
            __u8 request_interrupt_window;
            __u8 immediate_exit;
            __u8 padding1[6];

            /* out */
            __u32 exit_reason;
            __u8 ready_for_interrupt_injection;
            __u8 if_flag;
            __u16 flags;

            /* in (pre_kvm_run), out (post_kvm_run) */
            __u64 cr8;
            __u64 apic_base;

            union {
                    /* KVM_EXIT_IO, KVM_EXIT_HYPERCALL, ... one struct per exit */
                    /* Fix the size of the union. */
                    char padding[256];
            };

            __u64 kvm_valid_regs;
            __u64 kvm_dirty_regs;
            union {
                    struct kvm_sync_regs regs;
                    char padding[SYNC_REGS_SIZE_BYTES];     /* 2048 */
            } s;
    };

    The exit union is mirrored by its ``char padding[256]`` member (the
    per-exit structs are declared below and laid into it by
    :func:`kvm_run_layout`), ``s`` by its ``padding``. x86-64 has no
    ``psw_mask``/``psw_addr`` before the union (those are s390's).
    """

    request_interrupt_window: int = c_field(U8, offset=0x00)
    immediate_exit: int = c_field(U8, offset=0x01)
    padding1: bytes = c_field(U8, offset=0x02, count=6)
    exit_reason: int = c_field(U32, offset=0x08)
    ready_for_interrupt_injection: int = c_field(U8, offset=0x0C)
    if_flag: int = c_field(U8, offset=0x0D)
    flags: int = c_field(U16, offset=0x0E)
    cr8: int = c_field(U64, offset=0x10)
    apic_base: int = c_field(U64, offset=0x18)
    padding: bytes = c_field(U8, offset=0x20, count=256)
    kvm_valid_regs: int = c_field(U64, offset=0x120)
    kvm_dirty_regs: int = c_field(U64, offset=0x128)
    s: bytes = c_field(U8, offset=0x130, count=2048)


#: offset of ``exit_reason`` (``__u32``) in ``struct kvm_run``
EXIT_REASON = KvmRun.offset_of("exit_reason")
#: offset of ``immediate_exit`` (``__u8``)
IMMEDIATE_EXIT = KvmRun.offset_of("immediate_exit")
#: offset and size of the anonymous exit union
EXIT_UNION_OFFSET = KvmRun.offset_of("padding")
EXIT_UNION_SIZE = KvmRun.size_of("padding")
#: ``sizeof(struct kvm_run)``
KVM_RUN_SIZE = KvmRun.c_size()


@c_struct("struct kvm_run_io", size=0x10, source=HEADER)
class KvmIoExit(CStruct):
    """
    /* KVM_EXIT_IO */
    struct {
    #define KVM_EXIT_IO_IN  0
    #define KVM_EXIT_IO_OUT 1
            __u8 direction;
            __u8 size; /* bytes */
            __u16 port;
            __u32 count;
            __u64 data_offset; /* relative to kvm_run start */
    } io;
    """

    direction: int = c_field(U8, offset=0x00)
    size: int = c_field(U8, offset=0x01)
    port: int = c_field(U16, offset=0x02)
    count: int = c_field(U32, offset=0x04)
    data_offset: int = c_field(U64, offset=0x08)


@c_struct("struct kvm_run_hypercall", size=0x48, source=HEADER)
class KvmHypercallExit(CStruct):
    """
    /* KVM_EXIT_HYPERCALL */
    struct {
            __u64 nr;
            __u64 args[6];
            __u64 ret;
            union {
    #ifndef __KERNEL__
                    __u32 longmode;
    #endif
                    __u64 flags;
            };
    } hypercall;
    """

    nr: int = c_field(U64, offset=0x00)
    args: tuple[int, ...] = c_field(U64, offset=0x08, count=6)
    ret: int = c_field(U64, offset=0x38)
    flags: int = c_field(U64, offset=0x40)


@c_struct("struct kvm_run_system_event", size=0x88, source=HEADER)
class KvmSystemEventExit(CStruct):
    """
    /* KVM_EXIT_SYSTEM_EVENT */
    struct {
            __u32 type;
            __u32 ndata;
            union {
    #ifndef __KERNEL__
                    __u64 flags;
    #endif
                    __u64 data[16];
            };
    } system_event;
    """

    type: int = c_field(U32, offset=0x00)
    ndata: int = c_field(U32, offset=0x04)
    data: tuple[int, ...] = c_field(U64, offset=0x08, count=16)


@c_struct("struct kvm_run_memory_fault", size=0x18, source=HEADER)
class KvmMemoryFaultExit(CStruct):
    """
    /* KVM_EXIT_MEMORY_FAULT */
    struct {
    #define KVM_MEMORY_EXIT_FLAG_PRIVATE	(1ULL << 3)
            __u64 flags;
            __u64 gpa;
            __u64 size;
    } memory_fault;
    """

    flags: int = c_field(U64, offset=0x00)
    gpa: int = c_field(U64, offset=0x08)
    size: int = c_field(U64, offset=0x10)


@c_struct("struct kvm_run_msr", size=0x18, source=HEADER)
class KvmMsrExit(CStruct):
    """
    /* KVM_EXIT_X86_RDMSR / KVM_EXIT_X86_WRMSR */
    struct {
            __u8 error; /* user -> kernel */
            __u8 pad[7];
            __u32 reason; /* kernel -> user */
            __u32 index; /* kernel -> user */
            __u64 data; /* kernel <-> user */
    } msr;
    """

    error: int = c_field(U8, offset=0x00)
    pad: bytes = c_field(U8, offset=0x01, count=7)
    reason: int = c_field(U32, offset=0x08)
    index: int = c_field(U32, offset=0x0C)
    data: int = c_field(U64, offset=0x10)


def _anon(c: type[CStruct]) -> Layout:
    """The layout of ``c`` as an anonymous struct, the way kvm_run nests it."""
    lay = c.c_layout()
    return Layout("struct", "struct", lay.members, lay.size, lay.align, lay.packed, lay.source)


def _hypercall_tree() -> Layout:
    """``hypercall`` with its anonymous ``longmode``/``flags`` union, as C has it."""
    flags_union = union_of("union", [("longmode", U32), ("flags", U64)])
    return struct_of("struct", [("nr", U64), ("args", U64, 6), ("ret", U64), (None, flags_union)])


def _system_event_tree() -> Layout:
    data_union = union_of("union", [("flags", U64), ("data", U64, 16)])
    return struct_of("struct", [("type", U32), ("ndata", U32), (None, data_union)])


def generic_union_members() -> dict[str, Layout]:
    """The union members every x86 ABI has, in the order the header lists them."""
    return {
        "io": _anon(KvmIoExit),
        "hypercall": _hypercall_tree(),
        "system_event": _system_event_tree(),
        "msr": _anon(KvmMsrExit),
        "memory_fault": _anon(KvmMemoryFaultExit),
    }


#: The names of :func:`generic_union_members`: a plugin may not reuse them.
GENERIC_MEMBERS = frozenset(generic_union_members())


def kvm_run_layout(
    extra_members: Mapping[str, Layout] | None = None, *, source: str = HEADER
) -> Layout:
    """``struct kvm_run`` with the generic exits plus ``extra_members`` in its union.

    An ABI adds its own members (``tdx``, ``snp_req_certs``, a proposal's
    ``coco``); the union stays 256 bytes, as ``char padding[256]`` forces.
    Built from :class:`KvmRun`'s members, with its ``padding`` and ``s``
    replaced by the unions they stand for.
    """
    union_members: list[MemberSpec] = [(n, lay) for n, lay in generic_union_members().items()]
    union_members.extend((n, lay) for n, lay in (extra_members or {}).items())
    union_members.append(("padding", U8, EXIT_UNION_SIZE))
    sync = union_of("union", [("padding", U8, KvmRun.size_of("s"))])
    members: list[MemberSpec] = []
    for m in KvmRun.c_layout().members:
        if m.name == "padding":
            members.append((None, union_of("union", union_members)))
        elif m.name == "s":
            members.append(("s", sync))
        else:
            members.append((m.name, m.type, m.count) if m.count else (m.name, m.type))
    return struct_of("struct kvm_run", members, source=source)


def run_offset(struct_cls: type[CStruct], member: str) -> int:
    """The ``kvm_run`` offset of ``member`` of an exit struct that sits in the exit union."""
    return EXIT_UNION_OFFSET + struct_cls.offset_of(member)


def _check_frame() -> None:
    """The tree built by :func:`kvm_run_layout` agrees with the flat :class:`KvmRun`."""
    tree = kvm_run_layout()
    for m in KvmRun.c_layout().members:
        if m.name is None or m.name == "padding":  # the exit union is anonymous in the tree
            continue
        got, want = tree.member(m.name).offset, m.offset
        if got != want:
            raise LayoutError(
                f"struct kvm_run.{m.name}: the tree puts it at {got:#x}, KvmRun at {want:#x}"
            )
    union = next(m for m in tree.members if m.name is None)
    if (union.offset, union.size) != (EXIT_UNION_OFFSET, EXIT_UNION_SIZE):
        raise LayoutError(
            f"struct kvm_run: the exit union is at {union.offset:#x} size {union.size:#x} in the "
            f"tree, at {EXIT_UNION_OFFSET:#x} size {EXIT_UNION_SIZE:#x} in KvmRun"
        )
    if tree.size != KVM_RUN_SIZE:
        raise LayoutError(f"struct kvm_run: tree size {tree.size:#x}, KvmRun {KVM_RUN_SIZE:#x}")


_check_frame()

#: Where every x86 ABI keeps the exit reason and the exit union (see :class:`RunFrame`).
KVM_RUN_FRAME = RunFrame(
    name="struct kvm_run",
    size=KVM_RUN_SIZE,
    exit_reason=EXIT_REASON,
    immediate_exit=IMMEDIATE_EXIT,
    union_offset=EXIT_UNION_OFFSET,
    union_size=EXIT_UNION_SIZE,
    generic_members=GENERIC_MEMBERS,
    build=kvm_run_layout,
)
