# SPDX-License-Identifier: Apache-2.0
"""coco: the vendor-neutral framework for the CoCo userspace exits of Linux KVM."""

from __future__ import annotations
