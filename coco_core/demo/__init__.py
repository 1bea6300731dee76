# SPDX-License-Identifier: Apache-2.0
"""What ``coco demo`` gives each scenario: a backend, tracing, one line per exit.

A vendor plugin's scenario module (registered with
:meth:`~coco_core.registry.Registrar.add_scenario`, imported only when
``coco demo`` runs it) imports what it needs from here: the
:class:`DemoEnv` it is given, the memory-conversion recorder, and the
emulated TEE it runs its guest behind.

May import: everything in :mod:`coco_core`; plugins only through the registry.
"""

from __future__ import annotations

from coco_core.demo.env import ConversionLog, DemoEnv, ExitLine, default_testdata
from coco_core.emulated.guestbuild import GUEST_RAM_SIZE
from coco_core.emulated.tee import EmulatedGuest, EmulatedRun, EmulatedTee, TeeCall, fnv1a32

__all__ = [
    "GUEST_RAM_SIZE",
    "ConversionLog",
    "DemoEnv",
    "EmulatedGuest",
    "EmulatedRun",
    "EmulatedTee",
    "ExitLine",
    "TeeCall",
    "default_testdata",
    "fnv1a32",
]
