# SPDX-License-Identifier: Apache-2.0
"""GuestRam/GuestMemory: bounds checks that no guest GPA or size can get around."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coco_core.errors import CoCoError
from coco_core.kvm.vm import GuestMemory, GuestMemoryError, GuestRam

U64 = 2**64


def test_from_buffer_writes_through() -> None:
    """A bytearray-backed GuestMemory reads and writes the caller's buffer."""
    buf = bytearray(0x100)
    mem = GuestMemory.from_buffer(0x1000, buf)
    mem.write(0x1010, b"abc")
    assert buf[0x10:0x13] == b"abc"
    assert mem.read(0x1010, 3) == b"abc"
    mem.write_u64(0x10F8, 0x1122334455667788)
    assert mem.read_u64(0x10F8) == 0x1122334455667788
    mem.write_u32(0x1000, 0xDEADBEEF)
    assert mem.read_u32(0x1000) == 0xDEADBEEF
    mem.window(0x1020, 2)[:] = b"xy"
    assert buf[0x20:0x22] == b"xy"


def test_error_is_a_coco_error() -> None:
    """GuestMemoryError derives from CoCoError and names the range."""
    mem = GuestMemory.from_buffer(0x1000, bytearray(0x100))
    with pytest.raises(CoCoError, match="gpa=0x10ff size=0x2"):
        mem.read(0x10FF, 2)


@pytest.mark.parametrize(
    ("gpa", "size", "inside"),
    [
        (0x1000, 0x100, True),
        (0x1000, 0, True),
        (0x1100, 0, True),  # empty range at the end
        (0x10FF, 1, True),
        (0x10FF, 2, False),
        (0xFFF, 1, False),
        (0x1101, 0, False),
        (0x1000, -1, False),
        (-1, 1, False),
        (U64 - 1, 2, False),  # would wrap in 64-bit arithmetic
        (0x1080, U64 - 0x40, False),  # gpa + size wraps to 0x1040 in 64 bits
    ],
)
def test_contains_edges(gpa: int, size: int, inside: bool) -> None:
    """contains() is exact at the edges and never fooled by 64-bit wrap-around."""
    ram = GuestRam.from_buffer(0x1000, bytearray(0x100))
    assert ram.contains(gpa, size) is inside
    assert GuestMemory([ram]).contains(gpa, size) is inside


def test_overlapping_slots_are_refused() -> None:
    """Adding a slot that overlaps another raises GuestMemoryError."""
    mem = GuestMemory.from_buffer(0x1000, bytearray(0x1000))
    with pytest.raises(GuestMemoryError, match="overlaps"):
        mem.add(GuestRam.from_buffer(0x1800, bytearray(0x1000)))
    with pytest.raises(GuestMemoryError, match="overlaps"):
        mem.add(GuestRam.from_buffer(0x0800, bytearray(0x1000)))
    mem.add(GuestRam.from_buffer(0x2000, bytearray(0x1000)))  # adjacent is fine
    assert [s.gpa for s in mem.slots] == [0x1000, 0x2000]


def test_range_across_adjacent_slots_is_refused() -> None:
    """A range must lie inside one slot, even when two slots are adjacent."""
    mem = GuestMemory(
        [
            GuestRam.from_buffer(0x2000, bytearray(0x1000)),
            GuestRam.from_buffer(0x1000, bytearray(0x1000)),
        ]
    )
    assert mem.read(0x1FFF, 1) == b"\0"
    assert mem.read(0x2000, 1) == b"\0"
    with pytest.raises(GuestMemoryError):
        mem.read(0x1FFF, 2)


def test_anonymous_ram_is_zeroed_and_closable() -> None:
    """An mmap-backed slot starts zeroed, has a host address and closes idempotently."""
    ram = GuestRam.anonymous(0x10000, 0x2000)
    assert ram.read(0x10000, 16) == bytes(16)
    ram.write(0x11FF8, b"12345678")
    assert ram.read_u64(0x11FF8) == int.from_bytes(b"12345678", "little")
    assert ram.host_address > 0
    ram.close()
    ram.close()


def test_anonymous_ram_size_must_be_pages() -> None:
    """Slot sizes must be positive page multiples."""
    with pytest.raises(ValueError, match="multiple"):
        GuestRam.anonymous(0, 100)


_layouts = st.lists(
    st.tuples(st.integers(0, 64), st.integers(1, 8)),  # (start page, pages)
    min_size=1,
    max_size=4,
)
_gpas = st.one_of(
    st.integers(0, 80 * 0x100),
    st.integers(-(2**65), 2**65),
    st.sampled_from([U64 - 1, U64, U64 - 0x100]),
)
_sizes = st.one_of(
    st.integers(-4, 0x900), st.integers(-(2**65), 2**65), st.sampled_from([U64 - 1, U64])
)


def _build(layout: list[tuple[int, int]]) -> tuple[GuestMemory, list[tuple[int, bytearray]]]:
    mem = GuestMemory()
    backing: list[tuple[int, bytearray]] = []
    for start, pages in layout:
        buf = bytearray(pages * 0x100)
        try:
            mem.add(GuestRam.from_buffer(start * 0x100, buf))
        except GuestMemoryError:
            continue
        backing.append((start * 0x100, buf))
    return mem, backing


@settings(max_examples=400, deadline=None)
@given(layout=_layouts, gpa=_gpas, size=_sizes)
def test_property_access_iff_inside_one_slot(
    layout: list[tuple[int, int]], gpa: int, size: int
) -> None:
    """For any gpa/size, access succeeds exactly when the range is inside one slot."""
    mem, backing = _build(layout)
    inside = size >= 0 and any(
        start <= gpa and gpa + size <= start + len(buf) for start, buf in backing
    )
    assert mem.contains(gpa, size) is inside
    if inside:
        assert len(mem.read(gpa, size)) == size
    else:
        with pytest.raises(GuestMemoryError):
            mem.read(gpa, size)
        with pytest.raises(GuestMemoryError):
            mem.window(gpa, size)


@settings(max_examples=300, deadline=None)
@given(layout=_layouts, gpa=_gpas, size=st.integers(0, 0x900))
def test_property_write_touches_only_its_range(
    layout: list[tuple[int, int]], gpa: int, size: int
) -> None:
    """A write changes exactly its own bytes, or nothing at all when refused."""
    mem, backing = _build(layout)
    before = [bytes(buf) for _, buf in backing]
    data = b"\xa5" * size
    try:
        mem.write(gpa, data)
    except GuestMemoryError:
        assert [bytes(buf) for _, buf in backing] == before
        return
    for (start, buf), old in zip(backing, before, strict=True):
        expected = bytearray(old)
        lo, hi = max(gpa, start), min(gpa + size, start + len(buf))
        if lo < hi:
            expected[lo - start : hi - start] = data[lo - gpa : hi - gpa]
        assert bytes(buf) == bytes(expected)
