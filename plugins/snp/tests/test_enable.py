# SPDX-License-Identifier: Apache-2.0
"""The KVM_SEV_SNP_ENABLE_REQ_CERTS step, against the real /dev/kvm where there is one."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct

import pytest

from coco_core.errors import ConfigurationError
from coco_core.kvm import ioctls
from coco_snp.enable import enable_req_certs, probe_req_certs

needs_kvm = pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="no /dev/kvm")


def test_too_late_is_refused_before_any_ioctl() -> None:
    """Enabling after a vCPU exists raises ConfigurationError naming the rule."""
    with pytest.raises(ConfigurationError, match="before any vCPU is created"):
        enable_req_certs(-1, -1, vcpus_created=True)
    with pytest.raises(ConfigurationError, match="not an open /dev/sev"):
        enable_req_certs(-1, -1, vcpus_created=False)


@needs_kvm
def test_probe_and_enable_on_this_host() -> None:
    """Without the attribute the probe is False and enabling fails with a clear error."""
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    try:
        present = probe_req_certs(kvm)
        vm = fcntl.ioctl(kvm, ioctls.KVM_CREATE_VM, 0)
        try:
            if not present:
                with pytest.raises(ConfigurationError, match="does not offer"):
                    enable_req_certs(vm, kvm, vcpus_created=False, kvm_fd=kvm)
            # A default (non-SNP) VM: KVM refuses the command whatever the host offers.
            with pytest.raises(ConfigurationError, match="KVM_SEV_SNP_ENABLE_REQ_CERTS"):
                enable_req_certs(vm, kvm, vcpus_created=False)
        finally:
            os.close(vm)
    finally:
        os.close(kvm)


def _sev_kernel(snp_enabled: bool) -> object:
    """A /dev/kvm whose SEV group behaves as sev.c's sev_dev_get_attr() with SNP on or off."""
    attr_struct = struct.Struct("<IIQQ")  # struct kvm_device_attr: flags, group, attr, addr

    def ioctl(fd: int, request: int, arg: bytes, *rest: object) -> int:
        _flags, group, attr, addr = attr_struct.unpack(arg)
        if (group, attr) != (1, 2):
            raise OSError(errno.ENXIO, "no such attribute")
        if request == ioctls.KVM_GET_DEVICE_ATTR:  # put_user(val, uaddr)
            ctypes.c_uint64.from_address(addr).value = 1 if snp_enabled else 0
        elif request != ioctls.KVM_HAS_DEVICE_ATTR:
            raise OSError(errno.ENOTTY, "unexpected ioctl")
        return 0

    return ioctl


@pytest.mark.parametrize(("snp_enabled", "offered"), [(False, False), (True, True)])
def test_probe_reads_the_attribute_value(
    monkeypatch: pytest.MonkeyPatch, snp_enabled: bool, offered: bool
) -> None:
    """sev_dev_get_attr: ``*val = sev_snp_enabled ? 1 : 0; return 0;``: only 1 means offered."""
    monkeypatch.setattr(fcntl, "ioctl", _sev_kernel(snp_enabled))
    assert probe_req_certs(99) is offered
    if not offered:
        with pytest.raises(ConfigurationError, match="reads 0, expected 1"):
            enable_req_certs(98, 97, vcpus_created=False, kvm_fd=99)
