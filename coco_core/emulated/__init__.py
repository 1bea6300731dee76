# SPDX-License-Identifier: Apache-2.0
"""The emulated TEE: a real guest on any KVM raises CoCo requests through a doorbell.

``tee`` turns doorbell exits into the kernel's CoCo exits through the kernel
model; ``doorbell`` routes port I/O exits; ``guestbuild`` assembles the guests
in ``guest/``; ``ports`` holds the port numbers the guests and plugins share.

May import: :mod:`coco_core.kvm`, :mod:`coco_core.model` and the top level.
"""

from __future__ import annotations
