# SPDX-License-Identifier: Apache-2.0
"""Handlers coco ships for neutral requests (memory attributes).

May import: the top level of :mod:`coco_core`.
"""

from __future__ import annotations
