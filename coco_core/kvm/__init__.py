# SPDX-License-Identifier: Apache-2.0
"""coco_core/kvm."""

from __future__ import annotations
