# SPDX-License-Identifier: Apache-2.0
"""Example third-party coco vendor plugin."""

from __future__ import annotations
