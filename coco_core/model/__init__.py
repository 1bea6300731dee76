# SPDX-License-Identifier: Apache-2.0
"""The kernel model: KVM's side of every CoCo exit, the oracle of the tests.

:mod:`~coco_core.model.base` holds the data plugins register (guest calls,
kernel generations); :mod:`~coco_core.model.kernel` runs a guest call through
a dispatcher and reports what the guest sees.
"""

from __future__ import annotations
