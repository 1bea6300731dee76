# SPDX-License-Identifier: Apache-2.0
"""coco_core/cli."""

from __future__ import annotations
