# SPDX-License-Identifier: Apache-2.0
"""plugins/tdx/coco_tdx."""

from __future__ import annotations
