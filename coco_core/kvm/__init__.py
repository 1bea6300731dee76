# SPDX-License-Identifier: Apache-2.0
"""The real ``/dev/kvm`` backend: VMs, vCPUs, guest memory, the run loop.

:mod:`~coco_core.kvm.system` opens ``/dev/kvm`` and probes what the host can
do; :mod:`~coco_core.kvm.vm` and :mod:`~coco_core.kvm.vcpu` wrap the VM and
vCPU file descriptors; :mod:`~coco_core.kvm.runloop` runs one thread per vCPU;
:mod:`~coco_core.kvm.serve` connects a run loop to a dispatcher;
:mod:`~coco_core.emulated.doorbell` and :mod:`~coco_core.emulated.guestbuild` drive the
emulated TEE's test guests. Ioctl numbers: :mod:`~coco_core.kvm.ioctls`
(Linux 7.2 uapi).
"""

from __future__ import annotations
