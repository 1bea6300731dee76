# SPDX-License-Identifier: Apache-2.0
"""plugins/snp/coco_snp."""

from __future__ import annotations
