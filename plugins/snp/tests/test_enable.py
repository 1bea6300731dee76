# SPDX-License-Identifier: Apache-2.0
"""The KVM_SEV_SNP_ENABLE_REQ_CERTS step, against the real /dev/kvm where there is one."""

from __future__ import annotations

import fcntl
import os

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
