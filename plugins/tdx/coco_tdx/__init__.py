# SPDX-License-Identifier: Apache-2.0
"""coco-tdx: the Intel TDX plugin for coco.

Registered through the ``coco_core`` entry point ``tdx = "coco_tdx.plugin"``.
Modules: :mod:`~coco_tdx.uapi` (``KVM_EXIT_TDX`` and the 2025 proposal),
:mod:`~coco_tdx.ghci` (TDVMCALL, GetQuote and QGS error spaces),
:mod:`~coco_tdx.complete`, :mod:`~coco_tdx.model`, :mod:`~coco_tdx.service`
(GetQuote, event notify, GetTdVmCallInfo), :mod:`~coco_tdx.quote`,
:mod:`~coco_tdx.qgs.wire`, :mod:`~coco_tdx.qgs.client` and :mod:`~coco_tdx.qgs.dev`
(the development QGS).
"""

from __future__ import annotations
