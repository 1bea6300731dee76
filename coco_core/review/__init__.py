# SPDX-License-Identifier: Apache-2.0
"""The reviewers' tooling: C and patch parser, ABI comparison, renderers, gcc oracle.

Never imported by the runtime (dispatch, kvm, model, emulated, services).

May import: the top level of :mod:`coco_core`.
"""

from __future__ import annotations
