# SPDX-License-Identifier: Apache-2.0
"""Private/shared bookkeeping per guest page, and the conversion handler.

One handler serves the neutral :class:`~coco_core.requests.MemoryConversion`
(SNP page-state changes and TDX MapGPA, both ``KVM_HC_MAP_GPA_RANGE``) and
:class:`~coco_core.requests.MemoryFault` (``KVM_EXIT_MEMORY_FAULT``). It checks
the guest's range and attributes before touching anything, records the new
state per 4 KiB page, and, where the kernel supports it, applies it with
``KVM_SET_MEMORY_ATTRIBUTES`` (``KVM_MEMORY_ATTRIBUTE_PRIVATE`` = 1 << 3,
include/uapi/linux/kvm.h, Linux 6.8+).

**Cost a guest cannot inflate.** State is kept as sorted, disjoint intervals,
so a 1 GiB conversion is one entry, not 262,144. A guest that fragments its
memory (every other page shared) makes many intervals, so they are kept in
blocks of at most :data:`BLOCK` starts (the layout of sortedcontainers'
``SortedList``): one conversion costs O(log n) to find its place, plus the
intervals it actually changes, plus one block edit of at most ``BLOCK``
entries; never a walk or a rebuild of all intervals. ``make bench`` measures
it at 10^3, 10^4 and 10^5 intervals (``bench/memattr.py``). Memory is bounded
by guest RAM: only ranges wholly inside it are recorded, and adjacent
intervals with the same state merge, so there are never more intervals than
RAM pages.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from coco_core.generic.uapi import KVM_MEMORY_ATTRIBUTE_PRIVATE, PAGE_SIZE
from coco_core.requests import MemoryConversion, MemoryFault
from coco_core.status import CoCoStatus, Outcome

__all__ = ["BLOCK", "KVM_MEMORY_ATTRIBUTE_PRIVATE", "PAGE_SIZE", "MemoryAttributeTracker"]

log = logging.getLogger("coco_core.services.memattr")

#: ``apply(gpa, size, attributes)``: push a change to KVM (``Vm.set_memory_attributes``)
ApplyFn = Callable[[int, int, int], None]
#: ``contains(gpa, size)``: the range lies wholly in guest RAM
ContainsFn = Callable[[int, int], bool]

#: Starts per block before it splits in two (our choice: sortedcontainers' default
#: load is 1000; a smaller block keeps the per-change list edit short).
BLOCK = 512
#: 52-bit guest-physical addresses in 4 KiB pages: the most a page count can mean
_MAX_PAGES = 1 << 40


class _Starts:
    """A sorted set of ints kept in blocks: find, add and remove in O(log n + BLOCK)."""

    __slots__ = ("blocks", "firsts")

    def __init__(self) -> None:
        self.blocks: list[list[int]] = []
        #: the first value of each block, for the bisect that picks a block
        self.firsts: list[int] = []

    def floor(self, x: int) -> int | None:
        """The largest value <= ``x``, or None."""
        b = bisect.bisect_right(self.firsts, x) - 1
        if b < 0:
            return None
        block = self.blocks[b]
        return block[bisect.bisect_right(block, x) - 1]

    def ceiling(self, x: int) -> int | None:
        """The smallest value >= ``x``, or None."""
        b = max(bisect.bisect_right(self.firsts, x) - 1, 0)
        while b < len(self.blocks):
            block = self.blocks[b]
            i = bisect.bisect_left(block, x)
            if i < len(block):
                return block[i]
            b += 1
        return None

    def add(self, x: int) -> None:
        """Insert ``x`` (not already present)."""
        if not self.blocks:
            self.blocks.append([x])
            self.firsts.append(x)
            return
        b = max(bisect.bisect_right(self.firsts, x) - 1, 0)
        block = self.blocks[b]
        bisect.insort(block, x)
        self.firsts[b] = block[0]
        if len(block) > 2 * BLOCK:  # split: the index of firsts grows by one
            half = block[BLOCK:]
            del block[BLOCK:]
            self.blocks.insert(b + 1, half)
            self.firsts.insert(b + 1, half[0])

    def remove(self, x: int) -> None:
        """Remove ``x`` (present)."""
        b = bisect.bisect_right(self.firsts, x) - 1
        block = self.blocks[b]
        del block[bisect.bisect_left(block, x)]
        if not block:
            del self.blocks[b]
            del self.firsts[b]
        else:
            self.firsts[b] = block[0]

    def __iter__(self) -> Iterator[int]:
        for block in self.blocks:
            yield from block

    def __len__(self) -> int:
        return sum(len(b) for b in self.blocks)


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
        # one lock: KVM's attribute change and the books move together, in one order
        self._lock = threading.Lock()
        self._starts = _Starts()
        #: interval start -> (end, private), for [start, end)
        self._ranges: dict[int, tuple[int, bool]] = {}

    # -- queries ---------------------------------------------------------------------

    def is_private(self, gpa: int) -> bool:
        """The state of the page holding ``gpa``."""
        with self._lock:
            s = self._starts.floor(gpa)
            if s is not None:
                end, private = self._ranges[s]
                if gpa < end:
                    return private
            return self._default

    def ranges(self) -> list[tuple[int, int, bool]]:
        """Every explicitly set ``(start, end, private)`` interval, sorted."""
        with self._lock:
            return [(s, *self._ranges[s]) for s in self._starts]

    def __len__(self) -> int:
        """The number of explicitly set intervals."""
        with self._lock:
            return len(self._ranges)

    # -- changes ---------------------------------------------------------------------

    def set_range(self, gpa: int, size: int, private: bool) -> None:
        """Record ``[gpa, gpa + size)`` as private or shared (page aligned, size > 0)."""
        with self._lock:
            self._set(gpa, gpa + size, private)

    def _set(self, start: int, end: int, private: bool) -> None:
        """Cut what ``[start, end)`` overlaps, merge same-state neighbours; O(log n + k)."""
        starts, ranges = self._starts, self._ranges
        new_start, new_end = start, end
        keep: list[tuple[int, int, bool]] = []  # pieces of other state outside the range
        left = starts.floor(start - 1)  # the interval that starts before the range
        if left is not None:
            left_end, left_private = ranges[left]
            if left_private == private and left_end >= start:  # overlaps or touches: merge
                new_start, new_end = left, max(end, left_end)
                starts.remove(left)
                del ranges[left]
            elif left_end > start:  # overlapped by the other state: cut it at start
                if left_end > end:
                    keep.append((end, left_end, left_private))
                ranges[left] = (start, left_private)
        while True:  # the intervals that start inside [start, end]: each is removed once
            nxt = starts.ceiling(start)
            if nxt is None or nxt > end:
                break
            nxt_end, nxt_private = ranges[nxt]
            if nxt == end and nxt_private != private:
                break  # touches at the end with the other state: untouched
            starts.remove(nxt)
            del ranges[nxt]
            if nxt_end > end:
                if nxt_private == private:
                    new_end = max(new_end, nxt_end)
                else:
                    keep.append((end, nxt_end, nxt_private))
                break
        for s, e, p in keep:
            starts.add(s)
            ranges[s] = (e, p)
        starts.add(new_start)
        ranges[new_start] = (new_end, private)

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
        with self._lock:
            if self._apply is not None:
                try:
                    self._apply(gpa, size, KVM_MEMORY_ATTRIBUTE_PRIVATE if to_private else 0)
                except Exception as exc:  # the kernel said no: the guest gets an error, we go on
                    log.warning("KVM_SET_MEMORY_ATTRIBUTES failed for %#x+%#x: %s", gpa, size, exc)
                    return Outcome(CoCoStatus.ERROR, detail=str(exc))
            self._set(gpa, gpa + size, to_private)
        return CoCoStatus.OK

    # -- handlers for the dispatcher -------------------------------------------------

    def on_conversion(self, request: MemoryConversion, context: Any = None) -> CoCoStatus | Outcome:
        """Handler for :class:`MemoryConversion` (MAP_GPA_RANGE).

        Attributes with reserved bits 63:5 set, or an undefined page-size
        encoding, are INVALID (Documentation/virt/kvm/x86/hypercalls.rst:
        "reserved (must be zero)"), as is a page count of 0 or beyond 2^40.
        """
        problem = request.attribute_problem
        if problem is not None:
            return Outcome(CoCoStatus.INVALID, detail=problem)
        if not 0 < request.npages <= _MAX_PAGES:
            return Outcome(CoCoStatus.INVALID, detail=f"page count {request.npages} out of range")
        return self.convert(request.gpa, request.size, request.to_private)

    def on_fault(self, request: MemoryFault, context: Any = None) -> CoCoStatus | Outcome:
        """Handler for :class:`MemoryFault`: convert the faulting range, then re-run."""
        start = request.gpa - request.gpa % PAGE_SIZE
        end = request.gpa + max(request.size, 1)
        end += -end % PAGE_SIZE
        return self.convert(start, end - start, request.to_private)
