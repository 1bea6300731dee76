# SPDX-License-Identifier: Apache-2.0
"""The emulated TEE's port numbers, importable without the KVM runtime.

The convention is documented in :mod:`coco_core.emulated.doorbell`; the ``.equ``
values in ``coco_core/emulated/guest/doorbell.S`` and ``emulated.S`` must match
(a test checks). Plugins import their doorbell port from here so that loading
a plugin (and so ``coco --help``) does not load the run loop.
"""

from __future__ import annotations

__all__ = [
    "CONSOLE_PORT",
    "DOORBELL_TDVMCALL_PORT",
    "DOORBELL_VMGEXIT_PORT",
    "PINGPONG_PORT",
    "REPORT_PORT",
    "RESULT_PORT",
]

DOORBELL_TDVMCALL_PORT = 0x0CC0  # "TDVMCALL": TDX guests ring here
DOORBELL_VMGEXIT_PORT = 0x0CC1  # "VMGEXIT": SNP guests ring here
REPORT_PORT = 0x0CCD  # RDI = tag, RSI = value: a guest hands the VMM a value
CONSOLE_PORT = 0x0CCE  # one console byte per out
RESULT_PORT = 0x0CCF  # the guest's result: 0 pass, anything else a fail code
PINGPONG_PORT = 0x0CD0  # the round-trip benchmark guest's port
