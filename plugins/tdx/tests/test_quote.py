# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_tdx.quote against the real quotes in testdata/tdx/quotes."""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coco_core.errors import CoCoError, DecodeError
from coco_tdx.quote import (
    HEADER_SIZE,
    MIN_SIGNATURE_DATA_SIZE,
    TD10_BODY_SIZE,
    TD15_BODY_SIZE,
    Quote,
    QuoteBodyType,
    QuoteError,
    QuoteHeader,
    TdQuoteBody,
    quote_size,
)

QUOTES = Path(__file__).resolve().parents[3] / "testdata" / "tdx" / "quotes"

# Used lengths from testdata/SOURCES.md (header + body + 4 + sig_data_len).
EXPECTED = {
    "quote_v4_emr_phala_padded.dat": (5006, 4936, 4),
    "quote_v4_gnr_coco_padded.dat": (5006, 4936, 4),
    "quote_v4_spr_azure_coco_padded.bin": (5006, 4936, 4),
    "quote_v4_spr_coco.dat": (4936, 4936, 4),
    "quote_v4_spr_gcp_cos_padded8000.dat": (8000, 4935, 4),
    "quote_v4_spr_gtg_trailing_text.dat": (4974, 4935, 4),
    "quote_v4_spr_oak_padded8000.dat": (8000, 4935, 4),
    "quote_v5_emr_coco.dat": (5006, 5006, 5),
    "quote_v5_emr_gtg.dat": (5006, 5006, 5),
    "quote_v5_emr_phala_outdated.dat": (5006, 5006, 5),
}


def _load(name: str) -> bytes:
    return (QUOTES / name).read_bytes()


def test_testdata_lists_every_quote_file() -> None:
    """The expectation table covers exactly the files in testdata/tdx/quotes."""
    assert sorted(p.name for p in QUOTES.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_real_quote_parses_with_its_true_size(name: str) -> None:
    """Each recorded quote parses, and its size comes from the structure, not the file length."""
    data = _load(name)
    file_len, used, version = EXPECTED[name]
    assert len(data) == file_len
    quote = Quote.from_bytes(data)
    assert quote.size == used
    assert quote_size(data) == used
    assert quote.version == version
    assert quote.raw == data[:used]
    assert quote.to_bytes() == data[:used]
    assert quote.header.tee_type == 0x81
    assert quote.header.qe_vendor_id.hex() == "939a7233f79c4ca9940a0db3957f0607"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trimmed_quote_parses_to_the_same_value(name: str) -> None:
    """Parsing the trimmed bytes gives a value equal to parsing the padded file."""
    data = _load(name)
    quote = Quote.from_bytes(data)
    assert Quote.from_bytes(quote.raw) == quote


def test_v4_spr_coco_fields() -> None:
    """The v4 SPR quote has the td_attributes, xfam, tee_tcb_svn and sig length of SOURCES.md."""
    quote = Quote.from_bytes(_load("quote_v4_spr_coco.dat"))
    assert quote.body_type is QuoteBodyType.TD_REPORT_10
    assert quote.body_size == TD10_BODY_SIZE
    assert quote.body.td_attributes.hex() == "0100001000000000"
    assert quote.body.xfam.hex() == "e742060000000000"
    assert quote.body.tee_tcb_svn.hex().startswith("03000500")
    assert quote.signature_data_len == 4300
    assert quote.body.tee_tcb_svn2 is None
    assert quote.body.mrservicetd is None
    assert quote.header.attestation_key_type == 2


def test_trailing_text_is_not_part_of_the_quote() -> None:
    """The go-tdx-guest file's trailing ASCII text is excluded from the quote."""
    data = _load("quote_v4_spr_gtg_trailing_text.dat")
    quote = Quote.from_bytes(data)
    assert quote.signature_data_len == 4299
    assert data[quote.size :] == b"\nextra bytes(only for testing purpose)\n"
    assert quote.body.td_attributes.hex() == "0000004000000000"


def test_v5_body_is_td15_with_mrservicetd() -> None:
    """The v5 EMR quote has body type 3, 648 bytes, tee_tcb_svn2 and a non-zero mrservicetd."""
    quote = Quote.from_bytes(_load("quote_v5_emr_coco.dat"))
    assert quote.body_type is QuoteBodyType.TD_REPORT_15
    assert quote.body_size == TD15_BODY_SIZE
    assert quote.body.tee_tcb_svn.hex().startswith("05010200")
    assert quote.body.tee_tcb_svn2 is not None
    assert quote.body.tee_tcb_svn2.hex().startswith("05010200")
    assert quote.body.mrservicetd is not None
    assert quote.body.mrservicetd.hex().startswith("383c87d3")


def test_v5_gtg_has_distinct_tcb_svn2_and_zero_mrservicetd() -> None:
    """go-tdx-guest's v5 sample has tee_tcb_svn2 0d010400 and an all-zero mrservicetd."""
    quote = Quote.from_bytes(_load("quote_v5_emr_gtg.dat"))
    assert quote.body.tee_tcb_svn.hex().startswith("0b010400")
    assert quote.body.tee_tcb_svn2 is not None
    assert quote.body.tee_tcb_svn2.hex().startswith("0d010400")
    assert quote.body.mrservicetd == bytes(48)


@pytest.mark.parametrize("name", ["quote_v4_spr_coco.dat", "quote_v5_emr_coco.dat"])
def test_header_and_body_reencode_to_the_signed_bytes(name: str) -> None:
    """Header and body encode back to the bytes the attestation key signed."""
    quote = Quote.from_bytes(_load(name))
    descriptor = b""
    if quote.version == 5:
        descriptor = struct.pack("<HI", quote.body_type, quote.body_size)
    assert quote.header.to_bytes() + descriptor + quote.body.to_bytes() == quote.signed_bytes
    assert QuoteHeader.from_bytes(quote.header.to_bytes()) == quote.header


def test_rtmrs_sit_at_their_body_offsets() -> None:
    """rtmr0 is read from body offset 328 and report_data from 520 (sgx_quote_4.h)."""
    data = _load("quote_v4_spr_coco.dat")
    quote = Quote.from_bytes(data)
    assert quote.body.rtmr0 == data[HEADER_SIZE + 328 : HEADER_SIZE + 376]
    assert quote.body.rtmr3 == data[HEADER_SIZE + 472 : HEADER_SIZE + 520]
    assert quote.body.report_data == data[HEADER_SIZE + 520 : HEADER_SIZE + 584]


def test_to_dict_is_json_ready_with_size() -> None:
    """The dict renderer produces JSON with hex strings and the true size."""
    quote = Quote.from_bytes(_load("quote_v4_spr_gcp_cos_padded8000.dat"))
    rendered = json.loads(json.dumps(quote.to_dict()))
    assert rendered["size"] == 4935
    assert rendered["version"] == 4
    assert rendered["body"]["report_data"] == "00" * 64
    assert rendered["body"]["mrservicetd"] is None
    assert "signature_data" not in rendered
    full = quote.to_dict(include_signature=True)
    assert bytes.fromhex(full["signature_data"]) == quote.signature_data


@pytest.mark.parametrize(
    ("cut", "field"),
    [
        (0, "header"),
        (47, "header"),
        (48, "length"),
        (HEADER_SIZE + TD10_BODY_SIZE + 3, "length"),
        (HEADER_SIZE + TD10_BODY_SIZE + 4, "sig_data_len"),
        (4935, "sig_data_len"),
    ],
)
def test_truncated_quote_names_the_field(cut: int, field: str) -> None:
    """A quote cut short raises QuoteError naming the field that does not fit."""
    data = _load("quote_v4_spr_coco.dat")[:cut]
    with pytest.raises(QuoteError) as info:
        Quote.from_bytes(data)
    assert info.value.field == field
    assert field in str(info.value)


def test_truncated_v5_descriptor_is_reported() -> None:
    """A v5 quote ending inside its body descriptor names the descriptor."""
    with pytest.raises(QuoteError, match="v5 body descriptor"):
        quote_size(_load("quote_v5_emr_coco.dat")[:50])


def _patched(name: str, offset: int, fmt: str, value: int) -> bytes:
    data = bytearray(_load(name))
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "offset", "fmt", "value", "field"),
    [
        ("quote_v4_spr_coco.dat", 0, "<H", 3, "version"),
        ("quote_v4_spr_coco.dat", 4, "<I", 0, "tee_type"),
        ("quote_v5_emr_coco.dat", 48, "<H", 1, "body type"),
        ("quote_v5_emr_coco.dat", 50, "<I", 584, "body size"),
        ("quote_v4_spr_coco.dat", 632, "<I", 10, "sig_data_len"),
        ("quote_v4_spr_coco.dat", 632, "<I", 0xFFFFFFFF, "sig_data_len"),
    ],
)
def test_invalid_field_raises_with_field_and_value(
    name: str, offset: int, fmt: str, value: int, field: str
) -> None:
    """A bad version, TEE type, body type, body size or sig_data_len is reported by name."""
    with pytest.raises(QuoteError) as info:
        Quote.from_bytes(_patched(name, offset, fmt, value))
    assert info.value.field == field
    assert str(value) in str(info.value) or f"{value:#x}" in str(info.value)


def test_v5_with_td10_body_type_parses() -> None:
    """A v5 quote with body type 2 and size 584 is a valid TD 1.0 body."""
    quote = Quote.from_bytes(_load("quote_v4_spr_coco.dat"))
    sig = quote.signature_data
    v5 = (
        attrs.evolve(quote.header, version=5).to_bytes()
        + struct.pack("<HI", 2, TD10_BODY_SIZE)
        + quote.body.to_bytes()
        + struct.pack("<I", len(sig))
        + sig
    )
    parsed = Quote.from_bytes(v5)
    assert parsed.body_type is QuoteBodyType.TD_REPORT_10
    assert parsed.size == quote.size + 6
    assert parsed.body == quote.body


def test_quote_error_is_a_decode_error() -> None:
    """QuoteError belongs to coco's DecodeError and CoCoError families."""
    assert issubclass(QuoteError, DecodeError)
    assert issubclass(QuoteError, CoCoError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200))
def test_random_bytes_raise_only_quote_error(data: bytes) -> None:
    """Arbitrary bytes either parse or raise QuoteError, never anything else."""
    try:
        quote = Quote.from_bytes(data)
    except QuoteError:
        return
    assert quote.size <= len(data)


@settings(max_examples=300, deadline=None)
@given(
    version=st.sampled_from([4, 5, 0, 6]),
    tail=st.binary(max_size=800),
    body_type=st.integers(0, 4),
    body_size=st.sampled_from([584, 648, 0, 0xFFFFFFFF]),
)
def test_plausible_headers_raise_only_quote_error(
    version: int, tail: bytes, body_type: int, body_size: int
) -> None:
    """Inputs with a TDX header and random descriptor/body never raise anything but QuoteError."""
    head = struct.pack("<HHI4s16s20s", version, 2, 0x81, b"", b"", b"")
    data = head + struct.pack("<HI", body_type, body_size) + tail
    with contextlib.suppress(QuoteError):
        Quote.from_bytes(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5005), st.integers(0, 255))
def test_single_byte_corruption_raises_only_quote_error(pos: int, value: int) -> None:
    """Changing any one byte of a real v5 quote either still parses or raises QuoteError."""
    data = bytearray(_load("quote_v5_emr_coco.dat"))
    data[pos] = value
    try:
        quote = Quote.from_bytes(bytes(data))
    except QuoteError:
        return
    assert quote.size <= len(data)


_b = st.binary


@settings(max_examples=100, deadline=None)
@given(
    fields=st.tuples(
        _b(min_size=16, max_size=16),
        *[_b(min_size=48, max_size=48)] * 2,
        *[_b(min_size=8, max_size=8)] * 3,
        *[_b(min_size=48, max_size=48)] * 8,
        _b(min_size=64, max_size=64),
    ),
    td15=st.booleans(),
    sig=_b(min_size=MIN_SIGNATURE_DATA_SIZE, max_size=300),
)
def test_encode_decode_round_trip(fields: tuple[bytes, ...], td15: bool, sig: bytes) -> None:
    """A quote built from random field values decodes back to the same values."""
    extra = {"tee_tcb_svn2": bytes(16), "mrservicetd": b"\x5a" * 48} if td15 else {}
    body = TdQuoteBody(*fields, **extra)
    header = QuoteHeader(5 if td15 else 4, 2, 0x81, bytes(4), b"\x93" * 16, b"\x01" * 20)
    descriptor = struct.pack("<HI", 3, TD15_BODY_SIZE) if td15 else b""
    raw = header.to_bytes() + descriptor + body.to_bytes() + struct.pack("<I", len(sig)) + sig
    quote = Quote.from_bytes(raw + b"\0" * 7)
    assert quote.body == body
    assert quote.header == header
    assert quote.signature_data == sig
    assert quote.raw == raw


@pytest.mark.parametrize("length", [128, 129, 130, 131, 132, 133, 134])
def test_sig_data_len_below_the_minimum_is_refused(length: int) -> None:
    """sig_data_len 128..133 (under 64 + 64 + 6) is refused by name; 134 is the first size read."""
    data = _load("quote_v4_spr_coco.dat")[:636]  # header, v4 body, sig_data_len at 632
    data = data[:632] + struct.pack("<I", length) + bytes(length)
    if length < MIN_SIGNATURE_DATA_SIZE:
        with pytest.raises(QuoteError) as info:
            quote_size(data)
        assert info.value.field == "sig_data_len"
        assert str(length) in str(info.value)
    else:
        assert quote_size(data) == 636 + length
