# SPDX-License-Identifier: Apache-2.0
"""Tests for the private/shared page tracker and its handlers."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from coco_core.requests import MemoryConversion, MemoryFault
from coco_core.services.memattr import PAGE_SIZE, MemoryAttributeTracker
from coco_core.status import CoCoStatus, Outcome

RAM = 64 * PAGE_SIZE


def _inside(gpa: int, size: int) -> bool:
    return gpa >= 0 and size >= 0 and gpa + size <= RAM


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 63), st.integers(1, 16), st.booleans()), max_size=20))
def test_intervals_match_a_per_page_model(ops: list[tuple[int, int, bool]]) -> None:
    """Any sequence of conversions leaves the same state as a per-page dictionary."""
    t = MemoryAttributeTracker(_inside, initially_private=True)
    pages = dict.fromkeys(range(64), True)
    for first, wanted, private in ops:
        count = min(wanted, 64 - first)
        assert t.convert(first * PAGE_SIZE, count * PAGE_SIZE, private) is CoCoStatus.OK
        for i in range(first, first + count):
            pages[i] = private
    for i in range(64):
        assert t.is_private(i * PAGE_SIZE + 7) is pages[i]
    starts = [s for s, _, _ in t.ranges()]
    assert starts == sorted(starts)


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**64), 2**64), st.integers(-(2**64), 2**64), st.booleans())
def test_hostile_ranges_never_change_state(gpa: int, size: int, private: bool) -> None:
    """A range outside RAM or unaligned is refused with INVALID and records nothing."""
    t = MemoryAttributeTracker(_inside)
    result = t.convert(gpa, size, private)
    ok = size > 0 and gpa % PAGE_SIZE == 0 and size % PAGE_SIZE == 0 and _inside(gpa, size)
    if ok:
        assert result is CoCoStatus.OK
    else:
        assert isinstance(result, Outcome)
        assert result.status is CoCoStatus.INVALID
        assert t.ranges() == []


def test_conversion_handler_private_shared_private() -> None:
    """A MapGPA-style request flips pages shared and back to private."""
    t = MemoryAttributeTracker(_inside)
    assert t.on_conversion(MemoryConversion(0x2000, 2, False)) is CoCoStatus.OK
    assert not t.is_private(0x2000)
    assert not t.is_private(0x3FFF)
    assert t.is_private(0x4000)
    assert t.on_conversion(MemoryConversion(0x2000, 2, True)) is CoCoStatus.OK
    assert t.is_private(0x2000)
    assert t.ranges() == [(0x2000, 0x4000, True)]


def test_fault_handler_rounds_to_pages() -> None:
    """A memory fault converts the whole pages its range touches."""
    t = MemoryAttributeTracker(_inside)
    assert t.on_fault(MemoryFault(0x1234, 0x10, False)) is CoCoStatus.OK
    assert t.ranges() == [(0x1000, 0x2000, False)]


def test_apply_failure_is_an_error_not_an_exception() -> None:
    """If KVM refuses the attribute change, the guest gets ERROR and books stay unchanged."""

    def refuse(gpa: int, size: int, attrs: int) -> None:
        raise OSError(25, "ENOTTY")

    t = MemoryAttributeTracker(_inside, apply=refuse)
    result = t.convert(0, PAGE_SIZE, False)
    assert isinstance(result, Outcome)
    assert result.status is CoCoStatus.ERROR
    assert t.ranges() == []


def test_map_gpa_range_pages_are_4k_whatever_the_page_size_hint() -> None:
    """An SNP 2 MiB PSC entry (512 pages, PAGE_SZ_2M) decodes to a 2 MiB range, not 1 GiB."""
    import struct

    from coco_core.generic.decoders import map_gpa_decoder

    run = bytearray(2352)
    struct.pack_into("<I", run, 8, 3)  # KVM_EXIT_HYPERCALL
    # kvm_run.hypercall at 32: nr=12, args[0]=gpa, args[1]=512, args[2]=ENCRYPTED|PAGE_SZ_2M
    struct.pack_into("<QQQQ", run, 32, 12, 0x200000, 512, 0x10 | 0x1)
    req = map_gpa_decoder(ret_checked=True).decode(memoryview(run))
    assert isinstance(req, MemoryConversion)
    assert (req.gpa, req.npages, req.to_private, req.page_size) == (0x200000, 512, True, 1 << 21)
    assert req.size == 2 << 20


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 63), st.integers(1, 9), st.booleans()), max_size=60),
    st.sampled_from([1, 2, 3, 512]),
)
def test_blocked_intervals_match_a_per_page_model(
    ops: list[tuple[int, int, bool]], block: int
) -> None:
    """With blocks of 1..512 starts (splits on every few adds) the books equal a per-page dict."""
    from coco_core.services import memattr

    old = memattr.BLOCK
    memattr.BLOCK = block
    try:
        t = MemoryAttributeTracker(_inside, initially_private=False)
        pages = dict.fromkeys(range(64), False)
        for first, wanted, private in ops:
            count = min(wanted, 64 - first)
            t.set_range(first * PAGE_SIZE, count * PAGE_SIZE, private)
            for i in range(first, first + count):
                pages[i] = private
        assert [t.is_private(i * PAGE_SIZE) for i in range(64)] == [pages[i] for i in range(64)]
        spans = t.ranges()
        assert [s for s, _, _ in spans] == sorted(s for s, _, _ in spans)
        for (_, e1, p1), (s2, _, p2) in itertools.pairwise(spans):
            assert e1 <= s2  # disjoint
            assert not (e1 == s2 and p1 == p2)  # same-state neighbours merged
    finally:
        memattr.BLOCK = old


def test_every_other_page_shared_keeps_one_interval_per_change() -> None:
    """Sharing every other page of 4096 makes 8191 intervals; re-privatising merges back to one."""
    pages = 4096
    t = MemoryAttributeTracker(lambda gpa, size: gpa + size <= pages * PAGE_SIZE)
    t.set_range(0, pages * PAGE_SIZE, True)
    for i in range(1, pages, 2):
        assert t.convert(i * PAGE_SIZE, PAGE_SIZE, False) is CoCoStatus.OK
    assert len(t) == pages  # private, shared, private, ..., shared: one interval per page
    for i in range(1, pages, 2):
        t.convert(i * PAGE_SIZE, PAGE_SIZE, True)
    assert t.ranges() == [(0, pages * PAGE_SIZE, True)]


def test_reserved_attribute_bits_are_invalid() -> None:
    """A MAP_GPA_RANGE request whose attributes set bit 5 is INVALID and converts nothing."""
    t = MemoryAttributeTracker(_inside)
    bad = t.on_conversion(MemoryConversion(0x1000, 1, False, 4096, 0x20))
    assert isinstance(bad, Outcome)
    assert bad.status is CoCoStatus.INVALID
    assert "reserved bits 63:5" in bad.detail
    assert t.ranges() == []
    assert t.on_conversion(MemoryConversion(0x1000, 1, False, 4096, 0x00)) is CoCoStatus.OK


def _lines_run(tracker: MemoryAttributeTracker, gpa: int, private: bool) -> int:
    """How many lines of memattr.py one conversion executes (a cost that is not wall-clock)."""
    import sys

    from coco_core.services import memattr

    count = 0

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if frame.f_code.co_filename == memattr.__file__:
            if event == "line":
                count += 1
            return trace
        return None

    sys.settrace(trace)
    try:
        assert tracker.convert(gpa, PAGE_SIZE, private) is CoCoStatus.OK
    finally:
        sys.settrace(None)
    return count


def _fragmented(intervals: int) -> MemoryAttributeTracker:
    t = MemoryAttributeTracker(lambda gpa, size: gpa + size <= (intervals + 1) * PAGE_SIZE)
    t.set_range(0, intervals * PAGE_SIZE, True)
    for page in range(1, intervals, 2):
        t.set_range(page * PAGE_SIZE, PAGE_SIZE, False)
    return t


def test_a_conversion_does_the_same_work_at_1000_and_100000_intervals() -> None:
    """Flipping one page executes as many lines with 10^5 intervals as with 10^3 (no walk)."""
    small, large = _fragmented(1_000), _fragmented(100_000)
    for page, private in ((501, True), (501, False)):
        lines_small = _lines_run(small, page * PAGE_SIZE, private)
        lines_large = _lines_run(large, page * PAGE_SIZE, private)
        assert lines_large == lines_small, (private, lines_small, lines_large)
    assert len(small) == 1_000
    assert len(large) == 100_000


def test_the_bench_section_reports_each_size_and_the_ratio() -> None:
    """bench/memattr.py prints one JSON line with the cost at 10^3, 10^4, 10^5 and the ratio."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "bench" / "memattr.py"
    out = subprocess.run(
        [sys.executable, str(script)],
        check=True,
        capture_output=True,
        text=True,
        env=dict(os.environ, COCO_BENCH_QUICK="1"),
        timeout=300,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])["memattr"]
    assert set(result["conversion_ns"]) == {"1000", "10000", "100000"}
    assert all(ns > 0 for ns in result["conversion_ns"].values())
    assert result["flat_ratio"] >= 1.0
    assert isinstance(result["flat"], bool)
