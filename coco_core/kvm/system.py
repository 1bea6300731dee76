# SPDX-License-Identifier: Apache-2.0
"""The KVM system file descriptor (``/dev/kvm``) and what this host can do.

:meth:`Kvm.open` fails with :class:`KvmUnavailable` naming the path and the
errno when the device is missing, not accessible, or speaks an API version
other than ``KVM_API_VERSION`` (12, ``include/uapi/linux/kvm.h``, Linux 7.2).
:meth:`Kvm.probe` collects the capabilities coco cares about into a frozen
:class:`HostCapabilities`; whether the device can really run a guest is
:func:`coco_core.kvm.probe.usable`'s question.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from typing import TYPE_CHECKING

import attrs

from coco_core.errors import ConfigurationError, KvmUnavailable
from coco_core.kvm import ioctls
from coco_core.kvm.closing import Closing
from coco_core.kvm.structs import DeviceAttr, pack_cpuid2, unpack_cpuid2

if TYPE_CHECKING:
    from coco_core.kvm.structs import CpuidEntry2
    from coco_core.kvm.vm import Vm

__all__ = ["HostCapabilities", "Kvm", "KvmUnavailable", "device_attr_value"]

DEFAULT_PATH = "/dev/kvm"
_CPUID_START_ENTRIES = 128  # grown on E2BIG (api.rst, KVM_GET_SUPPORTED_CPUID)
_CPUID_MAX_ENTRIES = 4096


def _errno_text(err: int) -> str:
    return f"{errno.errorcode.get(err, str(err))}: {os.strerror(err)}"


def device_attr_value(fd: int, group: int, attr: int) -> int | None:
    """``KVM_GET_DEVICE_ATTR`` on ``fd``: the u64 KVM writes at ``attr->addr``, None if refused.

    ``KVM_HAS_DEVICE_ATTR`` alone says only that the getter knows the attribute:
    x86.c's ``kvm_x86_dev_has_attr()`` returns ``__kvm_x86_dev_get_attr()``'s result,
    which is 0 for ``KVM_X86_SEV_SNP_REQ_CERTS`` even when SNP is disabled (sev.c
    ``sev_dev_get_attr()``: ``*val = sev_snp_enabled ? 1 : 0; return 0;``).
    """
    value = ctypes.c_uint64(0)
    arg = DeviceAttr(group, attr, addr=ctypes.addressof(value)).pack()
    try:
        fcntl.ioctl(fd, ioctls.KVM_GET_DEVICE_ATTR, arg)
    except OSError:
        return None
    return value.value


@attrs.frozen
class HostCapabilities:
    """What ``/dev/kvm`` reported; a snapshot taken by :meth:`Kvm.probe`."""

    path: str
    api_version: int
    vcpu_mmap_size: int
    #: VM types ``KVM_CREATE_VM`` accepts (from the ``KVM_CAP_VM_TYPES`` bitmask)
    vm_types: frozenset[int]
    #: ``KVM_CAP_EXIT_HYPERCALL``: mask of hypercalls (1 << nr) that may exit
    exit_hypercall_mask: int
    #: ``KVM_CAP_X86_USER_SPACE_MSR``
    user_space_msr: bool
    #: ``KVM_CAP_MEMORY_ATTRIBUTES`` on ``/dev/kvm`` (mask of attributes)
    memory_attributes: int
    #: ``KVM_CAP_MEMORY_ATTRIBUTES`` on a default-type VM fd
    vm_memory_attributes: int
    #: ``KVM_CAP_GUEST_MEMFD``
    guest_memfd: bool
    #: ``KVM_CAP_GUEST_MEMFD_FLAGS`` (``GUEST_MEMFD_FLAG_*`` mask)
    guest_memfd_flags: int
    #: ``KVM_GET_DEVICE_ATTR`` on /dev/kvm, ``KVM_X86_GRP_SEV`` / ``KVM_X86_SEV_SNP_REQ_CERTS``
    #: reads 1 (0 when SNP is disabled; the attribute's mere presence says nothing)
    snp_req_certs: bool
    #: ``KVM_CAP_SYSTEM_EVENT_DATA``
    system_event_data: bool
    #: ``KVM_CAP_MEMORY_FAULT_INFO``
    memory_fault_info: bool
    #: ``KVM_CAP_IMMEDIATE_EXIT``
    immediate_exit: bool

    def supports_vm_type(self, vm_type: int) -> bool:
        """Whether ``KVM_CREATE_VM`` accepts ``vm_type``."""
        return vm_type in self.vm_types


class Kvm(Closing):
    """An open ``/dev/kvm``."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd: int = fd
        self.path: str = path
        self._mmap_size: int | None = None
        self._cpuid: tuple[CpuidEntry2, ...] | None = None

    @classmethod
    def open(cls, path: str = DEFAULT_PATH) -> Kvm:
        """Open ``path`` and check ``KVM_GET_API_VERSION`` == 12."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise KvmUnavailable(
                f"{path} does not exist ({_errno_text(exc.errno or errno.ENOENT)}): "
                "KVM is not available on this host (kvm module not loaded?)"
            ) from exc
        except PermissionError as exc:
            raise KvmUnavailable(
                f"{path} is not accessible ({_errno_text(exc.errno or errno.EACCES)}): "
                "run as a user in the group that owns it (usually 'kvm')"
            ) from exc
        except OSError as exc:
            raise KvmUnavailable(f"cannot open {path} ({_errno_text(exc.errno or 0)})") from exc
        try:
            version = fcntl.ioctl(fd, ioctls.KVM_GET_API_VERSION, 0)
        except OSError as exc:
            os.close(fd)
            raise KvmUnavailable(
                f"{path} is not a KVM device: KVM_GET_API_VERSION failed "
                f"({_errno_text(exc.errno or 0)})"
            ) from exc
        if version != ioctls.KVM_API_VERSION:
            os.close(fd)
            raise KvmUnavailable(
                f"{path} speaks KVM API version {version}, coco needs {ioctls.KVM_API_VERSION}"
            )
        return cls(fd, path)

    def api_version(self) -> int:
        """``KVM_GET_API_VERSION``."""
        return fcntl.ioctl(self.fd, ioctls.KVM_GET_API_VERSION, 0)

    def check_extension(self, cap: int) -> int:
        """``KVM_CHECK_EXTENSION`` on ``/dev/kvm`` (0 when unknown or refused)."""
        try:
            return fcntl.ioctl(self.fd, ioctls.KVM_CHECK_EXTENSION, cap)
        except OSError:
            return 0

    def vcpu_mmap_size(self) -> int:
        """``KVM_GET_VCPU_MMAP_SIZE``: the size of each vCPU's ``kvm_run`` mapping."""
        if self._mmap_size is None:
            self._mmap_size = fcntl.ioctl(self.fd, ioctls.KVM_GET_VCPU_MMAP_SIZE, 0)
        return self._mmap_size

    def supported_cpuid(self) -> tuple[CpuidEntry2, ...]:
        """``KVM_GET_SUPPORTED_CPUID`` (cached)."""
        if self._cpuid is not None:
            return self._cpuid
        nent = _CPUID_START_ENTRIES
        while True:
            buf = pack_cpuid2((), capacity=nent)
            try:
                fcntl.ioctl(self.fd, ioctls.KVM_GET_SUPPORTED_CPUID, buf)
            except OSError as exc:
                if exc.errno == errno.E2BIG and nent < _CPUID_MAX_ENTRIES:
                    nent *= 2
                    continue
                raise ConfigurationError(
                    f"KVM_GET_SUPPORTED_CPUID on {self.path} failed ({_errno_text(exc.errno or 0)})"
                ) from exc
            self._cpuid = unpack_cpuid2(buf)
            return self._cpuid

    def has_device_attr(self, group: int, attr: int) -> bool:
        """``KVM_HAS_DEVICE_ATTR`` on ``/dev/kvm``."""
        try:
            fcntl.ioctl(self.fd, ioctls.KVM_HAS_DEVICE_ATTR, DeviceAttr(group, attr).pack())
        except OSError:
            return False
        return True

    def create_vm(self, vm_type: int = ioctls.KVM_X86_DEFAULT_VM) -> Vm:
        """``KVM_CREATE_VM`` of ``vm_type``."""
        from coco_core.kvm.vm import Vm

        return Vm.create(self, vm_type)

    def probe(self) -> HostCapabilities:
        """Collect the capabilities coco uses into a :class:`HostCapabilities`."""
        types_mask = self.check_extension(ioctls.KVM_CAP_VM_TYPES)
        # Without KVM_CAP_VM_TYPES only the default type exists (api.rst, KVM_CREATE_VM).
        vm_types = frozenset(t for t in range(64) if types_mask >> t & 1) or frozenset({0})
        try:
            with self.create_vm() as vm:
                vm_attrs = vm.check_extension(ioctls.KVM_CAP_MEMORY_ATTRIBUTES)
        except ConfigurationError:
            vm_attrs = 0
        return HostCapabilities(
            path=self.path,
            api_version=self.api_version(),
            vcpu_mmap_size=self.vcpu_mmap_size(),
            vm_types=vm_types,
            exit_hypercall_mask=self.check_extension(ioctls.KVM_CAP_EXIT_HYPERCALL),
            user_space_msr=bool(self.check_extension(ioctls.KVM_CAP_X86_USER_SPACE_MSR)),
            memory_attributes=self.check_extension(ioctls.KVM_CAP_MEMORY_ATTRIBUTES),
            vm_memory_attributes=vm_attrs,
            guest_memfd=bool(self.check_extension(ioctls.KVM_CAP_GUEST_MEMFD)),
            guest_memfd_flags=self.check_extension(ioctls.KVM_CAP_GUEST_MEMFD_FLAGS),
            snp_req_certs=device_attr_value(
                self.fd, ioctls.KVM_X86_GRP_SEV, ioctls.KVM_X86_SEV_SNP_REQ_CERTS
            )
            == 1,
            system_event_data=bool(self.check_extension(ioctls.KVM_CAP_SYSTEM_EVENT_DATA)),
            memory_fault_info=bool(self.check_extension(ioctls.KVM_CAP_MEMORY_FAULT_INFO)),
            immediate_exit=bool(self.check_extension(ioctls.KVM_CAP_IMMEDIATE_EXIT)),
        )

    def close(self) -> None:
        """Close ``/dev/kvm`` (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
