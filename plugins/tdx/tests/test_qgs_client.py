# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_tdx.qgs.client over real unix sockets in tmp_path."""

from __future__ import annotations

import contextlib
import inspect
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coco_tdx.qgs.client import (
    QgsClient,
    QgsTimeout,
    QgsUnavailable,
    UnixAddress,
    VsockAddress,
    parse_vsock,
)
from coco_tdx.qgs.dev import DevQgsServer
from coco_tdx.qgs.wire import GetQuoteResp, QgsErrorCode, QgsProtocolError, QgsResponseTooLarge
from coco_tdx.quote import quote_size

TESTDATA = Path(__file__).resolve().parents[3] / "testdata" / "tdx"
QUOTES = TESTDATA / "quotes"
TDREPORT = (TESTDATA / "tdreport" / "tdreport_tdx10_intel.dat").read_bytes()
FIRST_QUOTE = sorted(QUOTES.iterdir())[0].read_bytes()
FIRST_QUOTE = FIRST_QUOTE[: quote_size(FIRST_QUOTE)]


def _server(tmp_path: Path, **kw: object) -> DevQgsServer:
    return DevQgsServer(tmp_path / "qgs.sock", QUOTES, **kw)  # type: ignore[arg-type]


def _client(tmp_path: Path, **kw: object) -> QgsClient:
    kw.setdefault("read_timeout", 2.0)
    kw.setdefault("connect_timeout", 1.0)
    return QgsClient(UnixAddress(str(tmp_path / "qgs.sock")), **kw)  # type: ignore[arg-type]


@pytest.fixture
def one_shot(tmp_path: Path) -> Iterator[Callable[[Callable[[socket.socket], None]], None]]:
    """Serve a single connection with a custom handler on tmp_path/qgs.sock."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "qgs.sock"))
    listener.listen(1)
    threads: list[threading.Thread] = []

    def install(handler: Callable[[socket.socket], None]) -> None:
        def run() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(3.0)
                with contextlib.suppress(OSError):
                    handler(conn)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)

    yield install
    listener.close()
    for t in threads:
        t.join(3.0)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while len(data) < 1052:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_success_returns_a_real_quote(tmp_path: Path) -> None:
    """Against the dev QGS, get_quote returns a recorded real quote, trimmed to its size."""
    with _server(tmp_path):
        quote = _client(tmp_path).get_quote(TDREPORT)
    assert quote == FIRST_QUOTE


def test_request_on_the_wire_is_the_worked_example(
    one_shot: Callable[..., None], tmp_path: Path
) -> None:
    """The client sends exactly the §1.6 framing around the TDREPORT."""
    seen: list[bytes] = []

    def handler(conn: socket.socket) -> None:
        seen.append(_read_request(conn))
        conn.sendall(GetQuoteResp(FIRST_QUOTE).to_frame())

    one_shot(handler)
    assert _client(tmp_path).get_quote(TDREPORT) == FIRST_QUOTE
    assert seen[0][:8].hex() == "0000041801000100"
    assert seen[0][28:] == TDREPORT


def test_timeout_when_server_delays(tmp_path: Path) -> None:
    """A server slower than read_timeout ends in QgsTimeout close to that timeout."""
    with _server(tmp_path, mode="delay", delay=2.0):
        start = time.monotonic()
        with pytest.raises(QgsTimeout):
            _client(tmp_path, read_timeout=0.3).get_quote(TDREPORT)
        assert time.monotonic() - start < 1.5


def test_trickling_server_cannot_extend_the_deadline(
    one_shot: Callable[..., None], tmp_path: Path
) -> None:
    """A server sending one byte every 0.1 s still hits the overall read deadline."""
    stop = threading.Event()

    def handler(conn: socket.socket) -> None:
        _read_request(conn)
        for byte in GetQuoteResp(FIRST_QUOTE).to_frame():
            if stop.wait(0.1):
                return
            conn.sendall(bytes([byte]))

    one_shot(handler)
    start = time.monotonic()
    with pytest.raises(QgsTimeout):
        _client(tmp_path, read_timeout=0.5).get_quote(TDREPORT)
    stop.set()
    assert time.monotonic() - start < 1.5


def test_missing_socket_is_unavailable(tmp_path: Path) -> None:
    """A socket path that does not exist raises QgsUnavailable."""
    with pytest.raises(QgsUnavailable, match="No such file"):
        _client(tmp_path).get_quote(TDREPORT)


def test_refused_connection_is_unavailable(tmp_path: Path) -> None:
    """A bound socket nobody listens on refuses the connection: QgsUnavailable."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "qgs.sock"))
    try:
        with pytest.raises(QgsUnavailable, match="refused"):
            _client(tmp_path).get_quote(TDREPORT)
    finally:
        sock.close()


def test_vsock_unsupported_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without AF_VSOCK in the socket module a vsock address raises QgsUnavailable."""
    monkeypatch.delattr(socket, "AF_VSOCK", raising=False)
    with pytest.raises(QgsUnavailable, match="AF_VSOCK"):
        QgsClient(VsockAddress(2, 4050), connect_timeout=0.2).get_quote(TDREPORT)


def test_vsock_address_parsing() -> None:
    """CID:PORT parses to a VsockAddress; malformed text raises ValueError."""
    assert parse_vsock("2:4050") == VsockAddress(2, 4050)
    assert str(parse_vsock("0x3:0x10")) == "vsock:3:16"
    for bad in ("2", "a:b", "2:-1", "2:0x100000000"):
        with pytest.raises(ValueError, match="vsock address"):
            parse_vsock(bad)


def test_defaults_follow_qgs() -> None:
    """The default address is QGS's unix socket; connect plus read fit QGS's and QEMU's 30 s."""
    from coco_tdx.service import QuoteService

    client = QgsClient()
    assert client.address == UnixAddress("/var/run/tdx-qgs/qgs.socket")
    assert client.connect_timeout + client.read_timeout == 30.0
    default_timeout = inspect.signature(QuoteService).parameters["timeout"].default
    assert client.connect_timeout + client.read_timeout <= default_timeout
    assert VsockAddress() == VsockAddress(2, 4050)


def test_qgs_error_code(tmp_path: Path) -> None:
    """An error response from QGS raises QgsErrorCode carrying code and name."""
    with _server(tmp_path, mode="error"), pytest.raises(QgsErrorCode) as info:
        _client(tmp_path).get_quote(TDREPORT)
    assert info.value.code == 0x12001
    assert info.value.name == "QGS_MSG_ERROR_UNEXPECTED"


def test_unknown_qgs_error_code_is_kept_raw(tmp_path: Path) -> None:
    """An error code outside qgs_msg_error_t is reported raw, without a guessed name."""
    with _server(tmp_path, mode="error", error_code=0x777), pytest.raises(QgsErrorCode) as info:
        _client(tmp_path).get_quote(TDREPORT)
    assert info.value.code == 0x777
    assert info.value.name is None


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("length-prefix", "header.size"),
        ("type", "header.type"),
        ("version", "header.major_version"),
        ("minor0", "header.minor_version"),
        ("truncated", "GET_QUOTE_RESP"),
        ("quote-size", "quote_size"),
        ("partial-quote", "quote"),
        ("selected-id", "selected_id_size"),
    ],
)
def test_malformed_responses_raise_protocol_error(tmp_path: Path, kind: str, field: str) -> None:
    """Each malformed response kind ends in QgsProtocolError naming the bad field."""
    with (
        _server(tmp_path, mode="malformed", malformed=kind),
        pytest.raises(QgsProtocolError) as info,
    ):
        _client(tmp_path).get_quote(TDREPORT)
    assert info.value.field == field


def test_minor0_accepted_when_configured(tmp_path: Path) -> None:
    """With accept_minor0 a minor-0 response (QGS before DCAP 1.21) is accepted."""
    with _server(tmp_path, mode="malformed", malformed="minor0"):
        quote = _client(tmp_path, accept_minor0=True).get_quote(TDREPORT)
    assert quote == FIRST_QUOTE


def test_close_without_answer(tmp_path: Path) -> None:
    """A server that closes without answering gives QgsProtocolError on the length prefix."""
    with _server(tmp_path, mode="close"), pytest.raises(QgsProtocolError) as info:
        _client(tmp_path).get_quote(TDREPORT)
    assert info.value.field == "length prefix"


def test_garbage_response(tmp_path: Path) -> None:
    """A frame of pseudo-random bytes is rejected as a protocol error."""
    with _server(tmp_path, mode="garbage"), pytest.raises(QgsProtocolError):
        _client(tmp_path).get_quote(TDREPORT)


def test_quote_larger_than_caller_limit(tmp_path: Path) -> None:
    """A response longer than max_response is refused from its length prefix alone."""
    with _server(tmp_path), pytest.raises(QgsResponseTooLarge) as info:
        _client(tmp_path, max_response=4096).get_quote(TDREPORT)
    assert info.value.value == 24 + len(FIRST_QUOTE)


def test_zero_padding_after_quote_is_trimmed(one_shot: Callable[..., None], tmp_path: Path) -> None:
    """A quote_size covering the quote plus zero padding returns the quote trimmed."""
    padded = (QUOTES / "quote_v4_gnr_coco_padded.dat").read_bytes()

    def handler(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(GetQuoteResp(padded).to_frame())

    one_shot(handler)
    assert _client(tmp_path).get_quote(TDREPORT) == padded[:4936]


def test_padding_kept_when_not_trimming(one_shot: Callable[..., None], tmp_path: Path) -> None:
    """With trim_padding=False the zero-padded quote is returned as QGS sent it."""
    padded = (QUOTES / "quote_v4_gnr_coco_padded.dat").read_bytes()

    def handler(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(GetQuoteResp(padded).to_frame())

    one_shot(handler)
    assert _client(tmp_path, trim_padding=False).get_quote(TDREPORT) == padded


def test_non_zero_bytes_after_quote_are_rejected(
    one_shot: Callable[..., None], tmp_path: Path
) -> None:
    """quote_size covering non-zero bytes after the quote raises QgsProtocolError."""
    texty = (QUOTES / "quote_v4_spr_gtg_trailing_text.dat").read_bytes()

    def handler(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(GetQuoteResp(texty).to_frame())

    one_shot(handler)
    with pytest.raises(QgsProtocolError) as info:
        _client(tmp_path).get_quote(TDREPORT)
    assert info.value.field == "quote_size"


def test_invalid_client_settings_are_rejected() -> None:
    """Non-positive timeouts and a max_response below a header are refused at construction."""
    with pytest.raises(ValueError, match="read_timeout"):
        QgsClient(read_timeout=0)
    with pytest.raises(ValueError, match="connect_timeout"):
        QgsClient(connect_timeout=-1)
    with pytest.raises(ValueError, match="max_response"):
        QgsClient(max_response=8)


def test_concurrent_requests(tmp_path: Path) -> None:
    """Several threads may share one client; each request uses its own connection."""
    results: list[bytes] = []
    with _server(tmp_path) as server:
        client = _client(tmp_path)
        threads = [
            threading.Thread(target=lambda: results.append(client.get_quote(TDREPORT)))
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5.0)
        assert server.requests_served == 6
    assert len(results) == 6
    assert all(quote_size(q) == len(q) for q in results)
