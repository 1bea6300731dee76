# SPDX-License-Identifier: Apache-2.0
"""A KVM virtual machine and its guest memory.

:class:`GuestRam` is one memory slot: a guest-physical range backed by an
anonymous ``mmap`` (or, without KVM, by a ``bytearray``). Every access is
bounds-checked, so a guest-supplied GPA and length can never reach memory
outside the slot: anything not wholly inside raises :class:`GuestMemoryError`.
:class:`GuestMemory` holds several slots and routes by GPA with the same API;
the kernel model builds one with :meth:`GuestMemory.from_buffer` and no KVM.

:class:`Vm` wraps a VM file descriptor: memory slots
(``KVM_SET_USER_MEMORY_REGION``), capabilities (``KVM_ENABLE_CAP``), memory
attributes and vCPU creation. Numbers come from :mod:`coco_core.kvm.ioctls`
(Linux 7.2 uapi).
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING

from coco_core.errors import ConfigurationError, GuestMemoryError
from coco_core.generic.uapi import PAGE_SIZE
from coco_core.kvm import ioctls
from coco_core.kvm.closing import Closing
from coco_core.kvm.structs import EnableCap, MemoryAttributes, UserspaceMemoryRegion

if TYPE_CHECKING:
    from coco_core.kvm.system import Kvm
    from coco_core.kvm.vcpu import Vcpu

__all__ = ["GuestMemory", "GuestMemoryError", "GuestRam", "Vm"]

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class GuestRam:
    """One guest memory slot: ``size`` bytes at guest-physical ``gpa``.

    ``view`` is a writable ``memoryview`` over the whole slot (offset 0 is
    ``gpa``). Prefer :meth:`read`/:meth:`write`, which check bounds.
    """

    __slots__ = ("_backing", "end", "gpa", "size", "slot", "view")

    def __init__(
        self, gpa: int, backing: mmap.mmap | bytearray, *, slot: int | None = None
    ) -> None:
        if gpa < 0:
            raise ValueError(f"gpa {gpa:#x} is negative")
        self._backing: mmap.mmap | bytearray | None = backing
        self.view: memoryview = memoryview(backing)
        self.gpa: int = gpa
        self.size: int = len(self.view)
        self.end: int = gpa + self.size
        self.slot: int | None = slot

    @classmethod
    def from_buffer(cls, gpa: int, buf: bytearray) -> GuestRam:
        """Wrap an existing ``bytearray`` (no KVM needed); writes go to ``buf``."""
        return cls(gpa, buf)

    @classmethod
    def anonymous(cls, gpa: int, size: int) -> GuestRam:
        """Allocate ``size`` zeroed bytes with an anonymous shared ``mmap``."""
        if size <= 0 or size % PAGE_SIZE:
            raise ValueError(f"size {size:#x} must be a positive multiple of {PAGE_SIZE:#x}")
        mem = mmap.mmap(-1, size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        return cls(gpa, mem)

    @property
    def host_address(self) -> int:
        """The userspace address of the slot (for ``KVM_SET_USER_MEMORY_REGION``)."""
        # One short-lived ctypes export at setup time, never on the exit path.
        anchor = (ctypes.c_char * self.size).from_buffer(self.view)
        try:
            return ctypes.addressof(anchor)
        finally:
            del anchor

    def contains(self, gpa: int, size: int) -> bool:
        """Whether ``[gpa, gpa + size)`` lies wholly inside this slot (no wrap-around)."""
        if size < 0 or gpa < self.gpa:
            return False
        off = gpa - self.gpa
        return off <= self.size and size <= self.size - off

    def _offset(self, gpa: int, size: int) -> int:
        if not self.contains(gpa, size):
            raise GuestMemoryError(
                f"guest range gpa={gpa:#x} size={size:#x} is outside slot "
                f"[{self.gpa:#x}, {self.end:#x})"
            )
        return gpa - self.gpa

    def read(self, gpa: int, n: int) -> bytes:
        """Copy ``n`` bytes at ``gpa``."""
        off = self._offset(gpa, n)
        return self.view[off : off + n].tobytes()

    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` to ``gpa``."""
        n = len(data)
        off = self._offset(gpa, n)
        self.view[off : off + n] = data

    def window(self, gpa: int, n: int) -> memoryview:
        """A writable view of ``n`` bytes at ``gpa`` (zero copy; bounds checked once)."""
        off = self._offset(gpa, n)
        return self.view[off : off + n]

    def read_u32(self, gpa: int) -> int:
        """Read a little-endian ``u32``."""
        return int(_U32.unpack_from(self.view, self._offset(gpa, 4))[0])

    def write_u32(self, gpa: int, value: int) -> None:
        """Write a little-endian ``u32``."""
        _U32.pack_into(self.view, self._offset(gpa, 4), value)

    def read_u64(self, gpa: int) -> int:
        """Read a little-endian ``u64``."""
        return int(_U64.unpack_from(self.view, self._offset(gpa, 8))[0])

    def write_u64(self, gpa: int, value: int) -> None:
        """Write a little-endian ``u64``."""
        _U64.pack_into(self.view, self._offset(gpa, 8), value)

    def close(self) -> None:
        """Release the view and unmap (a no-op for ``bytearray`` slots and on repeat)."""
        backing, self._backing = self._backing, None
        if backing is None:
            return
        self.view.release()
        if isinstance(backing, mmap.mmap):
            # BufferError: someone still holds a window; the GC unmaps it later.
            with contextlib.suppress(BufferError):
                backing.close()

    def __repr__(self) -> str:
        return f"GuestRam(gpa={self.gpa:#x}, size={self.size:#x}, slot={self.slot})"


class GuestMemory:
    """Several :class:`GuestRam` slots, routed by GPA; a range must fit in one slot."""

    __slots__ = ("_slots", "_starts")

    def __init__(self, slots: Iterable[GuestRam] = ()) -> None:
        self._slots: list[GuestRam] = []
        self._starts: list[int] = []
        for s in slots:
            self.add(s)

    @classmethod
    def from_buffer(cls, gpa: int, buf: bytearray) -> GuestMemory:
        """One slot over an existing ``bytearray`` at ``gpa`` (no KVM needed)."""
        return cls([GuestRam.from_buffer(gpa, buf)])

    @property
    def slots(self) -> tuple[GuestRam, ...]:
        """The slots, sorted by GPA."""
        return tuple(self._slots)

    def add(self, ram: GuestRam) -> GuestRam:
        """Add a slot; it must not overlap an existing one."""
        i = bisect.bisect_left(self._starts, ram.gpa)
        prev = self._slots[i - 1] if i > 0 else None
        nxt = self._slots[i] if i < len(self._slots) else None
        if (prev is not None and prev.end > ram.gpa) or (nxt is not None and ram.end > nxt.gpa):
            raise GuestMemoryError(f"{ram!r} overlaps an existing slot")
        self._slots.insert(i, ram)
        self._starts.insert(i, ram.gpa)
        return ram

    def remove(self, ram: GuestRam) -> None:
        """Forget a slot (it is not closed)."""
        i = self._slots.index(ram)
        del self._slots[i]
        del self._starts[i]

    def slot_for(self, gpa: int, size: int) -> GuestRam:
        """The slot holding all of ``[gpa, gpa + size)``; :class:`GuestMemoryError` if none."""
        i = bisect.bisect_right(self._starts, gpa) - 1
        if i >= 0:
            ram = self._slots[i]
            if ram.contains(gpa, size):
                return ram
        raise GuestMemoryError(
            f"guest range gpa={gpa:#x} size={size:#x} is not inside one memory slot"
        )

    def contains(self, gpa: int, size: int) -> bool:
        """Whether ``[gpa, gpa + size)`` lies wholly inside one slot."""
        i = bisect.bisect_right(self._starts, gpa) - 1
        return i >= 0 and self._slots[i].contains(gpa, size)

    def read(self, gpa: int, n: int) -> bytes:
        """Copy ``n`` bytes at ``gpa``."""
        return self.slot_for(gpa, n).read(gpa, n)

    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` to ``gpa``."""
        self.slot_for(gpa, len(data)).write(gpa, data)

    def window(self, gpa: int, n: int) -> memoryview:
        """A writable zero-copy view of ``n`` bytes at ``gpa``."""
        return self.slot_for(gpa, n).window(gpa, n)

    def read_u32(self, gpa: int) -> int:
        """Read a little-endian ``u32``."""
        return self.slot_for(gpa, 4).read_u32(gpa)

    def write_u32(self, gpa: int, value: int) -> None:
        """Write a little-endian ``u32``."""
        self.slot_for(gpa, 4).write_u32(gpa, value)

    def read_u64(self, gpa: int) -> int:
        """Read a little-endian ``u64``."""
        return self.slot_for(gpa, 8).read_u64(gpa)

    def write_u64(self, gpa: int, value: int) -> None:
        """Write a little-endian ``u64``."""
        self.slot_for(gpa, 8).write_u64(gpa, value)

    def close(self) -> None:
        """Close every slot."""
        for s in self._slots:
            s.close()


def _ioctl_error(what: str, exc: OSError) -> str:
    code = exc.errno or 0
    return f"{what} failed: {errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


class Vm(Closing):
    """A KVM VM file descriptor with its memory slots and vCPUs."""

    def __init__(
        self, fd: int, *, vm_type: int, vcpu_mmap_size: int, kvm: Kvm | None = None
    ) -> None:
        self.fd: int = fd
        self.kvm: Kvm | None = kvm
        self.vm_type: int = vm_type
        self.vcpu_mmap_size: int = vcpu_mmap_size
        self.memory: GuestMemory = GuestMemory()
        self.vcpus: list[Vcpu] = []
        self._next_slot = 0

    @classmethod
    def create(cls, kvm: Kvm, vm_type: int = ioctls.KVM_X86_DEFAULT_VM) -> Vm:
        """``KVM_CREATE_VM`` on ``kvm``; :class:`ConfigurationError` if the type is refused."""
        try:
            fd = fcntl.ioctl(kvm.fd, ioctls.KVM_CREATE_VM, vm_type)
        except OSError as exc:
            raise ConfigurationError(
                _ioctl_error(f"KVM_CREATE_VM(type={vm_type}) on {kvm.path}", exc)
            ) from exc
        return cls(fd, vm_type=vm_type, vcpu_mmap_size=kvm.vcpu_mmap_size(), kvm=kvm)

    def check_extension(self, cap: int) -> int:
        """``KVM_CHECK_EXTENSION`` on the VM fd (0 when unknown)."""
        try:
            return fcntl.ioctl(self.fd, ioctls.KVM_CHECK_EXTENSION, cap)
        except OSError:
            return 0

    def add_memory(self, gpa: int, size: int, *, flags: int = 0) -> GuestRam:
        """Back ``[gpa, gpa + size)`` with fresh anonymous memory and register it as a slot."""
        if gpa % PAGE_SIZE:
            raise ValueError(f"gpa {gpa:#x} is not page aligned")
        ram = GuestRam.anonymous(gpa, size)
        ram.slot = self._next_slot
        region = UserspaceMemoryRegion(ram.slot, flags, gpa, size, ram.host_address)
        try:
            self.memory.add(ram)
        except GuestMemoryError:
            ram.close()
            raise
        try:
            fcntl.ioctl(self.fd, ioctls.KVM_SET_USER_MEMORY_REGION, region.pack())
        except OSError as exc:
            self.memory.remove(ram)
            ram.close()
            raise ConfigurationError(
                _ioctl_error(f"KVM_SET_USER_MEMORY_REGION(gpa={gpa:#x}, size={size:#x})", exc)
            ) from exc
        self._next_slot += 1
        return ram

    def enable_cap(self, cap: int, *args: int, flags: int = 0) -> None:
        """``KVM_ENABLE_CAP`` on the VM with up to four arguments."""
        if len(args) > 4:
            raise ValueError("kvm_enable_cap has four args")
        padded = (*args, 0, 0, 0, 0)[:4]
        arg = EnableCap(cap, flags, (padded[0], padded[1], padded[2], padded[3]))
        try:
            fcntl.ioctl(self.fd, ioctls.KVM_ENABLE_CAP, arg.pack())
        except OSError as exc:
            raise ConfigurationError(
                _ioctl_error(f"KVM_ENABLE_CAP(cap={cap}, args={args})", exc)
            ) from exc

    def enable_exit_hypercall(self, mask: int) -> None:
        """Enable ``KVM_EXIT_HYPERCALL`` for the hypercalls in ``mask`` (1 << nr)."""
        supported = self.check_extension(ioctls.KVM_CAP_EXIT_HYPERCALL)
        if mask & ~supported:
            raise ConfigurationError(
                f"KVM_CAP_EXIT_HYPERCALL: mask {mask:#x} asks for hypercalls this host "
                f"cannot exit on (supported mask {supported:#x})"
            )
        self.enable_cap(ioctls.KVM_CAP_EXIT_HYPERCALL, mask)

    def enable_user_space_msr(self, reasons: int) -> None:
        """Forward MSR accesses to userspace for ``KVM_MSR_EXIT_REASON_*`` ``reasons``."""
        if not self.check_extension(ioctls.KVM_CAP_X86_USER_SPACE_MSR):
            raise ConfigurationError("KVM_CAP_X86_USER_SPACE_MSR is not supported on this host")
        self.enable_cap(ioctls.KVM_CAP_X86_USER_SPACE_MSR, reasons)

    def set_memory_attributes(self, gpa: int, size: int, attributes: int) -> None:
        """``KVM_SET_MEMORY_ATTRIBUTES`` (e.g. ``KVM_MEMORY_ATTRIBUTE_PRIVATE``) on a range."""
        supported = self.check_extension(ioctls.KVM_CAP_MEMORY_ATTRIBUTES)
        if attributes & ~supported:
            raise ConfigurationError(
                f"KVM_SET_MEMORY_ATTRIBUTES: attributes {attributes:#x} are not supported by "
                f"this VM (KVM_CAP_MEMORY_ATTRIBUTES = {supported:#x}; it needs a VM type "
                "with private memory, e.g. KVM_X86_SW_PROTECTED_VM, SNP or TDX)"
            )
        arg = MemoryAttributes(gpa, size, attributes)
        try:
            fcntl.ioctl(self.fd, ioctls.KVM_SET_MEMORY_ATTRIBUTES, arg.pack())
        except OSError as exc:
            raise ConfigurationError(
                _ioctl_error(
                    f"KVM_SET_MEMORY_ATTRIBUTES(gpa={gpa:#x}, size={size:#x}, "
                    f"attributes={attributes:#x})",
                    exc,
                )
            ) from exc

    def create_vcpu(self, vcpu_id: int) -> Vcpu:
        """``KVM_CREATE_VCPU`` and map its ``kvm_run``.

        The vCPU gets ``KVM_GET_SUPPORTED_CPUID`` (cached per ``/dev/kvm``) as the
        CPUID :meth:`Vcpu.setup_long_mode` sets, when the VM was created through
        :meth:`Kvm.create_vm`.
        """
        from coco_core.kvm.vcpu import Vcpu

        try:
            fd = fcntl.ioctl(self.fd, ioctls.KVM_CREATE_VCPU, vcpu_id)
        except OSError as exc:
            raise ConfigurationError(_ioctl_error(f"KVM_CREATE_VCPU({vcpu_id})", exc)) from exc
        cpuid = self.kvm.supported_cpuid() if self.kvm is not None else None
        vcpu = Vcpu(fd, vcpu_id, self.vcpu_mmap_size, cpuid=cpuid)
        self.vcpus.append(vcpu)
        return vcpu

    def close(self) -> None:
        """Close the vCPUs, the VM fd and unmap guest memory (idempotent)."""
        for v in self.vcpus:
            v.close()
        self.vcpus.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.memory.close()
