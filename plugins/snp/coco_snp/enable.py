# SPDX-License-Identifier: Apache-2.0
"""Turning on ``KVM_EXIT_SNP_REQ_CERTS`` for a VM (Linux 7.0+; docs/reference/kernel-abi.md §3.2).

* Probe: ``KVM_GET_DEVICE_ATTR`` on ``/dev/kvm``, group ``KVM_X86_GRP_SEV`` (1), attribute
  ``KVM_X86_SEV_SNP_REQ_CERTS`` (2), must read 1. ``KVM_HAS_DEVICE_ATTR`` is not enough:
  the getter succeeds and writes 0 when SNP is disabled (sev.c ``sev_dev_get_attr``:
  ``*val = sev_snp_enabled ? 1 : 0;``, [PATCH v7 2/2]).
* Enable: ``KVM_MEMORY_ENCRYPT_OP`` on the VM fd with ``struct kvm_sev_cmd`` id
  ``KVM_SEV_SNP_ENABLE_REQ_CERTS`` (103, computed from the enum order). KVM refuses it
  (``-EINVAL``) once any vCPU exists or for a VM that is not SNP; without it KVM answers
  extended guest requests itself with an empty certificate table.
"""

from __future__ import annotations

import errno
import fcntl
import os

from coco_core.kvm import device_attr_value, ioctls
from coco_core.plugin import ConfigurationError
from coco_snp.uapi import (
    KVM_SEV_SNP_ENABLE_REQ_CERTS,
    KVM_X86_GRP_SEV,
    KVM_X86_SEV_SNP_REQ_CERTS,
    KvmSevCmd,
)

__all__ = ["enable_req_certs", "probe_req_certs"]


def probe_req_certs(kvm_fd: int) -> bool:
    """True if this KVM offers certificate requests: the device attribute reads 1."""
    return device_attr_value(kvm_fd, KVM_X86_GRP_SEV, KVM_X86_SEV_SNP_REQ_CERTS) == 1


def enable_req_certs(
    vm_fd: int, sev_fd: int, vcpus_created: bool, *, kvm_fd: int | None = None
) -> None:
    """Issue ``KVM_SEV_SNP_ENABLE_REQ_CERTS`` on an SNP VM.

    :param vm_fd: the VM.
    :param sev_fd: an open ``/dev/sev`` (``kvm_sev_cmd.sev_fd``).
    :param vcpus_created: whether the VMM already created a vCPU; KVM would refuse.
    :param kvm_fd: ``/dev/kvm``, to check the attribute first for a clearer error.
    :raises ConfigurationError: too late (vCPUs exist), the attribute is absent, or KVM
        refused the command (the message carries KVM's errno and firmware error).
    """
    if vcpus_created:
        raise ConfigurationError(
            "KVM_SEV_SNP_ENABLE_REQ_CERTS must be enabled before any vCPU is created "
            "(KVM returns EINVAL once a vCPU exists)"
        )
    if kvm_fd is not None and not probe_req_certs(kvm_fd):
        raise ConfigurationError(
            "this kernel does not offer SNP certificate requests: /dev/kvm device attribute "
            f"group {KVM_X86_GRP_SEV} attr {KVM_X86_SEV_SNP_REQ_CERTS} "
            "(KVM_X86_SEV_SNP_REQ_CERTS) is absent or reads 0, expected 1 (Linux 7.0+ on a "
            "host with SNP enabled)"
        )
    if not 0 <= sev_fd <= 0x7FFFFFFF:
        raise ConfigurationError(f"sev_fd {sev_fd} is not an open /dev/sev descriptor")
    cmd = bytearray(KvmSevCmd(KVM_SEV_SNP_ENABLE_REQ_CERTS, 0, 0, 0, sev_fd).to_bytes())
    try:
        fcntl.ioctl(vm_fd, ioctls.KVM_MEMORY_ENCRYPT_OP, cmd, True)
    except OSError as exc:
        code = exc.errno or 0
        fw = KvmSevCmd.from_buffer(cmd).error
        hint = (
            "not an SNP VM, a vCPU already exists, or the kernel lacks the command"
            if code in (errno.EINVAL, errno.ENOTTY)
            else "see the errno"
        )
        raise ConfigurationError(
            f"KVM_MEMORY_ENCRYPT_OP(KVM_SEV_SNP_ENABLE_REQ_CERTS) failed: "
            f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)}); firmware error "
            f"{fw:#x}; {hint}"
        ) from exc
