# SPDX-License-Identifier: Apache-2.0
"""Private/shared bookkeeping per guest page, and the conversion handler.

One handler serves the neutral :class:`~coco_core.requests.MemoryConversion`
(SNP page-state changes and TDX MapGPA, both ``KVM_HC_MAP_GPA_RANGE``) and
:class:`~coco_core.requests.MemoryFault` (``KVM_EXIT_MEMORY_FAULT``). It checks
the guest's range against guest RAM before touching anything, records the new
state per 4 KiB page, and, where the kernel supports it, applies it with
``KVM_SET_MEMORY_ATTRIBUTES`` (``KVM_MEMORY_ATTRIBUTE_PRIVATE`` = 1 << 3,
include/uapi/linux/kvm.h, Linux 6.8+).

State is kept as sorted, non-overlapping intervals, so a 1 GiB conversion is
one entry, not 262,144.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable
from typing import Any

from coco_core.generic.uapi import KVM_MEMORY_ATTRIBUTE_PRIVATE, PAGE_SIZE
from coco_core.requests import MemoryConversion, MemoryFault
from coco_core.status import CoCoStatus, Outcome

__all__ = ["KVM_MEMORY_ATTRIBUTE_PRIVATE", "PAGE_SIZE", "MemoryAttributeTracker"]

log = logging.getLogger("coco_core.services.memattr")


#: ``apply(gpa, size, attributes)``: push a change to KVM (``Vm.set_memory_attributes``)
ApplyFn = Callable[[int, int, int], None]
#: ``contains(gpa, size)``: the range lies wholly in guest RAM
ContainsFn = Callable[[int, int], bool]


class MemoryAttributeTracker:
    """Which guest pages are private; the handler for conversions and faults.

    :param contains: checks a range against guest RAM (``GuestMemory.contains``).
    :param initially_private: the state of every page before any conversion
        (TDX and SNP guests start private).
    :param apply: called with each accepted change; None to only keep books
        (hosts without ``KVM_CAP_MEMORY_ATTRIBUTES``, such as ours).
    """

    def __init__(
        self, contains: ContainsFn, *, initially_private: bool = True, apply: ApplyFn | None = None
    ) -> None:
        self._contains = contains
        self._default = initially_private
        self._apply = apply
        self._lock = threading.Lock()
        # sorted interval starts, with [start, end) -> private flag
        self._starts: list[int] = []
        self._ranges: dict[int, tuple[int, bool]] = {}

    # -- queries ---------------------------------------------------------------------

    def is_private(self, gpa: int) -> bool:
        """The state of the page holding ``gpa``."""
        with self._lock:
            i = bisect.bisect_right(self._starts, gpa) - 1
            if i >= 0:
                start = self._starts[i]
                end, private = self._ranges[start]
                if gpa < end:
                    return private
            return self._default

    def ranges(self) -> list[tuple[int, int, bool]]:
        """Every explicitly set ``(start, end, private)`` interval, sorted."""
        with self._lock:
            return [(s, *self._ranges[s]) for s in self._starts]

    # -- changes ---------------------------------------------------------------------

    def set_range(self, gpa: int, size: int, private: bool) -> None:
        """Record ``[gpa, gpa + size)`` as private or shared (page aligned)."""
        end = gpa + size
        with self._lock:
            kept: list[tuple[int, int, bool]] = []
            for s in list(self._starts):
                e, p = self._ranges[s]
                if e <= gpa or s >= end:
                    continue
                # cut the overlapped interval; keep what lies outside the new range
                del self._ranges[s]
                self._starts.remove(s)
                if s < gpa:
                    kept.append((s, gpa, p))
                if e > end:
                    kept.append((end, e, p))
            kept.append((gpa, end, private))
            for s, e, p in kept:
                bisect.insort(self._starts, s)
                self._ranges[s] = (e, p)
            self._merge()

    def _merge(self) -> None:
        merged_starts: list[int] = []
        merged: dict[int, tuple[int, bool]] = {}
        for s in self._starts:
            e, p = self._ranges[s]
            if merged_starts:
                ps = merged_starts[-1]
                pe, pp = merged[ps]
                if pe == s and pp == p:
                    merged[ps] = (e, p)
                    continue
            merged_starts.append(s)
            merged[s] = (e, p)
        self._starts, self._ranges = merged_starts, merged

    def convert(self, gpa: int, size: int, to_private: bool) -> CoCoStatus | Outcome:
        """Validate and apply one conversion; the answer for the guest."""
        if size <= 0 or gpa % PAGE_SIZE or size % PAGE_SIZE:
            return Outcome(
                CoCoStatus.INVALID,
                detail=f"range gpa={gpa:#x} size={size:#x} is empty or not 4 KiB aligned",
            )
        if not self._contains(gpa, size):
            return Outcome(
                CoCoStatus.INVALID,
                detail=f"range gpa={gpa:#x} size={size:#x} is not wholly inside guest RAM",
            )
        if self._apply is not None:
            try:
                self._apply(gpa, size, KVM_MEMORY_ATTRIBUTE_PRIVATE if to_private else 0)
            except Exception as exc:  # the kernel said no: the guest gets an error, we go on
                log.warning("KVM_SET_MEMORY_ATTRIBUTES failed for %#x+%#x: %s", gpa, size, exc)
                return Outcome(CoCoStatus.ERROR, detail=str(exc))
        self.set_range(gpa, size, to_private)
        return CoCoStatus.OK

    # -- handlers for the dispatcher -------------------------------------------------

    def on_conversion(self, request: MemoryConversion, context: Any = None) -> CoCoStatus | Outcome:
        """Handler for :class:`MemoryConversion` (MAP_GPA_RANGE)."""
        if request.npages <= 0 or request.npages > 1 << 40:  # 52-bit GPA space in 4 KiB pages
            return Outcome(CoCoStatus.INVALID, detail=f"page count {request.npages} out of range")
        return self.convert(request.gpa, request.size, request.to_private)

    def on_fault(self, request: MemoryFault, context: Any = None) -> CoCoStatus | Outcome:
        """Handler for :class:`MemoryFault`: convert the faulting range, then re-run."""
        start = request.gpa - request.gpa % PAGE_SIZE
        end = request.gpa + max(request.size, 1)
        end += -end % PAGE_SIZE
        return self.convert(start, end - start, request.to_private)
