# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_snp.certs.table: building and parsing the GHCB certificate table."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coco_core.errors import DecodeError
from coco_snp.certs.table import (
    ENTRY_SIZE,
    CertTableError,
    CertTableKind,
    build_cert_table,
    parse_cert_table,
    required_pages,
)

TESTDATA = Path(__file__).resolve().parents[3] / "testdata"
VCEK = (TESTDATA / "snp" / "reports" / "milan_v2_gsg_vcek.der").read_bytes()
_ENTRY = struct.Struct("<16sII")


def _entry(guid: uuid.UUID | CertTableKind, offset: int, length: int) -> bytes:
    g = guid.guid if isinstance(guid, CertTableKind) else guid
    return _ENTRY.pack(g.bytes, offset, length)


def test_guid_bytes_are_rfc4122_order() -> None:
    """The VCEK GUID is written in text order (63 da 75 8d ...), not bytes_le."""
    table = build_cert_table([(CertTableKind.VCEK, b"x")])
    assert table[:16] == bytes.fromhex("63da758de6644564adc5f4b93be8accd")
    assert table[:16] != uuid.UUID(CertTableKind.VCEK.value).bytes_le


def test_build_layout_matches_the_spec() -> None:
    """Entries, a zero terminator, then certificates starting at (n + 1) * 24."""
    table = build_cert_table([(CertTableKind.ARK, b"AAA"), (CertTableKind.VCEK, b"BB")])
    assert _ENTRY.unpack_from(table, 0)[1:] == (72, 3)
    assert _ENTRY.unpack_from(table, 24)[1:] == (75, 2)
    assert table[48:72] == bytes(24)
    assert table[72:] == b"AAABB"


def test_empty_table_is_24_zero_bytes() -> None:
    """No entries gives KVM's empty table and parses back to no entries."""
    assert build_cert_table([]) == bytes(24)
    parsed = parse_cert_table(bytes(24))
    assert parsed.entries == ()
    assert parsed.header_size == 24


def test_round_trip_with_real_certificate_and_page_padding() -> None:
    """A page-padded table parses to the same kinds and data."""
    table = build_cert_table([(CertTableKind.VCEK, VCEK), (CertTableKind.ASK, b"ask")])
    padded = table + bytes(required_pages(len(table)) * 4096 - len(table))
    parsed = parse_cert_table(padded)
    assert [e.kind for e in parsed.entries] == [CertTableKind.VCEK, CertTableKind.ASK]
    assert parsed.get(CertTableKind.VCEK) is not None
    assert parsed.get(CertTableKind.VCEK).data == VCEK  # type: ignore[union-attr]
    assert parsed.trailing_zero
    assert parsed.data_end == len(table)


def test_unknown_guid_is_kept() -> None:
    """An unknown GUID is parsed with kind None."""
    g = uuid.UUID("ecae0c0f-9502-43b1-afa2-0ae2e0d565b6")
    parsed = parse_cert_table(build_cert_table([(g, b"info")]))
    assert parsed.entries[0].kind is None
    assert parsed.entries[0].guid == g


def test_missing_terminator_is_rejected() -> None:
    """A table that ends without the zero entry names the entry index."""
    buf = _entry(CertTableKind.VCEK, 48, 1)
    with pytest.raises(CertTableError, match=r"entry 1 at byte 24.*no terminator"):
        parse_cert_table(buf)


def test_offset_into_the_header_is_rejected() -> None:
    """An offset before the end of the terminator is rejected with both numbers."""
    buf = _entry(CertTableKind.VCEK, 40, 8) + bytes(24) + b"x" * 8
    with pytest.raises(CertTableError, match=r"entry 0 \(VCEK\): offset=40.*>= 48"):
        parse_cert_table(buf)


def test_out_of_bounds_entry_is_rejected() -> None:
    """An entry ending past the buffer is rejected naming offset, length and size."""
    buf = _entry(CertTableKind.ARK, 48, 100) + bytes(24) + b"x" * 10
    with pytest.raises(CertTableError, match=r"offset=48 length=100 ends at 148.*58-byte"):
        parse_cert_table(buf)


@pytest.mark.parametrize(("second", "overlaps"), [(81, True), (82, False)])
def test_a_one_byte_overlap_is_rejected_adjacent_entries_are_not(
    second: int, overlaps: bool
) -> None:
    """Entry 1 starting on entry 0's last byte (81) overlaps; right after it (82) does not."""
    buf = (
        _entry(CertTableKind.ARK, 72, 10)  # bytes 72..81
        + _entry(CertTableKind.ASK, second, 10)
        + bytes(24)
        + b"x" * 30
    )
    if overlaps:
        with pytest.raises(CertTableError, match=r"entry 1 .*overlaps entry 0 .*ends at 82"):
            parse_cert_table(buf)
    else:
        assert [e.offset for e in parse_cert_table(buf).entries] == [72, 82]


@pytest.mark.parametrize(("offset", "length"), [(0, 1), (0, 24), (48, 0), (1, 0)])
def test_zero_guid_is_the_terminator_only_when_all_zero(offset: int, length: int) -> None:
    """A zero GUID with offset 0 and a non-zero length (or any other non-zero field) is refused."""
    buf = _ENTRY.pack(bytes(16), offset, length) + bytes(24) + b"x" * 30
    with pytest.raises(CertTableError, match="GUID is all zero but"):
        parse_cert_table(buf)
    assert parse_cert_table(bytes(24) + b"x" * 30).entries == ()  # all zero: the terminator


def test_zero_length_entry_is_rejected() -> None:
    """A zero-length certificate is rejected."""
    buf = _entry(CertTableKind.VCEK, 48, 0) + bytes(24)
    with pytest.raises(CertTableError, match="length=0"):
        parse_cert_table(buf)


def test_nonzero_trailing_bytes_are_tolerated_but_flagged() -> None:
    """Stale bytes after the last certificate are kept out of entries and flagged."""
    parsed = parse_cert_table(build_cert_table([(CertTableKind.VCEK, b"v")]) + b"junk")
    assert not parsed.trailing_zero


def test_build_rejects_empty_certificate() -> None:
    """Building with empty certificate bytes names the entry."""
    with pytest.raises(CertTableError, match="entry 0"):
        build_cert_table([(CertTableKind.VCEK, b"")])


@pytest.mark.parametrize(("n", "pages"), [(0, 0), (1, 1), (4096, 1), (4097, 2), (24, 1)])
def test_required_pages(n: int, pages: int) -> None:
    """Pages round up to 4 KiB."""
    assert required_pages(n) == pages


def test_required_pages_rejects_negative() -> None:
    """A negative length is an error."""
    with pytest.raises(CertTableError):
        required_pages(-1)


_guids = st.one_of(st.sampled_from(list(CertTableKind)), st.uuids().filter(lambda u: u.int != 0))


@given(
    st.lists(st.tuples(_guids, st.binary(min_size=1, max_size=64)), max_size=6), st.integers(0, 100)
)
def test_build_parse_round_trip(
    items: list[tuple[uuid.UUID | CertTableKind, bytes]], pad: int
) -> None:
    """Any list of (GUID, data) survives build then parse, with zero padding."""
    parsed = parse_cert_table(build_cert_table(items) + bytes(pad))
    assert len(parsed.entries) == len(items)
    for entry, (guid, data) in zip(parsed.entries, items, strict=True):
        want = guid.guid if isinstance(guid, CertTableKind) else guid
        assert entry.guid == want
        assert entry.data == data
    assert parsed.header_size == (len(items) + 1) * ENTRY_SIZE


@given(st.binary(max_size=400))
def test_random_bytes_raise_only_cert_table_errors(buf: bytes) -> None:
    """Random input parses or raises CertTableError (a DecodeError)."""
    try:
        parse_cert_table(buf)
    except CertTableError as e:
        problem = e
    else:
        return
    assert isinstance(problem, DecodeError)
    assert str(problem)


@given(
    st.lists(st.tuples(_guids, st.integers(0, 300), st.integers(0, 300)), max_size=5),
    st.binary(max_size=300),
)
def test_hostile_entries_raise_only_cert_table_errors(
    raw: list[tuple[uuid.UUID | CertTableKind, int, int]], tail: bytes
) -> None:
    """Well-framed tables with arbitrary offsets/lengths parse in bounds or raise CertTableError."""
    buf = b"".join(_entry(g, o, n) for g, o, n in raw) + bytes(24) + tail
    try:
        parsed = parse_cert_table(buf)
    except CertTableError:
        return
    for e in parsed.entries:
        assert parsed.header_size <= e.offset
        assert e.offset + e.length <= len(buf)
        assert len(e.data) == e.length


def test_build_accepts_kind_names_and_rejects_unknown_keys() -> None:
    """Entries may be keyed by kind name; an unknown key is a CertTableError naming it."""
    from coco_snp.certs.table import (
        CertTableError,
        CertTableKind,
        build_cert_table,
        parse_cert_table,
    )

    table = build_cert_table([("vcek", b"\x30\x01\x00"), ("ARK", b"\x30\x01\x01")])
    parsed = parse_cert_table(table)
    assert [e.guid for e in parsed.entries] == [CertTableKind.VCEK.guid, CertTableKind.ARK.guid]
    with pytest.raises(CertTableError, match="'nonsense' is neither a GUID nor a known kind"):
        build_cert_table([("nonsense", b"\x30")])
