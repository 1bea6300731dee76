# SPDX-License-Identifier: Apache-2.0
"""The emulated TEE: a real guest on any KVM raises CoCo requests through a doorbell.

:mod:`~coco_core.emulated.tee` turns doorbell exits into the kernel's CoCo
exits through the kernel model; :mod:`~coco_core.emulated.doorbell` routes
port I/O exits; :mod:`~coco_core.emulated.guestbuild` assembles the guests
(the generic ones in ``guest/``; a plugin ships its own); and
:mod:`~coco_core.emulated.ports` holds the port numbers guests and plugins
share. The names below are imported on first use, so importing the port
numbers does not load the KVM backend.

All of it is x86: the guests are x86-64 assembly and the doorbell is port I/O.

May import: the top level, :mod:`coco_core.generic`, :mod:`coco_core.kvm`,
:mod:`coco_core.model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coco_core._lazy import lazy_names

if TYPE_CHECKING:
    from coco_core.emulated.doorbell import DoorbellHandler, DoorbellRouter, GuestRun
    from coco_core.emulated.guestbuild import (
        GUEST_DIR,
        GUEST_LOAD_GPA,
        GUEST_RAM_SIZE,
        GUEST_SCRATCH_GPA,
        BootedGuest,
        boot_guest,
        build_guest,
        guest_source,
    )
    from coco_core.emulated.ports import (
        CONSOLE_PORT,
        DOORBELL_TDVMCALL_PORT,
        DOORBELL_VMGEXIT_PORT,
        PINGPONG_PORT,
        REPORT_PORT,
        RESULT_PORT,
    )
    from coco_core.emulated.tee import (
        EmulatedGuest,
        EmulatedRun,
        EmulatedTee,
        TeeCall,
        cpu_from_regs,
        fnv1a32,
        regs_from_cpu,
        run_guest,
    )

__all__ = [
    "CONSOLE_PORT",
    "DOORBELL_TDVMCALL_PORT",
    "DOORBELL_VMGEXIT_PORT",
    "GUEST_DIR",
    "GUEST_LOAD_GPA",
    "GUEST_RAM_SIZE",
    "GUEST_SCRATCH_GPA",
    "PINGPONG_PORT",
    "REPORT_PORT",
    "RESULT_PORT",
    "BootedGuest",
    "DoorbellHandler",
    "DoorbellRouter",
    "EmulatedGuest",
    "EmulatedRun",
    "EmulatedTee",
    "GuestRun",
    "TeeCall",
    "boot_guest",
    "build_guest",
    "cpu_from_regs",
    "fnv1a32",
    "guest_source",
    "regs_from_cpu",
    "run_guest",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "doorbell": ("DoorbellHandler", "DoorbellRouter", "GuestRun"),
        "guestbuild": (
            "GUEST_DIR",
            "GUEST_LOAD_GPA",
            "GUEST_RAM_SIZE",
            "GUEST_SCRATCH_GPA",
            "BootedGuest",
            "boot_guest",
            "build_guest",
            "guest_source",
        ),
        "ports": (
            "CONSOLE_PORT",
            "DOORBELL_TDVMCALL_PORT",
            "DOORBELL_VMGEXIT_PORT",
            "PINGPONG_PORT",
            "REPORT_PORT",
            "RESULT_PORT",
        ),
        "tee": (
            "EmulatedGuest",
            "EmulatedRun",
            "EmulatedTee",
            "TeeCall",
            "cpu_from_regs",
            "fnv1a32",
            "regs_from_cpu",
            "run_guest",
        ),
    },
)
