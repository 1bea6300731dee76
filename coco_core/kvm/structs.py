# SPDX-License-Identifier: Apache-2.0
"""The KVM ioctl argument structs, as precompiled formats.

Layouts are x86_64 (LP64, natural alignment) from the Linux 7.2 uapi headers
(Debian ``linux-libc-dev`` 7.2.13-1): ``include/uapi/linux/kvm.h`` (``kvm.h``)
and ``arch/x86/include/uapi/asm/kvm.h`` (``asm/kvm.h``). Each format is one
``struct.Struct`` built at import; values are small ``attrs`` frozen classes
with ``unpack``/``pack`` and ``replace`` (``attrs.evolve``). Nothing here
builds a ctypes object per call. ``tests/kvm/test_ioctls.py`` checks every
size against gcc. ``struct kvm_run`` is not here: it is declared once, in
:mod:`coco_core.generic.uapi`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from coco_core.kvm import ioctls

__all__ = [
    "CPUID2_HEADER",
    "CPUID_ENTRY2",
    "DEVICE_ATTR",
    "DTABLE",
    "ENABLE_CAP",
    "MEMORY_ATTRIBUTES",
    "MSRS_HEADER",
    "MSR_ENTRY",
    "REGS",
    "SEGMENT",
    "SREGS",
    "USERSPACE_MEMORY_REGION",
    "USERSPACE_MEMORY_REGION2",
    "CpuidEntry2",
    "DTable",
    "DeviceAttr",
    "EnableCap",
    "MemoryAttributes",
    "MsrEntry",
    "Regs",
    "Segment",
    "Sregs",
    "UserspaceMemoryRegion",
    "pack_cpuid2",
    "pack_msrs",
    "unpack_cpuid2",
    "unpack_msrs",
]

# asm/kvm.h struct kvm_regs: __u64 rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp,
# r8..r15, rip, rflags
REGS = struct.Struct("<18Q")
# asm/kvm.h struct kvm_segment: __u64 base; __u32 limit; __u16 selector; __u8 type,
# present, dpl, db, s, l, g, avl, unusable, padding  (24 bytes)
_SEGMENT_FMT = "QIHBBBBBBBBBB"
SEGMENT = struct.Struct("<" + _SEGMENT_FMT)
# asm/kvm.h struct kvm_dtable: __u64 base; __u16 limit; __u16 padding[3]  (16 bytes)
_DTABLE_FMT = "QH6x"
DTABLE = struct.Struct("<" + _DTABLE_FMT)
# asm/kvm.h struct kvm_sregs: 8 segments, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer,
# apic_base, interrupt_bitmap[(KVM_NR_INTERRUPTS + 63) / 64]
_NR_BITMAP_WORDS = (ioctls.KVM_NR_INTERRUPTS + 63) // 64
SREGS = struct.Struct("<" + _SEGMENT_FMT * 8 + _DTABLE_FMT * 2 + f"7Q{_NR_BITMAP_WORDS}Q")
# kvm.h struct kvm_userspace_memory_region: __u32 slot, flags; __u64 guest_phys_addr,
# memory_size, userspace_addr
USERSPACE_MEMORY_REGION = struct.Struct("<IIQQQ")
# kvm.h struct kvm_userspace_memory_region2: ... __u64 guest_memfd_offset;
# __u32 guest_memfd, pad1; __u64 pad2[14]
USERSPACE_MEMORY_REGION2 = struct.Struct("<IIQQQQII112x")
# kvm.h struct kvm_enable_cap: __u32 cap, flags; __u64 args[4]; __u8 pad[64]
ENABLE_CAP = struct.Struct("<II4Q64x")
# asm/kvm.h struct kvm_cpuid2: __u32 nent, padding; entries[]
CPUID2_HEADER = struct.Struct("<II")
# asm/kvm.h struct kvm_cpuid_entry2: __u32 function, index, flags, eax, ebx, ecx, edx,
# padding[3]
CPUID_ENTRY2 = struct.Struct("<7I12x")
# kvm.h struct kvm_memory_attributes: __u64 address, size, attributes, flags
MEMORY_ATTRIBUTES = struct.Struct("<4Q")
# kvm.h struct kvm_device_attr: __u32 flags, group; __u64 attr, addr
DEVICE_ATTR = struct.Struct("<IIQQ")
# asm/kvm.h struct kvm_msrs: __u32 nmsrs, pad; entries[]
MSRS_HEADER = struct.Struct("<II")
# asm/kvm.h struct kvm_msr_entry: __u32 index, reserved; __u64 data
MSR_ENTRY = struct.Struct("<IIQ")

_Buffer = bytes | bytearray | memoryview


@attrs.frozen
class Regs:
    """``struct kvm_regs`` (asm/kvm.h): the general-purpose registers, rip and rflags."""

    rax: int = 0
    rbx: int = 0
    rcx: int = 0
    rdx: int = 0
    rsi: int = 0
    rdi: int = 0
    rsp: int = 0
    rbp: int = 0
    r8: int = 0
    r9: int = 0
    r10: int = 0
    r11: int = 0
    r12: int = 0
    r13: int = 0
    r14: int = 0
    r15: int = 0
    rip: int = 0
    rflags: int = 0x2  # bit 1 of RFLAGS is reserved and reads as 1 (SDM vol. 1, 3.4.3)

    @classmethod
    def unpack(cls, buf: _Buffer, offset: int = 0) -> Regs:
        """Decode a ``kvm_regs`` image."""
        return cls(*REGS.unpack_from(buf, offset))

    def pack(self) -> bytes:
        """Encode as a ``kvm_regs`` image."""
        return REGS.pack(*attrs.astuple(self))

    def replace(self, **changes: int) -> Regs:
        """Return a copy with some registers changed."""
        return attrs.evolve(self, **changes)


@attrs.frozen
class Segment:
    """``struct kvm_segment`` (asm/kvm.h): a segment register with its hidden part."""

    base: int = 0
    limit: int = 0
    selector: int = 0
    type: int = 0
    present: int = 0
    dpl: int = 0
    db: int = 0
    s: int = 0
    l: int = 0  # noqa: E741 (the C member name)
    g: int = 0
    avl: int = 0
    unusable: int = 0
    padding: int = 0

    def replace(self, **changes: int) -> Segment:
        """Return a copy with some fields changed."""
        return attrs.evolve(self, **changes)


@attrs.frozen
class DTable:
    """``struct kvm_dtable`` (asm/kvm.h): a descriptor-table register (GDTR/IDTR)."""

    base: int = 0
    limit: int = 0


@attrs.frozen
class Sregs:
    """``struct kvm_sregs`` (asm/kvm.h): segment, control and descriptor-table registers."""

    cs: Segment = Segment()
    ds: Segment = Segment()
    es: Segment = Segment()
    fs: Segment = Segment()
    gs: Segment = Segment()
    ss: Segment = Segment()
    tr: Segment = Segment()
    ldt: Segment = Segment()
    gdt: DTable = DTable()
    idt: DTable = DTable()
    cr0: int = 0
    cr2: int = 0
    cr3: int = 0
    cr4: int = 0
    cr8: int = 0
    efer: int = 0
    apic_base: int = 0
    interrupt_bitmap: tuple[int, ...] = (0,) * _NR_BITMAP_WORDS

    @classmethod
    def unpack(cls, buf: _Buffer, offset: int = 0) -> Sregs:
        """Decode a ``kvm_sregs`` image."""
        v = SREGS.unpack_from(buf, offset)
        cs, ds, es, fs, gs, ss, tr, ldt = (Segment(*v[i * 13 : (i + 1) * 13]) for i in range(8))
        return cls(
            cs=cs,
            ds=ds,
            es=es,
            fs=fs,
            gs=gs,
            ss=ss,
            tr=tr,
            ldt=ldt,
            gdt=DTable(v[104], v[105]),
            idt=DTable(v[106], v[107]),
            cr0=v[108],
            cr2=v[109],
            cr3=v[110],
            cr4=v[111],
            cr8=v[112],
            efer=v[113],
            apic_base=v[114],
            interrupt_bitmap=tuple(v[115:]),
        )

    def pack(self) -> bytes:
        """Encode as a ``kvm_sregs`` image."""
        values: list[int] = []
        for seg in (self.cs, self.ds, self.es, self.fs, self.gs, self.ss, self.tr, self.ldt):
            values.extend(attrs.astuple(seg))
        values += [self.gdt.base, self.gdt.limit, self.idt.base, self.idt.limit]
        values += [self.cr0, self.cr2, self.cr3, self.cr4, self.cr8, self.efer, self.apic_base]
        values.extend(self.interrupt_bitmap)
        return SREGS.pack(*values)

    def replace(self, **changes: Any) -> Sregs:
        """Return a copy with some fields changed."""
        return attrs.evolve(self, **changes)


@attrs.frozen
class UserspaceMemoryRegion:
    """``struct kvm_userspace_memory_region`` (kvm.h): one memory slot."""

    slot: int
    flags: int
    guest_phys_addr: int
    memory_size: int
    userspace_addr: int

    def pack(self) -> bytes:
        """Encode for ``KVM_SET_USER_MEMORY_REGION``."""
        return USERSPACE_MEMORY_REGION.pack(*attrs.astuple(self))


@attrs.frozen
class EnableCap:
    """``struct kvm_enable_cap`` (kvm.h): argument of ``KVM_ENABLE_CAP``."""

    cap: int
    flags: int = 0
    args: tuple[int, int, int, int] = (0, 0, 0, 0)

    def pack(self) -> bytes:
        """Encode for ``KVM_ENABLE_CAP``."""
        return ENABLE_CAP.pack(self.cap, self.flags, *self.args)


@attrs.frozen
class MemoryAttributes:
    """``struct kvm_memory_attributes`` (kvm.h): argument of ``KVM_SET_MEMORY_ATTRIBUTES``."""

    address: int
    size: int
    attributes: int
    flags: int = 0

    def pack(self) -> bytes:
        """Encode for ``KVM_SET_MEMORY_ATTRIBUTES``."""
        return MEMORY_ATTRIBUTES.pack(self.address, self.size, self.attributes, self.flags)


@attrs.frozen
class DeviceAttr:
    """``struct kvm_device_attr`` (kvm.h): argument of ``KVM_{HAS,GET,SET}_DEVICE_ATTR``."""

    group: int
    attr: int
    addr: int = 0
    flags: int = 0

    def pack(self) -> bytes:
        """Encode for the device-attribute ioctls."""
        return DEVICE_ATTR.pack(self.flags, self.group, self.attr, self.addr)


@attrs.frozen
class CpuidEntry2:
    """``struct kvm_cpuid_entry2`` (asm/kvm.h): one CPUID leaf/subleaf result."""

    function: int
    index: int = 0
    flags: int = 0
    eax: int = 0
    ebx: int = 0
    ecx: int = 0
    edx: int = 0

    def replace(self, **changes: int) -> CpuidEntry2:
        """Return a copy with some fields changed."""
        return attrs.evolve(self, **changes)


def pack_cpuid2(entries: Sequence[CpuidEntry2], capacity: int | None = None) -> bytearray:
    """Encode a ``kvm_cpuid2`` with room for ``capacity`` entries (default: ``len(entries)``).

    Returns a ``bytearray`` because ``fcntl.ioctl`` copies at most 1024 bytes of an
    immutable argument, and ``KVM_GET_SUPPORTED_CPUID`` writes into it.
    """
    cap = len(entries) if capacity is None else capacity
    if cap < len(entries):
        raise ValueError(f"capacity {cap} is smaller than the {len(entries)} entries given")
    buf = bytearray(CPUID2_HEADER.size + cap * CPUID_ENTRY2.size)
    CPUID2_HEADER.pack_into(buf, 0, cap, 0)
    for i, e in enumerate(entries):
        CPUID_ENTRY2.pack_into(
            buf,
            CPUID2_HEADER.size + i * CPUID_ENTRY2.size,
            e.function,
            e.index,
            e.flags,
            e.eax,
            e.ebx,
            e.ecx,
            e.edx,
        )
    return buf


def unpack_cpuid2(buf: _Buffer) -> tuple[CpuidEntry2, ...]:
    """Decode a ``kvm_cpuid2`` (``nent`` entries)."""
    (nent, _pad) = CPUID2_HEADER.unpack_from(buf, 0)
    return tuple(
        CpuidEntry2(*CPUID_ENTRY2.unpack_from(buf, CPUID2_HEADER.size + i * CPUID_ENTRY2.size))
        for i in range(nent)
    )


@attrs.frozen
class MsrEntry:
    """``struct kvm_msr_entry`` (asm/kvm.h): one MSR index and value."""

    index: int
    data: int = 0


def pack_msrs(entries: Iterable[MsrEntry]) -> bytearray:
    """Encode a ``kvm_msrs`` with its entries (mutable, see :func:`pack_cpuid2`)."""
    items = list(entries)
    buf = bytearray(MSRS_HEADER.size + len(items) * MSR_ENTRY.size)
    MSRS_HEADER.pack_into(buf, 0, len(items), 0)
    for i, e in enumerate(items):
        MSR_ENTRY.pack_into(buf, MSRS_HEADER.size + i * MSR_ENTRY.size, e.index, 0, e.data)
    return buf


def unpack_msrs(buf: _Buffer, count: int | None = None) -> tuple[MsrEntry, ...]:
    """Decode a ``kvm_msrs`` (``count`` entries, default its ``nmsrs``)."""
    (nmsrs, _pad) = MSRS_HEADER.unpack_from(buf, 0)
    n = nmsrs if count is None else count
    out = []
    for i in range(n):
        index, _reserved, data = MSR_ENTRY.unpack_from(buf, MSRS_HEADER.size + i * MSR_ENTRY.size)
        out.append(MsrEntry(index, data))
    return tuple(out)
