# SPDX-License-Identifier: Apache-2.0
"""The core's own plugin: the generic exits every released kernel has.

``uapi`` holds the one declaration of ``struct kvm_run`` and the generic exit
members; ``kvmerrno`` the positive-errno spaces KVM translates; ``decoders``
the port I/O, MSR, memory-fault and ``KVM_HC_MAP_GPA_RANGE`` decoders;
``hypercall`` the kernel model's exit writer and x86.c's PV hypercall path.

May import: the top level of :mod:`coco_core`.
"""

from __future__ import annotations
