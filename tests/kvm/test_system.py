# SPDX-License-Identifier: Apache-2.0
"""/dev/kvm: opening with clear errors, capability probing and the usable() check."""

from __future__ import annotations

import errno
import fcntl
import os
from typing import Any

import pytest

from coco_core.errors import ConfigurationError
from coco_core.generic.uapi import KVM_MEMORY_ATTRIBUTE_PRIVATE
from coco_core.kvm import ioctls
from coco_core.kvm.probe import usable
from coco_core.kvm.system import HostCapabilities, Kvm, KvmUnavailable
from coco_core.kvm.vm import GuestMemoryError


def test_open_missing_path_names_path_and_errno(tmp_path: Any) -> None:
    """A missing device raises KvmUnavailable naming the path and ENOENT."""
    path = str(tmp_path / "nokvm")
    with pytest.raises(KvmUnavailable, match="ENOENT") as info:
        Kvm.open(path)
    assert path in str(info.value)
    assert isinstance(info.value, ConfigurationError)


def test_open_not_a_kvm_device() -> None:
    """A device that is not KVM fails KVM_GET_API_VERSION with a clear message."""
    with pytest.raises(KvmUnavailable, match=r"not a KVM device.*ENOTTY"):
        Kvm.open("/dev/null")


def test_open_permission_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    """EACCES on open says the device is not accessible and how to fix it."""

    def deny(path: str, flags: int) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(KvmUnavailable, match=r"not accessible.*EACCES.*kvm"):
        Kvm.open("/dev/kvm")


def test_open_wrong_api_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """An API version other than 12 is refused, naming both versions."""
    real = fcntl.ioctl

    def fake(fd: int, request: int, arg: Any = 0, *rest: Any) -> Any:
        if request == ioctls.KVM_GET_API_VERSION:
            return 11
        return real(fd, request, arg, *rest)

    monkeypatch.setattr(fcntl, "ioctl", fake)
    with pytest.raises(KvmUnavailable, match="version 11, coco needs 12"):
        Kvm.open("/dev/null")


def test_probe_reports_host(kvm: Kvm) -> None:
    """probe() returns a frozen HostCapabilities consistent with KVM_CHECK_EXTENSION."""
    caps = kvm.probe()
    assert isinstance(caps, HostCapabilities)
    assert caps.api_version == 12
    assert caps.vcpu_mmap_size >= ioctls.SIZEOF_KVM_RUN
    assert caps.vcpu_mmap_size % 4096 == 0
    assert caps.supports_vm_type(ioctls.KVM_X86_DEFAULT_VM)
    assert caps.exit_hypercall_mask == kvm.check_extension(ioctls.KVM_CAP_EXIT_HYPERCALL)
    assert caps.user_space_msr == bool(kvm.check_extension(ioctls.KVM_CAP_X86_USER_SPACE_MSR))
    assert caps.snp_req_certs == kvm.has_device_attr(
        ioctls.KVM_X86_GRP_SEV, ioctls.KVM_X86_SEV_SNP_REQ_CERTS
    )
    with pytest.raises(AttributeError):
        caps.api_version = 13  # type: ignore[misc]


def test_usable_runs_a_guest(kvm: Kvm) -> None:
    """usable() runs the probe guest to its port I/O exit and says so."""
    ok, reason = usable(kvm, deadline=5.0)
    assert ok, reason
    assert "port I/O exit" in reason


def test_supported_cpuid_has_long_mode(kvm: Kvm) -> None:
    """KVM_GET_SUPPORTED_CPUID lists leaf 0x80000001 with the LM bit (EDX bit 29)."""
    leaves = {(e.function, e.index): e for e in kvm.supported_cpuid()}
    assert (0, 0) in leaves
    assert leaves[(0x80000001, 0)].edx >> 29 & 1
    assert kvm.supported_cpuid() is kvm.supported_cpuid()  # cached


def test_unsupported_vm_type_is_a_configuration_error(kvm: Kvm) -> None:
    """Creating a VM type the host lacks raises ConfigurationError naming the type."""
    caps = kvm.probe()
    missing = [t for t in range(1, 6) if not caps.supports_vm_type(t)]
    if not missing:
        pytest.skip("this host supports every VM type 0..5")
    with pytest.raises(ConfigurationError, match=f"type={missing[-1]}"):
        kvm.create_vm(missing[-1])


def test_memory_attributes_unsupported_is_clear(kvm: Kvm) -> None:
    """set_memory_attributes on a VM without the capability raises a clear ConfigurationError."""
    with kvm.create_vm() as vm:
        if vm.check_extension(ioctls.KVM_CAP_MEMORY_ATTRIBUTES) & KVM_MEMORY_ATTRIBUTE_PRIVATE:
            pytest.skip("this VM supports private memory attributes")
        vm.add_memory(0, 0x10000)
        with pytest.raises(ConfigurationError, match="KVM_CAP_MEMORY_ATTRIBUTES"):
            vm.set_memory_attributes(0, 0x1000, KVM_MEMORY_ATTRIBUTE_PRIVATE)


def test_exit_hypercall_mask_is_checked(kvm: Kvm) -> None:
    """enable_exit_hypercall accepts the supported mask and refuses anything beyond it."""
    supported = kvm.check_extension(ioctls.KVM_CAP_EXIT_HYPERCALL)
    with kvm.create_vm() as vm:
        with pytest.raises(ConfigurationError, match="supported mask"):
            vm.enable_exit_hypercall(supported | 1 << 63)
        if supported:
            vm.enable_exit_hypercall(supported)


def test_memory_slots_overlap_refused(kvm: Kvm) -> None:
    """A second slot overlapping the first is refused before KVM sees it."""
    with kvm.create_vm() as vm:
        ram = vm.add_memory(0, 0x10000)
        assert ram.slot == 0
        with pytest.raises(GuestMemoryError, match="overlaps"):
            vm.add_memory(0x8000, 0x10000)
        assert vm.add_memory(0x10000, 0x1000).slot == 1
