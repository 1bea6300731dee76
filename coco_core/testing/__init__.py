# SPDX-License-Identifier: Apache-2.0
"""coco_core/testing."""

from __future__ import annotations
