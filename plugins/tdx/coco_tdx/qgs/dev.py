# SPDX-License-Identifier: Apache-2.0
"""A development stand-in for Intel's QGS, answering with recorded real quotes.

**This is not a Quote Generation Service.** It cannot sign anything: it answers
every valid GET_QUOTE_REQ with one of the real, recorded quotes found in a
directory (testdata/tdx/quotes), whatever TDREPORT was sent. The quote therefore
does not bind the requester's report_data. Use it to develop and test the VMM
path on machines without TDX/SGX. On a TDX host, point coco at the real QGS
(package ``tdx-qgs``), e.g. ``/var/run/tdx-qgs/qgs.socket`` or vsock port 4050.

It speaks the same wire protocol (:mod:`coco_tdx.qgs.wire`) on an ``AF_UNIX`` socket
and validates requests as QGS does (qgs_msg_lib.cpp ``qgs_msg_inflate_get_quote_req``:
major 1, any minor, type GET_QUOTE_REQ, consistent sizes), answering a bad request
with the 24-byte error response carrying ``QGS_MSG_ERROR_UNEXPECTED``, which is what
qgs_ql_logic.cpp puts in every failed GET_QUOTE (wire-formats.md §1.5). It also
requires a 1024-byte TDREPORT of type 0x81, since the real Quoting Enclave fails
on anything else. A length prefix of 0 or above ``max_request`` closes the
connection without an answer. QGS's "raw mode" (a bare TDREPORT, DCAP >= 1.21)
is not implemented.

Quotes are served round robin over the sorted file names, each trimmed to its
true size with :func:`coco_tdx.quote.quote_size`.

Fault injection (``mode``) for tests: ``ok``, ``error`` (error response with
``error_code``), ``delay`` (sleep ``delay`` seconds, then answer normally),
``malformed`` (see :class:`MalformedKind`), ``close`` (read the request, close
without answering), ``garbage`` (a length prefix around 64 pseudo-random bytes) and
``wedged`` (accept the connection, swallow what the client sends and never answer,
until the client closes or :meth:`stop`: a QGS that hangs).
:attr:`DevQgsServer.connections` counts accepted connections.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import socket
import stat
import struct
import threading
import types
from pathlib import Path

from coco_tdx.qgs.wire import (
    GET_QUOTE_FIXED_SIZE,
    LENGTH_PREFIX_SIZE,
    GetQuoteReq,
    GetQuoteResp,
    QgsMsgError,
    QgsProtocolError,
    frame,
)
from coco_tdx.quote import QuoteError, quote_size

__all__ = [
    "DEFAULT_MAX_REQUEST",
    "TDREPORT_SIZE",
    "DevQgsMode",
    "DevQgsServer",
    "MalformedKind",
    "load_quotes",
]

#: ``TDX_REPORT_SIZE 1024`` / ``sizeof(tdx_report_t)`` (tdx_attest/tdx_attest.h).
TDREPORT_SIZE = 1024
#: REPORTTYPE.TYPE of a TDX TDREPORT (TDX module spec, REPORTTYPE; qgs_server.cpp raw-mode check).
_TDREPORT_TYPE_TDX = 0x81
#: Our bound on a request frame: a TDREPORT plus a generous id list.
DEFAULT_MAX_REQUEST = 64 * 1024
#: QGS_TIMEOUT = 30 s per connection (qgs_server.cpp).
_CONN_TIMEOUT = 30.0
#: How often the accept loop looks at the stop flag.
_POLL = 0.05

_BE_U32 = struct.Struct(">I")


class DevQgsMode(enum.StrEnum):
    """How :class:`DevQgsServer` answers."""

    OK = "ok"
    ERROR = "error"
    DELAY = "delay"
    MALFORMED = "malformed"
    CLOSE = "close"
    GARBAGE = "garbage"
    WEDGED = "wedged"


class MalformedKind(enum.StrEnum):
    """Which defect ``mode="malformed"`` puts into an otherwise good response."""

    LENGTH_PREFIX = "length-prefix"  # BE prefix (and bytes sent) 4 more than header.size
    TYPE = "type"  # header.type GET_COLLATERAL_RESP instead of GET_QUOTE_RESP
    VERSION = "version"  # header.major_version 2
    MINOR0 = "minor0"  # header.minor_version 0: valid only for accept_minor0 clients
    TRUNCATED = "truncated"  # prefix promises the whole message, half is sent, then close
    QUOTE_SIZE = "quote-size"  # quote_size one larger than the bytes in the frame
    PARTIAL_QUOTE = "partial-quote"  # consistent frame, but the quote is cut short
    SELECTED_ID = "selected-id"  # selected_id_size 4 with a 4-byte id before the quote


def load_quotes(quotes_dir: str | os.PathLike[str]) -> list[tuple[str, bytes]]:
    """Every file in *quotes_dir* that is a TDX quote, sorted by name, trimmed to its size.

    :raises QuoteError: no file in the directory holds a TDX quote.
    """
    found: list[tuple[str, bytes]] = []
    for path in sorted(Path(quotes_dir).iterdir()):
        if not path.is_file():
            continue
        data = path.read_bytes()
        try:
            found.append((path.name, data[: quote_size(data)]))
        except QuoteError:
            continue
    if not found:
        raise QuoteError("quotes directory", str(quotes_dir), "at least one TDX quote file")
    return found


class DevQgsServer:
    """A development QGS on a unix socket; see the module docstring.

    :param socket_path: where to listen; a stale socket file there is replaced.
    :param quotes_dir: directory of recorded quotes (testdata/tdx/quotes).
    :param mode: one of :class:`DevQgsMode`.
    :param delay: seconds to wait before answering in ``delay`` mode.
    :param error_code: code sent in ``error`` mode (default ``QGS_MSG_ERROR_UNEXPECTED``,
        as the real QGS sends for every failure).
    :param malformed: the defect for ``malformed`` mode.
    :param max_connections: connections served at once; more are closed at once.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        quotes_dir: str | os.PathLike[str],
        *,
        mode: DevQgsMode | str = DevQgsMode.OK,
        delay: float = 0.0,
        error_code: int = QgsMsgError.UNEXPECTED,
        malformed: MalformedKind | str = MalformedKind.QUOTE_SIZE,
        max_connections: int = 16,
        max_request: int = DEFAULT_MAX_REQUEST,
        conn_timeout: float = _CONN_TIMEOUT,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.mode = DevQgsMode(mode)
        self.malformed = MalformedKind(malformed)
        if delay < 0:
            raise ValueError(f"delay is {delay}, expected >= 0")
        if not 0 < error_code <= 0xFFFFFFFF:
            raise ValueError(f"error_code is {error_code:#x}, expected 1..0xffffffff")
        self.delay = delay
        self.error_code = error_code
        self.max_connections = max_connections
        self.max_request = max_request
        self.conn_timeout = conn_timeout
        self.quotes = load_quotes(quotes_dir)
        self.requests_served = 0
        #: connections accepted and handed to a connection thread
        self.connections = 0
        self._next = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._conns: dict[socket.socket, threading.Thread] = {}

    @property
    def open_connections(self) -> int:
        """Connections accepted and not closed yet."""
        with self._lock:
            return len(self._conns)

    # -- lifecycle ---------------------------------------------------------

    def bind(self) -> None:
        """Create, bind and listen on the socket (``start``/``serve_forever`` call it)."""
        if self._listener is not None:
            return
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self.socket_path.lstat().st_mode):
                self.socket_path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.socket_path))
            sock.listen(self.max_connections)
            sock.settimeout(_POLL)
        except OSError:
            sock.close()
            raise
        self._listener = sock

    def start(self) -> DevQgsServer:
        """Bind, then serve on a background thread; returns once clients can connect."""
        self.bind()
        self._thread = threading.Thread(
            target=self.serve_forever, name="devqgs-accept", daemon=True
        )
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask :meth:`serve_forever` to return; safe from a signal handler."""
        self._stopping.set()

    def serve_forever(self) -> None:
        """Accept connections until :meth:`request_stop` or :meth:`stop` is called."""
        self.bind()
        listener = self._listener
        assert listener is not None
        try:
            while not self._stopping.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    raise
                self._spawn(conn)
        finally:
            self._close_listener()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, drop open connections, join every thread, remove the socket."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._close_listener()
        with self._lock:
            conns = list(self._conns.items())
        for conn, _ in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for _, thread in conns:
            thread.join(timeout)

    def __enter__(self) -> DevQgsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    def _close_listener(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is None:
            return
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def _spawn(self, conn: socket.socket) -> None:
        with self._lock:
            if len(self._conns) >= self.max_connections:
                conn.close()
                return
            thread = threading.Thread(
                target=self._serve_conn, args=(conn,), name="devqgs-conn", daemon=True
            )
            self._conns[conn] = thread
            self.connections += 1
        thread.start()

    # -- one connection ----------------------------------------------------

    def _serve_conn(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(self.conn_timeout)
            reply = self._handle(conn)
            if reply:
                conn.sendall(reply)
        except OSError:
            pass  # the peer went away or we are stopping; QGS just drops the connection
        finally:
            with self._lock:
                self._conns.pop(conn, None)
            conn.close()

    def _swallow(self, conn: socket.socket) -> None:
        """Read and drop until the peer closes or :meth:`stop` (the wedged QGS)."""
        conn.settimeout(_POLL)
        while not self._stopping.is_set():
            try:
                if not conn.recv(65536):
                    return
            except TimeoutError:
                continue

    def _recv_exact(self, conn: socket.socket, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            if self._stopping.is_set():
                return None
            chunk = conn.recv(min(n - len(buf), 65536))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _handle(self, conn: socket.socket) -> bytes | None:
        """Read one request; return the bytes to send (``None``: close silently)."""
        if self.mode is DevQgsMode.WEDGED:  # swallow what comes, never answer
            self._swallow(conn)
            return None
        prefix = self._recv_exact(conn, LENGTH_PREFIX_SIZE)
        if prefix is None:
            return None
        (length,) = _BE_U32.unpack(prefix)
        if length == 0 or length > self.max_request:
            return None
        msg = self._recv_exact(conn, length)
        if msg is None:
            return None
        with self._lock:
            self.requests_served += 1
        try:
            req = GetQuoteReq.from_message(msg)
        except QgsProtocolError:
            return GetQuoteResp.error(QgsMsgError.UNEXPECTED).to_frame()
        if len(req.report) != TDREPORT_SIZE or req.report[0] != _TDREPORT_TYPE_TDX:
            return GetQuoteResp.error(QgsMsgError.UNEXPECTED).to_frame()

        mode = self.mode
        if mode is DevQgsMode.DELAY and self._stopping.wait(self.delay):
            return None
        if mode is DevQgsMode.CLOSE:
            return None
        if mode is DevQgsMode.ERROR:
            return GetQuoteResp.error(self.error_code).to_frame()
        if mode is DevQgsMode.GARBAGE:
            # A well-formed length prefix around 64 deterministic pseudo-random bytes.
            junk = hashlib.sha512(req.report).digest()
            return frame(junk)
        quote = self._next_quote()
        good = GetQuoteResp(quote).to_message()
        if mode is DevQgsMode.MALFORMED:
            return self._malformed(good, quote, conn)
        return frame(good)

    def _next_quote(self) -> bytes:
        with self._lock:
            _, quote = self.quotes[self._next % len(self.quotes)]
            self._next += 1
        return quote

    def _malformed(self, good: bytes, quote: bytes, conn: socket.socket) -> bytes | None:
        kind = self.malformed
        if kind is MalformedKind.LENGTH_PREFIX:
            return _BE_U32.pack(len(good) + 4) + good + bytes(4)
        if kind is MalformedKind.TYPE:
            return frame(_patch_u32(good, 4, 3))  # GET_COLLATERAL_RESP
        if kind is MalformedKind.VERSION:
            return frame(_patch_u16(good, 0, 2))
        if kind is MalformedKind.MINOR0:
            return frame(_patch_u16(good, 2, 0))
        if kind is MalformedKind.TRUNCATED:
            conn.sendall(_BE_U32.pack(len(good)) + good[: len(good) // 2])
            return None
        if kind is MalformedKind.QUOTE_SIZE:
            return frame(_patch_u32(good, GET_QUOTE_FIXED_SIZE - 4, len(quote) + 1))
        if kind is MalformedKind.PARTIAL_QUOTE:
            return GetQuoteResp(quote[: len(quote) - 100]).to_frame()
        # MalformedKind.SELECTED_ID
        return GetQuoteResp(quote, selected_id=b"\x01\x02\x03\x04").to_frame()


def _patch_u32(msg: bytes, offset: int, value: int) -> bytes:
    return msg[:offset] + struct.pack("<I", value) + msg[offset + 4 :]


def _patch_u16(msg: bytes, offset: int, value: int) -> bytes:
    return msg[:offset] + struct.pack("<H", value) + msg[offset + 2 :]
