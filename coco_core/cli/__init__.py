# SPDX-License-Identifier: Apache-2.0
"""The ``coco`` command (entry point :func:`coco_core.cli.main.main`)."""

from __future__ import annotations
