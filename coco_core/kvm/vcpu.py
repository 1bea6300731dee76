# SPDX-License-Identifier: Apache-2.0
"""A KVM vCPU: ``KVM_RUN``, the mapped ``kvm_run`` and register access.

``run_view`` is a writable ``memoryview`` of the vCPU's ``kvm_run`` mapping
(``KVM_GET_VCPU_MMAP_SIZE`` bytes; 0x3000 on the development hosts, with port
I/O data on the second page). Exit fields are read with the layouts of
:mod:`coco_core.generic.uapi` (one precompiled ``struct.Struct`` each);
nothing allocates ctypes objects.

:meth:`Vcpu.run` returns a :class:`RunOutcome` instead of raising for the
errnos a run loop must handle: ``EINTR`` (a signal or ``immediate_exit``),
``EFAULT``/``EHWPOISON`` (``KVM_EXIT_MEMORY_FAULT`` arrives this way, with
``exit_reason`` still valid; Documentation/virt/kvm/api.rst, "KVM_EXIT_MEMORY_FAULT")
and ``EAGAIN``. Any other errno raises :class:`KvmRunError`.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import mmap
import os
import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from coco_core.errors import ConfigurationError, KvmRunError
from coco_core.generic.uapi import (
    EXIT_REASON,
    EXIT_UNION_OFFSET,
    IMMEDIATE_EXIT,
    KvmIoExit,
    KvmMemoryFaultExit,
    KvmMsrExit,
    run_offset,
)
from coco_core.kvm import ioctls
from coco_core.kvm.structs import (
    REGS,
    SREGS,
    CpuidEntry2,
    DTable,
    MsrEntry,
    Regs,
    Segment,
    Sregs,
    pack_cpuid2,
    pack_msrs,
    unpack_msrs,
)

if TYPE_CHECKING:
    from coco_core.kvm.vm import GuestRam

__all__ = [
    "CR0_LONG_MODE",
    "CR4_PAE",
    "EFER_LMA",
    "EFER_LME",
    "EHWPOISON",
    "KvmRunError",
    "RunOutcome",
    "Vcpu",
]

# Control-register bits (Intel SDM vol. 3A, 2.5; AMD APM vol. 2, 3.1)
CR0_LONG_MODE = 0x80050033  # PG | AM | WP | NE | ET | MP | PE
CR4_PAE = 1 << 5  # CR4.PAE
EFER_LME = 1 << 8  # IA32_EFER.LME (SDM vol. 3A, 2.2.1)
EFER_LMA = 1 << 10  # IA32_EFER.LMA
# Python 3.11's errno module lacks it; include/uapi/asm-generic/errno.h (Linux 7.2)
EHWPOISON = getattr(errno, "EHWPOISON", 133)
_PTE_PRESENT = 1 << 0  # SDM vol. 3A, table 4-15..4-19
_PTE_WRITABLE = 1 << 1
_PTE_PAGE_SIZE = 1 << 7  # PS: 2 MiB page in a page-directory entry
_PAGE_2M = 2 << 20
# GDT descriptors (SDM vol. 3A, 3.4.5): flat 64-bit code (L=1) and flat data.
_GDT_CODE64 = 0x00AF9A000000FFFF
_GDT_DATA = 0x00CF92000000FFFF
_SEL_CODE = 0x08
_SEL_DATA = 0x10


class RunOutcome(enum.IntEnum):
    """How ``KVM_RUN`` returned: 0 for an exit, else the errno a loop handles."""

    EXIT = 0  # KVM_RUN returned 0: kvm_run.exit_reason is valid
    INTR = errno.EINTR  # signal pending or immediate_exit set
    AGAIN = errno.EAGAIN  # e.g. vCPU not runnable yet
    FAULT = errno.EFAULT  # exit_reason valid only if KVM_EXIT_MEMORY_FAULT
    HWPOISON = EHWPOISON  # likewise


_OUTCOMES = {o.value: o for o in RunOutcome}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_MSR_ERROR = run_offset(KvmMsrExit, "error")
_MSR_DATA = run_offset(KvmMsrExit, "data")


def _describe(err: int) -> str:
    return f"{errno.errorcode.get(err, str(err))} ({os.strerror(err)})"


class Vcpu:
    """One vCPU file descriptor and its mapped ``kvm_run``."""

    def __init__(
        self,
        fd: int,
        vcpu_id: int,
        mmap_size: int,
        *,
        cpuid: Sequence[CpuidEntry2] | None = None,
    ) -> None:
        self.fd: int = fd
        self.id: int = vcpu_id
        #: the CPUID :meth:`setup_long_mode` sets by default (``KVM_GET_SUPPORTED_CPUID``)
        self.cpuid: tuple[CpuidEntry2, ...] | None = None if cpuid is None else tuple(cpuid)
        self._mmap: mmap.mmap | None = mmap.mmap(
            fd, mmap_size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE
        )
        self.run_view: memoryview = memoryview(self._mmap)

    # --- KVM_RUN -----------------------------------------------------------------
    def run(self) -> RunOutcome:
        """One ``KVM_RUN``; returns :attr:`RunOutcome.EXIT` or the errno outcome."""
        try:
            fcntl.ioctl(self.fd, ioctls.KVM_RUN, 0)
        except OSError as exc:
            outcome = _OUTCOMES.get(exc.errno or 0)
            if outcome is None:
                raise KvmRunError(
                    f"KVM_RUN on vCPU {self.id} failed: {_describe(exc.errno or 0)}",
                    exc.errno or 0,
                ) from exc
            return outcome
        return RunOutcome.EXIT

    def complete_pending(self) -> None:
        """Finish the pending exit's completion in the kernel without running the guest.

        Sets ``immediate_exit``, runs ``KVM_RUN`` (which completes pending I/O,
        MMIO or userspace-exit work, then returns ``EINTR``), and clears it again.
        Guest register state is consistent afterwards (api.rst, ``immediate_exit``).
        """
        view = self.run_view
        view[IMMEDIATE_EXIT] = 1
        try:
            outcome = self.run()
        finally:
            view[IMMEDIATE_EXIT] = 0
        if outcome is not RunOutcome.INTR:
            raise KvmRunError(
                f"KVM_RUN with immediate_exit=1 on vCPU {self.id} returned {outcome.name}, "
                "expected EINTR",
                outcome.value,
            )

    @property
    def immediate_exit(self) -> int:
        """``kvm_run.immediate_exit`` (offset 1): non-zero makes ``KVM_RUN`` return EINTR."""
        return self.run_view[IMMEDIATE_EXIT]

    @immediate_exit.setter
    def immediate_exit(self, value: int) -> None:
        self.run_view[IMMEDIATE_EXIT] = value

    @property
    def exit_reason(self) -> int:
        """``kvm_run.exit_reason`` (offset 8)."""
        return int(_U32.unpack_from(self.run_view, EXIT_REASON)[0])

    def io(self) -> KvmIoExit:
        """``kvm_run.io`` of a ``KVM_EXIT_IO``."""
        return KvmIoExit.from_buffer(self.run_view, EXIT_UNION_OFFSET)

    def io_data(self) -> memoryview:
        """The ``size * count`` data bytes of a ``KVM_EXIT_IO`` (write IN data here)."""
        io = self.io()
        n, off = io.size * io.count, io.data_offset
        if off + n > len(self.run_view):
            raise KvmRunError(f"io.data_offset {off:#x} + {n} is outside kvm_run", errno.EFAULT)
        return self.run_view[off : off + n]

    def msr(self) -> KvmMsrExit:
        """``kvm_run.msr`` of a ``KVM_EXIT_X86_RDMSR``/``WRMSR``."""
        return KvmMsrExit.from_buffer(self.run_view, EXIT_UNION_OFFSET)

    def complete_msr(self, data: int = 0, *, error: bool = False) -> None:
        """Answer an MSR exit: ``data`` for RDMSR, or ``error`` to inject #GP.

        Writes ``msr.error`` and ``msr.data`` only (``complete_emulated_msr``).
        """
        self.run_view[_MSR_ERROR] = 1 if error else 0
        _U64.pack_into(self.run_view, _MSR_DATA, data)

    def memory_fault(self) -> KvmMemoryFaultExit:
        """``kvm_run.memory_fault`` of a ``KVM_EXIT_MEMORY_FAULT``."""
        return KvmMemoryFaultExit.from_buffer(self.run_view, EXIT_UNION_OFFSET)

    # --- registers -------------------------------------------------------------
    def _ioctl_buf(self, name: str, request: int, buf: bytearray | bytes) -> int:
        try:
            result = fcntl.ioctl(self.fd, request, buf)
        except OSError as exc:
            raise KvmRunError(
                f"{name} on vCPU {self.id} failed: {_describe(exc.errno or 0)}", exc.errno or 0
            ) from exc
        # With a mutable buffer fcntl.ioctl returns the ioctl's int result.
        return result if isinstance(result, int) else 0

    def get_regs(self) -> Regs:
        """``KVM_GET_REGS``."""
        buf = bytearray(REGS.size)
        self._ioctl_buf("KVM_GET_REGS", ioctls.KVM_GET_REGS, buf)
        return Regs.unpack(buf)

    def set_regs(self, regs: Regs) -> None:
        """``KVM_SET_REGS``."""
        self._ioctl_buf("KVM_SET_REGS", ioctls.KVM_SET_REGS, regs.pack())

    def get_sregs(self) -> Sregs:
        """``KVM_GET_SREGS``."""
        buf = bytearray(SREGS.size)
        self._ioctl_buf("KVM_GET_SREGS", ioctls.KVM_GET_SREGS, buf)
        return Sregs.unpack(buf)

    def set_sregs(self, sregs: Sregs) -> None:
        """``KVM_SET_SREGS``."""
        self._ioctl_buf("KVM_SET_SREGS", ioctls.KVM_SET_SREGS, sregs.pack())

    def set_cpuid(self, entries: Sequence[CpuidEntry2]) -> None:
        """``KVM_SET_CPUID2`` (a ``bytearray`` argument: it exceeds 1024 bytes)."""
        self._ioctl_buf("KVM_SET_CPUID2", ioctls.KVM_SET_CPUID2, pack_cpuid2(entries))

    def set_msrs(self, entries: Iterable[MsrEntry]) -> int:
        """``KVM_SET_MSRS``; returns how many were set (raises if not all)."""
        items = list(entries)
        n = self._ioctl_buf("KVM_SET_MSRS", ioctls.KVM_SET_MSRS, pack_msrs(items))
        if n != len(items):
            bad = items[n]
            raise KvmRunError(
                f"KVM_SET_MSRS on vCPU {self.id} stopped at MSR {bad.index:#x} ({n} of "
                f"{len(items)} set)",
                errno.EINVAL,
            )
        return n

    def get_msrs(self, indices: Iterable[int]) -> dict[int, int]:
        """``KVM_GET_MSRS`` for ``indices``; only the MSRs KVM returned are in the result."""
        items = [MsrEntry(i) for i in indices]
        buf = pack_msrs(items)
        n = self._ioctl_buf("KVM_GET_MSRS", ioctls.KVM_GET_MSRS, buf)
        return {e.index: e.data for e in unpack_msrs(buf, n)}

    # --- bring-up ----------------------------------------------------------------
    def setup_long_mode(
        self,
        ram: GuestRam,
        entry_rip: int,
        stack: int,
        *,
        page_tables: int = 0x1000,
        cpuid: Sequence[CpuidEntry2] | None = None,
    ) -> None:
        """Put the vCPU in 64-bit mode at ``entry_rip`` with ``rsp = stack``.

        Writes identity page tables mapping the first 1 GiB with 2 MiB pages and
        a flat GDT into ``ram`` at ``page_tables`` (4 pages: PML4, PDPT, PD,
        GDT), sets guest CPUID to ``cpuid`` (default: ``KVM_GET_SUPPORTED_CPUID``,
        required before EFER.LME is accepted), then CS with L=1,
        CR0 = 0x80050033, CR4.PAE, EFER = LME | LMA.
        """
        if cpuid is None:
            if self.cpuid is None:
                raise ConfigurationError(
                    "setup_long_mode needs guest CPUID: pass cpuid= or create the vCPU "
                    "through Kvm.create_vm()"
                )
            cpuid = self.cpuid
        self.set_cpuid(cpuid)
        pml4, pdpt, pd, gdt = (page_tables + i * 0x1000 for i in range(4))
        flags = _PTE_PRESENT | _PTE_WRITABLE
        table = bytearray(0x4000)
        table[0:8] = (pdpt | flags).to_bytes(8, "little")
        table[0x1000:0x1008] = (pd | flags).to_bytes(8, "little")
        for i in range(512):
            entry = (i * _PAGE_2M) | flags | _PTE_PAGE_SIZE
            table[0x2000 + 8 * i : 0x2008 + 8 * i] = entry.to_bytes(8, "little")
        table[0x3008:0x3010] = _GDT_CODE64.to_bytes(8, "little")
        table[0x3010:0x3018] = _GDT_DATA.to_bytes(8, "little")
        ram.write(pml4, table)

        code = Segment(
            base=0, limit=0xFFFFFFFF, selector=_SEL_CODE, type=11, present=1, s=1, l=1, g=1
        )
        data = Segment(
            base=0, limit=0xFFFFFFFF, selector=_SEL_DATA, type=3, present=1, db=1, s=1, g=1
        )
        sregs = self.get_sregs().replace(
            cs=code,
            ds=data,
            es=data,
            fs=data,
            gs=data,
            ss=data,
            gdt=DTable(base=gdt, limit=3 * 8 - 1),
            cr0=CR0_LONG_MODE,
            cr3=pml4,
            cr4=CR4_PAE,
            efer=EFER_LME | EFER_LMA,
        )
        self.set_sregs(sregs)
        self.set_regs(Regs(rip=entry_rip, rsp=stack))

    def close(self) -> None:
        """Unmap ``kvm_run`` and close the vCPU fd (idempotent)."""
        if self._mmap is not None:
            self.run_view.release()
            # BufferError: a caller still holds an io_data() view; the GC unmaps it later.
            with contextlib.suppress(BufferError):
                self._mmap.close()
            self._mmap = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __repr__(self) -> str:
        return f"Vcpu(id={self.id}, fd={self.fd})"
