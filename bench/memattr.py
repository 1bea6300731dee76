# SPDX-License-Identifier: Apache-2.0
"""``make bench`` section: the cost of one memory conversion as a guest fragments its memory.

A guest that shares every other 4 KiB page leaves n private/shared intervals. Each
measured exit is a whole ``KVM_EXIT_HYPERCALL``/``KVM_HC_MAP_GPA_RANGE`` through the
dispatcher into :class:`~coco_core.services.memattr.MemoryAttributeTracker`: one page
in the middle of the fragmented range flips (private, which merges three intervals
into one, then shared again, which splits it back), at random places over the whole
range, so n stays the same while it is measured. The cost must not grow with n: the
result says the largest over the smallest cost per conversion at 10^3, 10^4 and 10^5
intervals (``flat_ratio``, within 2 is flat).

Run only this section: ``.venv/bin/python bench/memattr.py`` (``make bench`` runs it
with the others; ``COCO_BENCH_QUICK=1`` makes it a smoke run).
"""

from __future__ import annotations

import json
import os
import random
import struct
import time
from typing import Any

from coco_core.dispatch import Dispatcher
from coco_core.generic.uapi import KVM_RUN_SIZE, HypercallNr, KvmExitReason, MapGpaRangeAttr
from coco_core.registry import Registry
from coco_core.requests import MemoryConversion
from coco_core.services.memattr import PAGE_SIZE, MemoryAttributeTracker

QUICK = os.environ.get("COCO_BENCH_QUICK") == "1"
SIZES = (1_000, 10_000, 100_000)
#: conversions per timed batch, and batches (the best batch is the cost without noise)
PER_BATCH, BATCHES = (20, 2) if QUICK else (2_000, 15)
#: the cost may vary this much across SIZES and still count as flat
FLAT = 2.0


def _image(gpa: int, private: bool) -> bytearray:
    """A ``KVM_EXIT_HYPERCALL`` for one 4 KiB page (kvm_run.hypercall at offset 32)."""
    run = bytearray(KVM_RUN_SIZE)
    struct.pack_into("<I", run, 8, KvmExitReason.HYPERCALL)
    attrs = int(MapGpaRangeAttr.ENCRYPTED) if private else 0
    struct.pack_into("<QQQQ", run, 32, HypercallNr.MAP_GPA_RANGE, gpa, 1, attrs)
    return run


def fragmented(intervals: int) -> MemoryAttributeTracker:
    """A tracker whose first ``intervals`` pages alternate private, shared, private, ..."""
    ram = (intervals + 1) * PAGE_SIZE
    tracker = MemoryAttributeTracker(lambda gpa, size: gpa >= 0 and gpa + size <= ram)
    tracker.set_range(0, intervals * PAGE_SIZE, True)
    for page in range(1, intervals, 2):
        tracker.set_range(page * PAGE_SIZE, PAGE_SIZE, False)
    assert len(tracker) == intervals, (len(tracker), intervals)
    return tracker


def cost_ns(reg: Registry, intervals: int, rng: random.Random) -> float:
    """Best ns per MAP_GPA_RANGE exit over BATCHES batches, with ``intervals`` intervals."""
    tracker = fragmented(intervals)
    d = Dispatcher(reg, "tdx" if "tdx" in reg.vendors else sorted(reg.vendors)[0])
    d.on(MemoryConversion, tracker.on_conversion)
    dispatch = d.dispatch
    best = float("inf")
    for _ in range(BATCHES):
        pages = [rng.randrange(1, intervals - 1, 2) for _ in range(PER_BATCH // 2)]
        runs = []
        for page in pages:  # shared page -> private (merge), then back to shared (split)
            runs += [_image(page * PAGE_SIZE, True), _image(page * PAGE_SIZE, False)]
        start = time.perf_counter_ns()
        for run in runs:
            dispatch(run)
        best = min(best, (time.perf_counter_ns() - start) / len(runs))
        assert len(tracker) == intervals
    return best


def memattr_costs(reg: Registry) -> dict[str, Any]:
    """The section's result: ns per conversion at each size, and the largest/smallest ratio."""
    rng = random.Random(13)
    per = {str(n): round(cost_ns(reg, n, rng), 1) for n in SIZES}
    ratio = max(per.values()) / min(per.values())
    return {"conversion_ns": per, "flat_ratio": round(ratio, 2), "flat": ratio <= FLAT}


def report(result: dict[str, Any]) -> None:
    """Print the section for people."""
    print("memory conversion (KVM_HC_MAP_GPA_RANGE exit, one page flipped) by intervals, ns")
    for n, ns in result["conversion_ns"].items():
        print(f"  {int(n):>9,} intervals {ns:>10.0f}")
    verdict = "flat" if result["flat"] else f"NOT flat (more than {FLAT}x)"
    print(f"  largest / smallest: x{result['flat_ratio']} ({verdict})")


def main() -> None:
    result = memattr_costs(Registry.from_entry_points())
    report(result)
    print(json.dumps({"memattr": result}))


if __name__ == "__main__":
    main()
