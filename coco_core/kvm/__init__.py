# SPDX-License-Identifier: Apache-2.0
"""The real ``/dev/kvm`` backend: VMs, vCPUs, guest memory, the run loop.

:mod:`~coco_core.kvm.system` opens ``/dev/kvm`` and reads what the host
offers, :mod:`~coco_core.kvm.probe` proves it can run a guest;
:mod:`~coco_core.kvm.vm` and :mod:`~coco_core.kvm.vcpu` wrap the VM and vCPU
file descriptors; :mod:`~coco_core.kvm.runloop` runs one thread per vCPU;
:mod:`~coco_core.kvm.serve` connects a run loop to a dispatcher, and
:class:`~coco_core.kvm.closing.Closing` gives what holds descriptors its ``with``. Ioctl numbers:
:mod:`~coco_core.kvm.ioctls`, argument structs :mod:`~coco_core.kvm.structs`
(Linux 7.2 uapi); ``struct kvm_run`` itself is :mod:`coco_core.generic.uapi`'s.

What is x86-specific here: the register and segment structs, long-mode
bring-up (:meth:`Vcpu.setup_long_mode`) and CPUID.

May import: the top level of :mod:`coco_core` and :mod:`coco_core.generic`.
"""

from __future__ import annotations

from coco_core.errors import GuestMemoryError, KvmRunError, KvmUnavailable, RunDeadlineExceeded
from coco_core.kvm import ioctls
from coco_core.kvm.probe import usable
from coco_core.kvm.runloop import (
    Action,
    RunLoop,
    StopReason,
    VcpuRunResult,
    Watchdog,
    holds_exit,
    install_kick_handler,
    run_until,
)
from coco_core.kvm.serve import Fallback, coco_exit_handler
from coco_core.kvm.structs import CpuidEntry2, DeviceAttr, MsrEntry, Regs, Sregs
from coco_core.kvm.system import HostCapabilities, Kvm, device_attr_value
from coco_core.kvm.vcpu import RunOutcome, Vcpu
from coco_core.kvm.vm import GuestMemory, GuestRam, Vm

__all__ = [
    "Action",
    "CpuidEntry2",
    "DeviceAttr",
    "Fallback",
    "GuestMemory",
    "GuestMemoryError",
    "GuestRam",
    "HostCapabilities",
    "Kvm",
    "KvmRunError",
    "KvmUnavailable",
    "MsrEntry",
    "Regs",
    "RunDeadlineExceeded",
    "RunLoop",
    "RunOutcome",
    "Sregs",
    "StopReason",
    "Vcpu",
    "VcpuRunResult",
    "Vm",
    "Watchdog",
    "coco_exit_handler",
    "device_attr_value",
    "holds_exit",
    "install_kick_handler",
    "ioctls",
    "run_until",
    "usable",
]
