# SPDX-License-Identifier: Apache-2.0
"""What ``coco demo`` gives each scenario: a backend, tracing, one line per exit.

May import: everything in :mod:`coco_core`; plugins only through the registry.
"""

from __future__ import annotations
