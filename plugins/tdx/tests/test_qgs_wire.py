# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_tdx.qgs.wire: framing, GET_QUOTE messages, enums and errors.

Vectors wrap the real TDREPORTs (testdata/tdx/tdreport) and quotes
(testdata/tdx/quotes); there is no public QGS capture (testdata/SOURCES.md).
"""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coco_core.errors import CoCoError
from coco_tdx.qgs.wire import (
    GET_QUOTE_FIXED_SIZE,
    GetQuoteReq,
    GetQuoteResp,
    QgsError,
    QgsErrorCode,
    QgsMsgError,
    QgsMsgHeader,
    QgsMsgType,
    QgsProtocolError,
    frame,
    parse_length_prefix,
    unframe,
)

TESTDATA = Path(__file__).resolve().parents[3] / "testdata" / "tdx"
TDREPORT10 = (TESTDATA / "tdreport" / "tdreport_tdx10_intel.dat").read_bytes()
TDREPORT15 = (TESTDATA / "tdreport" / "tdreport_tdx15_coco.bin").read_bytes()
QUOTE_V5 = (TESTDATA / "quotes" / "quote_v5_emr_coco.dat").read_bytes()

# wire-formats.md §1.6, the GET_QUOTE_REQ around a 1024-byte TDREPORT.
REQ_PREFIX = bytes.fromhex(
    "00000418"  # 0x00: BE frame length = 1048
    "01000100"  # 0x04: major=1 minor=1
    "00000000"  # 0x08: type=GET_QUOTE_REQ
    "18040000"  # 0x0c: size=1048
    "00000000"  # 0x10: error_code=0
    "00040000"  # 0x14: report_size=1024
    "00000000"  # 0x18: id_list_size=0
)
# wire-formats.md §1.6, the success reply carrying a 5006-byte quote.
RESP_PREFIX = bytes.fromhex(
    "000013a6"  # 0x00: BE frame length = 5030
    "01000100"  # 0x04: major=1 minor=1
    "01000000"  # 0x08: type=GET_QUOTE_RESP
    "a6130000"  # 0x0c: size=5030
    "00000000"  # 0x10: error_code=0
    "00000000"  # 0x14: selected_id_size=0
    "8e130000"  # 0x18: quote_size=5006
)
# qgs_msg_gen_error_resp(QGS_MSG_ERROR_UNEXPECTED, GET_QUOTE_RESP), framed.
ERROR_FRAME = bytes.fromhex(
    "00000018"  # 0x00: BE frame length = 24
    "01000100"  # 0x04: major=1 minor=1
    "01000000"  # 0x08: type=GET_QUOTE_RESP
    "18000000"  # 0x0c: size=24
    "01200100"  # 0x10: error_code=0x12001
    "00000000"  # 0x14: selected_id_size=0
    "00000000"  # 0x18: quote_size=0
)


def _resp_msg(**over: int) -> bytes:
    """A GET_QUOTE_RESP message with header/size fields overridden."""
    f = {
        "major": 1,
        "minor": 1,
        "type": 1,
        "size": None,
        "error": 0,
        "sel": 0,
        "qsize": None,
    }
    f.update(over)
    quote = QUOTE_V5
    qsize = len(quote) if f["qsize"] is None else f["qsize"]
    size = GET_QUOTE_FIXED_SIZE + len(quote) if f["size"] is None else f["size"]
    head = struct.pack("<HHIII", f["major"], f["minor"], f["type"], size, f["error"])
    return head + struct.pack("<II", f["sel"], qsize) + quote


@pytest.mark.parametrize("report", [TDREPORT10, TDREPORT15], ids=["tdx10", "tdx15"])
def test_request_matches_worked_example(report: bytes) -> None:
    """A real TDREPORT frames to exactly the §1.6 bytes followed by the report."""
    wire = GetQuoteReq(report).to_frame()
    assert len(wire) == 1052
    assert wire[:28] == REQ_PREFIX
    assert wire[28:] == report


def test_response_matches_worked_example() -> None:
    """A 5006-byte quote frames to exactly the §1.6 reply bytes followed by the quote."""
    wire = GetQuoteResp(QUOTE_V5).to_frame()
    assert wire[:28] == RESP_PREFIX
    assert wire[28:] == QUOTE_V5
    assert GetQuoteResp.from_frame(wire).quote == QUOTE_V5


def test_error_response_bytes() -> None:
    """An error response is the 24-byte message qgs_msg_gen_error_resp builds."""
    assert GetQuoteResp.error(QgsMsgError.UNEXPECTED).to_frame() == ERROR_FRAME
    resp = GetQuoteResp.from_frame(ERROR_FRAME)
    assert resp.error_code == 0x12001
    assert resp.quote == b""
    with pytest.raises(QgsErrorCode) as info:
        resp.raise_for_error()
    assert info.value.code == 0x12001
    assert info.value.name == "QGS_MSG_ERROR_UNEXPECTED"


@pytest.mark.parametrize("report", [TDREPORT10, TDREPORT15], ids=["tdx10", "tdx15"])
def test_request_round_trip_with_id_list(report: bytes) -> None:
    """A request with an id list decodes back to the same report and list."""
    req = GetQuoteReq(report, b"\xaa" * 16)
    assert GetQuoteReq.from_frame(req.to_frame()) == req


def test_request_decoder_accepts_any_minor() -> None:
    """Requests with minor 0 are accepted, as QGS only checks the major version."""
    req = GetQuoteReq(TDREPORT10, minor_version=0)
    assert GetQuoteReq.from_message(req.to_message()).minor_version == 0


def _req_msg(**over: int) -> bytes:
    f = {"major": 1, "minor": 1, "type": 0, "size": 1048, "error": 0, "rsize": 1024, "isize": 0}
    f.update(over)
    head = struct.pack("<HHIII", f["major"], f["minor"], f["type"], f["size"], f["error"])
    return head + struct.pack("<II", f["rsize"], f["isize"]) + TDREPORT10


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"major": 2}, "header.major_version"),
        ({"type": 1}, "header.type"),
        ({"size": 1047}, "header.size"),
        ({"error": 5}, "header.error_code"),
        ({"rsize": 0}, "report_size"),
        ({"rsize": 1000}, "report_size + id_list_size"),
        ({"isize": 4}, "report_size + id_list_size"),
    ],
)
def test_invalid_request_is_rejected(over: dict[str, int], field: str) -> None:
    """A request with a wrong version, type, size, error code or sizes names that field."""
    with pytest.raises(QgsProtocolError) as info:
        GetQuoteReq.from_message(_req_msg(**over))
    assert info.value.field == field


def test_empty_report_cannot_be_encoded() -> None:
    """An empty report is refused, as qgs_msg_gen_get_quote_req refuses report_size 0."""
    with pytest.raises(QgsProtocolError, match="report_size"):
        GetQuoteReq(b"").to_message()


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"major": 0}, "header.major_version"),
        ({"minor": 0}, "header.minor_version"),
        ({"minor": 2}, "header.minor_version"),
        ({"type": 3}, "header.type"),
        ({"type": 0}, "header.type"),
        ({"size": 24}, "header.size"),
        ({"qsize": 5007}, "quote_size"),
        ({"qsize": 0}, "quote_size"),
        ({"sel": 1}, "quote_size"),
        ({"error": 0x12001}, "error response"),
    ],
)
def test_invalid_response_is_rejected(over: dict[str, int], field: str) -> None:
    """A response with a wrong version, type, size or inconsistent sizes names that field."""
    with pytest.raises(QgsProtocolError) as info:
        GetQuoteResp.from_message(_resp_msg(**over))
    assert info.value.field == field
    assert info.value.expected in str(info.value)


def test_minor0_accepted_only_when_asked() -> None:
    """A minor-0 response (pre-DCAP-1.21 QGS) decodes only with accept_minor0."""
    msg = _resp_msg(minor=0)
    with pytest.raises(QgsProtocolError, match="accept_minor0"):
        GetQuoteResp.from_message(msg)
    assert GetQuoteResp.from_message(msg, accept_minor0=True).quote == QUOTE_V5
    with pytest.raises(QgsProtocolError):
        GetQuoteResp.from_message(_resp_msg(minor=2), accept_minor0=True)


def test_selected_id_is_split_from_the_quote() -> None:
    """selected_id bytes come before the quote and are decoded separately."""
    resp = GetQuoteResp(QUOTE_V5, selected_id=b"\x01\x02")
    back = GetQuoteResp.from_frame(resp.to_frame())
    assert back.selected_id == b"\x01\x02"
    assert back.quote == QUOTE_V5


def test_unframe_requires_prefix_to_match() -> None:
    """A length prefix that disagrees with the bytes after it is rejected."""
    msg = GetQuoteResp(QUOTE_V5).to_message()
    assert unframe(frame(msg)) == msg
    with pytest.raises(QgsProtocolError, match="length prefix"):
        unframe(frame(msg) + b"\0")
    with pytest.raises(QgsProtocolError, match="length prefix"):
        unframe(frame(msg)[:-1])


@pytest.mark.parametrize("prefix", [b"", b"\0\0\0", b"\0\0\0\0", b"\0\0\0\x0f"])
def test_short_or_tiny_length_prefix_is_rejected(prefix: bytes) -> None:
    """A prefix that is not 4 bytes, or announces less than a header, is rejected."""
    with pytest.raises(QgsProtocolError):
        parse_length_prefix(prefix)


def test_raw_tdreport_prefix_is_a_huge_length() -> None:
    """A bare TDREPORT read as a frame gives 0x81000000, the length seen in canonical/tdx #220."""
    assert parse_length_prefix(TDREPORT10[:4]) == 0x81000000


def test_header_round_trip() -> None:
    """The 16-byte header encodes and decodes symmetrically."""
    header = QgsMsgHeader(1, 1, QgsMsgType.GET_QUOTE_RESP, 24, 0x12001)
    assert QgsMsgHeader.from_bytes(header.to_bytes()) == header
    assert len(header.to_bytes()) == 16


def test_enum_values_match_qgs_msg_lib() -> None:
    """qgs_msg_type_t and qgs_msg_error_t values are those of qgs_msg_lib.h."""
    assert [int(t) for t in QgsMsgType] == [0, 1, 2, 3, 4, 5, 6]
    assert int(QgsMsgError.SUCCESS) == 0
    assert [int(e) for e in QgsMsgError][1:] == list(range(0x12001, 0x12009))
    assert int(QgsMsgError.INVALID_CODE) == 0x12007
    assert int(QgsMsgError.MAX) == 0x12008


@pytest.mark.parametrize("code", [0x12008, 0x1, 0xDEADBEEF])
def test_unknown_error_code_is_kept_raw(code: int) -> None:
    """A code outside qgs_msg_error_t (or the MAX sentinel) keeps its raw value and no name."""
    err = QgsErrorCode(code)
    assert err.code == code
    assert err.name is None
    assert f"{code:#x}" in str(err)


def test_error_hierarchy() -> None:
    """All QGS errors derive from QgsError, itself a CoCoError."""
    assert issubclass(QgsError, CoCoError)
    assert issubclass(QgsProtocolError, QgsError)
    assert issubclass(QgsErrorCode, QgsError)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_random_response_raises_only_protocol_error(data: bytes, minor0: bool) -> None:
    """Arbitrary bytes into the response decoders either decode or raise QgsProtocolError."""
    for decode in (GetQuoteResp.from_message, GetQuoteResp.from_frame):
        try:
            resp = decode(data, accept_minor0=minor0)
        except QgsProtocolError:
            continue
        assert resp.error_code != 0 or resp.quote


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 7)),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=64),
)
def test_structured_random_response_raises_only_protocol_error(
    hdr: tuple[int, int, int], size: int, sel: int, qsize: int, tail: bytes
) -> None:
    """Headers with random sizes never make the decoder raise anything but QgsProtocolError."""
    major, minor, mtype = hdr
    msg = struct.pack("<HHIII", major, minor, mtype, size, 0) + struct.pack("<II", sel, qsize)
    msg += tail
    with contextlib.suppress(QgsProtocolError):
        GetQuoteResp.from_message(msg, accept_minor0=True)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_request_raises_only_protocol_error(data: bytes) -> None:
    """Arbitrary bytes into the request decoder either decode or raise QgsProtocolError."""
    try:
        req = GetQuoteReq.from_message(data)
    except QgsProtocolError:
        return
    assert req.report


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=2048), st.binary(max_size=64), st.integers(0, 1))
def test_request_round_trip(report: bytes, id_list: bytes, minor: int) -> None:
    """Any non-empty report and id list survive encode then decode."""
    req = GetQuoteReq(report, id_list, minor)
    assert GetQuoteReq.from_frame(req.to_frame()) == req


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=2048), st.binary(max_size=64))
def test_response_round_trip(quote: bytes, selected_id: bytes) -> None:
    """Any non-empty quote and selected id survive encode then decode."""
    resp = GetQuoteResp(quote, selected_id)
    assert GetQuoteResp.from_frame(resp.to_frame()) == resp


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 0xFFFFFFFF))
def test_error_response_round_trip(code: int) -> None:
    """Any non-zero error code survives a 24-byte error response round trip."""
    wire = GetQuoteResp.error(code).to_frame()
    assert len(wire) == 28
    assert GetQuoteResp.from_frame(wire).error_code == code


@pytest.mark.parametrize(
    ("selected_id_size", "quote_size", "extra"),
    [(0, 1, 1), (1, 0, 1), (4, 4, 8), (0, 0, 4)],
)
def test_error_response_whose_sizes_are_not_both_zero_is_malformed(
    selected_id_size: int, quote_size: int, extra: int
) -> None:
    """An error response with a size or extra bytes is malformed; 24 bytes with (0, 0) is fine."""
    msg = bytearray(ERROR_FRAME[4:])
    struct.pack_into("<II", msg, 16, selected_id_size, quote_size)
    msg += bytes(extra)
    struct.pack_into("<I", msg, 8, len(msg))  # header.size follows the message
    with pytest.raises(QgsProtocolError, match="error response"):
        GetQuoteResp.from_message(bytes(msg))
    assert GetQuoteResp.from_message(ERROR_FRAME[4:]).error_code == 0x12001
