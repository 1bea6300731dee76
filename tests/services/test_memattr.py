# SPDX-License-Identifier: Apache-2.0
"""Tests for the private/shared page tracker and its handlers."""

from __future__ import annotations

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
