# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_tdx.qgs.dev, the development stand-in for Intel's QGS."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from coco_tdx.qgs.client import QgsClient, UnixAddress
from coco_tdx.qgs.dev import DevQgsServer, load_quotes
from coco_tdx.qgs.wire import GetQuoteReq, GetQuoteResp, frame
from coco_tdx.quote import QuoteError, quote_size

TESTDATA = Path(__file__).resolve().parents[3] / "testdata" / "tdx"
QUOTES = TESTDATA / "quotes"
TDREPORT10 = (TESTDATA / "tdreport" / "tdreport_tdx10_intel.dat").read_bytes()
TDREPORT15 = (TESTDATA / "tdreport" / "tdreport_tdx15_coco.bin").read_bytes()


def _exchange(path: Path, wire: bytes, timeout: float = 2.0) -> bytes:
    """Send *wire*, return everything the server sends until it closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(wire)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass  # Linux AF_UNIX: closing with unread request bytes resets the peer
        return out


def test_load_quotes_trims_every_file_to_its_true_size() -> None:
    """Every recorded quote is loaded, sorted by name, and cut to its structural size."""
    loaded = load_quotes(QUOTES)
    assert [name for name, _ in loaded] == sorted(p.name for p in QUOTES.iterdir())
    assert all(quote_size(q) == len(q) for _, q in loaded)
    assert {len(q) for _, q in loaded} == {4935, 4936, 5006}


def test_load_quotes_skips_non_quotes(tmp_path: Path) -> None:
    """Files that are not quotes are skipped; a directory with none raises QuoteError."""
    (tmp_path / "README").write_text("not a quote")
    with pytest.raises(QuoteError, match="quotes directory"):
        load_quotes(tmp_path)
    (tmp_path / "q.dat").write_bytes((QUOTES / "quote_v5_emr_gtg.dat").read_bytes())
    assert [name for name, _ in load_quotes(tmp_path)] == ["q.dat"]


def test_round_robin_over_sorted_files(tmp_path: Path) -> None:
    """Consecutive requests get the quotes in sorted file order, then wrap around."""
    expected = [q for _, q in load_quotes(QUOTES)]
    client = QgsClient(UnixAddress(str(tmp_path / "s")), read_timeout=2.0)
    with DevQgsServer(tmp_path / "s", QUOTES):
        got = [client.get_quote(TDREPORT15) for _ in range(len(expected) + 1)]
    assert got == [*expected, expected[0]]


@pytest.mark.parametrize(
    "wire",
    [
        frame(b"\x02\x00" + GetQuoteReq(TDREPORT10).to_message()[2:]),  # major 2
        frame(GetQuoteReq(TDREPORT10).to_message()[:4] + b"\x04" + b"\0" * 3
              + GetQuoteReq(TDREPORT10).to_message()[8:]),  # type GET_PLATFORM_INFO_REQ
        frame(GetQuoteReq(TDREPORT10[:1000]).to_message()),  # not a 1024-byte TDREPORT
        frame(GetQuoteReq(b"\x00" + TDREPORT10[1:]).to_message()),  # report type not 0x81
        frame(GetQuoteReq(TDREPORT10).to_message()[:-1]),  # sizes disagree with header.size
    ],
    ids=["major", "type", "report-size", "report-type", "size"],
)  # fmt: skip
def test_bad_request_gets_qgs_error_unexpected(tmp_path: Path, wire: bytes) -> None:
    """A request QGS would reject is answered with the 24-byte 0x12001 error response."""
    with DevQgsServer(tmp_path / "s", QUOTES):
        reply = _exchange(tmp_path / "s", wire)
    resp = GetQuoteResp.from_frame(reply)
    assert resp.error_code == 0x12001
    assert len(reply) == 28


def test_any_request_minor_version_is_served(tmp_path: Path) -> None:
    """A minor-0 request is served, since QGS only checks the major version."""
    with DevQgsServer(tmp_path / "s", QUOTES):
        reply = _exchange(tmp_path / "s", GetQuoteReq(TDREPORT10, minor_version=0).to_frame())
    assert GetQuoteResp.from_frame(reply).error_code == 0


@pytest.mark.parametrize("length", [0, 0x81000000])
def test_absurd_length_prefix_closes_silently(tmp_path: Path, length: int) -> None:
    """A zero or oversized length prefix (e.g. a bare TDREPORT) closes with no answer."""
    with DevQgsServer(tmp_path / "s", QUOTES):
        assert _exchange(tmp_path / "s", struct.pack(">I", length) + TDREPORT10[:64]) == b""


def test_error_mode_uses_configured_code(tmp_path: Path) -> None:
    """mode='error' answers with the configured error code in a 24-byte response."""
    with DevQgsServer(tmp_path / "s", QUOTES, mode="error", error_code=0x12006):
        reply = _exchange(tmp_path / "s", GetQuoteReq(TDREPORT10).to_frame())
    assert GetQuoteResp.from_frame(reply).error_code == 0x12006


def test_stop_is_bounded_with_idle_and_delayed_connections(tmp_path: Path) -> None:
    """stop() returns quickly and removes the socket even with silent and delayed clients."""
    server = DevQgsServer(tmp_path / "s", QUOTES, mode="delay", delay=30.0).start()
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(str(tmp_path / "s"))
    waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    waiting.connect(str(tmp_path / "s"))
    waiting.sendall(GetQuoteReq(TDREPORT10).to_frame())
    time.sleep(0.1)
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 1.0
    assert not (tmp_path / "s").exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("devqgs")]
    idle.close()
    waiting.close()


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    """A leftover socket file from a previous run does not prevent binding."""
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "s"))
    stale.close()
    with DevQgsServer(tmp_path / "s", QUOTES):
        reply = _exchange(tmp_path / "s", GetQuoteReq(TDREPORT10).to_frame())
    assert GetQuoteResp.from_frame(reply).quote


def test_regular_file_at_socket_path_is_not_removed(tmp_path: Path) -> None:
    """A regular file at the socket path is left alone and binding fails."""
    (tmp_path / "s").write_text("keep me")
    with pytest.raises(OSError, match="in use"):
        DevQgsServer(tmp_path / "s", QUOTES).start()
    assert (tmp_path / "s").read_text() == "keep me"


def test_invalid_options_are_rejected(tmp_path: Path) -> None:
    """Unknown modes, negative delays and a zero error code raise ValueError."""
    with pytest.raises(ValueError, match="bogus"):
        DevQgsServer(tmp_path / "s", QUOTES, mode="bogus")
    with pytest.raises(ValueError, match="delay"):
        DevQgsServer(tmp_path / "s", QUOTES, delay=-1)
    with pytest.raises(ValueError, match="error_code"):
        DevQgsServer(tmp_path / "s", QUOTES, error_code=0)


def test_serve_forever_returns_after_request_stop(tmp_path: Path) -> None:
    """serve_forever on its own thread returns once request_stop is called."""
    server = DevQgsServer(tmp_path / "s", QUOTES)
    server.bind()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    reply = _exchange(tmp_path / "s", GetQuoteReq(TDREPORT10).to_frame())
    assert GetQuoteResp.from_frame(reply).quote
    server.request_stop()
    thread.join(2.0)
    assert not thread.is_alive()
    server.stop()
    assert not (tmp_path / "s").exists()
