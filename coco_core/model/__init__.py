# SPDX-License-Identifier: Apache-2.0
"""coco_core/model."""

from __future__ import annotations
