# SPDX-License-Identifier: Apache-2.0
"""A blocking client for Intel's Quote Generation Service (QGS).

One connection per request, as QEMU does (``tdx-quote-generator.c``) and as QGS
expects (``qgs_server.cpp`` serves one request per connection and closes it after
``QGS_TIMEOUT = 30`` seconds). The API is blocking; a VMM runs it on a worker
thread. Every wait is bounded: ``connect_timeout`` for the connect, then one
overall deadline of ``read_timeout`` seconds for sending the request and reading
the whole response, however slowly the peer trickles bytes.

Addresses (wire-formats.md §1.1): QGS listens on ``AF_UNIX``
``/var/run/tdx-qgs/qgs.socket`` when no port is configured, or on ``AF_VSOCK``
port 4050 (the shipped ``/etc/qgs.conf``); from a guest or a nested setup the host
is CID 2 (``VMADDR_CID_HOST``).

Errors, all :class:`~coco_tdx.qgs.wire.QgsError`:

- :class:`QgsUnavailable`: socket missing, connection refused, ``AF_VSOCK`` unsupported.
- :class:`QgsTimeout`: connect or response deadline passed.
- :class:`~coco_tdx.qgs.wire.QgsProtocolError`: malformed frame, wrong version/type,
  inconsistent sizes, ``selected_id_size != 0``, or a quote that is not whole
  (:class:`~coco_tdx.qgs.wire.QgsResponseTooLarge` when over ``max_response``).
- :class:`~coco_tdx.qgs.wire.QgsErrorCode`: QGS answered with a non-zero ``error_code``.
"""

from __future__ import annotations

import socket
import time

import attrs

from coco_tdx.qgs.wire import (
    HEADER_SIZE,
    LENGTH_PREFIX_SIZE,
    GetQuoteReq,
    GetQuoteResp,
    QgsError,
    QgsErrorCode,
    QgsProtocolError,
    QgsResponseTooLarge,
    parse_length_prefix,
)
from coco_tdx.quote import QuoteError, quote_size

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_RESPONSE",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_UNIX_PATH",
    "DEFAULT_VSOCK_CID",
    "DEFAULT_VSOCK_PORT",
    "QgsAddress",
    "QgsClient",
    "QgsError",
    "QgsErrorCode",
    "QgsProtocolError",
    "QgsResponseTooLarge",
    "QgsTimeout",
    "QgsUnavailable",
    "UnixAddress",
    "VsockAddress",
    "parse_vsock",
]

#: QGS's unix socket when ``port`` is 0/unset (qgs/server_main.cpp; wire-formats.md §1.1).
DEFAULT_UNIX_PATH = "/var/run/tdx-qgs/qgs.socket"
#: ``VMADDR_CID_HOST`` (linux/vm_sockets.h); the CID QEMU's docs use for QGS.
DEFAULT_VSOCK_CID = 2
#: ``port = 4050`` in the shipped qgs/qgs.conf.
DEFAULT_VSOCK_PORT = 4050
#: Our choice: a local socket connects in microseconds; 5 s only covers a busy host.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: QGS closes a connection after ``QGS_TIMEOUT = 30`` s (qgs_server.cpp) and QEMU
#: gives up on the whole transaction after ``TRANSACTION_TIMEOUT 30000`` ms
#: (tdx-quote-generator.c): connect plus read stay within those 30 s, which is also
#: the default of :class:`~coco_tdx.service.QuoteService` (its deadline bounds both).
DEFAULT_READ_TIMEOUT = 30.0 - DEFAULT_CONNECT_TIMEOUT
#: Largest accepted ``qgs_msg`` (after the length prefix). QEMU rejects GetQuote
#: buffers above 128 KiB (kernel-abi.md §2.4), so no bigger quote can reach a guest.
DEFAULT_MAX_RESPONSE = 128 * 1024

_U32_MAX = 0xFFFFFFFF
_RECV_CHUNK = 64 * 1024


class QgsUnavailable(QgsError):
    """QGS cannot be reached: socket missing, connection refused, no ``AF_VSOCK``."""


class QgsTimeout(QgsError):
    """QGS did not accept the connection or did not answer in time."""


def _check_u32(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= _U32_MAX:
        raise ValueError(f"{attribute.name} is {value}, expected 0..{_U32_MAX:#x}")


def _check_positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} is {value}, expected a positive number")


@attrs.frozen
class UnixAddress:
    """A QGS listening on an ``AF_UNIX`` stream socket."""

    path: str = DEFAULT_UNIX_PATH

    def __str__(self) -> str:
        return f"unix:{self.path}"


@attrs.frozen
class VsockAddress:
    """A QGS listening on ``AF_VSOCK`` (``cid``, ``port``)."""

    cid: int = attrs.field(default=DEFAULT_VSOCK_CID, validator=_check_u32)
    port: int = attrs.field(default=DEFAULT_VSOCK_PORT, validator=_check_u32)

    def __str__(self) -> str:
        return f"vsock:{self.cid}:{self.port}"


QgsAddress = UnixAddress | VsockAddress


def parse_vsock(text: str) -> VsockAddress:
    """Parse ``"CID:PORT"`` (decimal or 0x-hex) into a :class:`VsockAddress`.

    :raises ValueError: not two integers in range.
    """
    cid, sep, port = text.partition(":")
    if not sep:
        raise ValueError(f"vsock address {text!r}: expected CID:PORT, e.g. 2:4050")
    try:
        return VsockAddress(int(cid, 0), int(port, 0))
    except ValueError as exc:
        raise ValueError(f"vsock address {text!r}: {exc}") from exc


@attrs.frozen
class QgsClient:
    """Ask a QGS to turn a TDREPORT into a quote.

    :param address: where QGS listens; :class:`UnixAddress` (default path) or
        :class:`VsockAddress`.
    :param connect_timeout: seconds allowed for the connect.
    :param read_timeout: seconds allowed, in total, to send the request and read
        the full response.
    :param accept_minor0: also accept responses with minor version 0 (QGS before
        DCAP 1.21); by default only 1.1 is accepted, as upstream QEMU does.
    :param max_response: largest ``qgs_msg`` accepted, checked against the length
        prefix before anything is allocated.
    :param trim_padding: return the quote cut to its true size when QGS pads it
        with zero bytes (padded quotes are common, testdata/SOURCES.md).
    """

    address: QgsAddress = attrs.field(factory=UnixAddress)
    connect_timeout: float = attrs.field(
        default=DEFAULT_CONNECT_TIMEOUT, kw_only=True, validator=_check_positive
    )
    read_timeout: float = attrs.field(
        default=DEFAULT_READ_TIMEOUT, kw_only=True, validator=_check_positive
    )
    accept_minor0: bool = attrs.field(default=False, kw_only=True)
    max_response: int = attrs.field(default=DEFAULT_MAX_RESPONSE, kw_only=True)
    trim_padding: bool = attrs.field(default=True, kw_only=True)

    @max_response.validator
    def _check_max_response(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not HEADER_SIZE <= value <= _U32_MAX:
            raise ValueError(f"max_response is {value}, expected {HEADER_SIZE}..{_U32_MAX:#x}")

    def get_quote(self, report: bytes, *, deadline: float | None = None) -> bytes:
        """Send *report* (a 1024-byte TDREPORT) in a GET_QUOTE_REQ and return the bare quote.

        :param deadline: a ``time.monotonic()`` time the whole transaction (connect
            included) must end by, on top of ``connect_timeout`` and ``read_timeout``:
            :class:`~coco_tdx.service.QuoteService` passes its own, so the client never
            outlives the request it serves.

        *report* is always wrapped in the QGS framing, as upstream QEMU does with
        the ``in_len`` bytes of the GetQuote buffer (wire-formats.md §1.7). A guest
        that already framed its request (old libtdx_attest TDVMCALL mode) would be
        double-wrapped; QGS then answers with an error code.

        :raises QgsUnavailable: QGS cannot be reached.
        :raises QgsTimeout: a deadline passed.
        :raises QgsProtocolError: the response is malformed or not a whole quote.
        :raises QgsErrorCode: QGS answered with a non-zero error code.
        """
        request = GetQuoteReq(report).to_frame()
        with self._connect(deadline) as sock:
            end = time.monotonic() + self.read_timeout
            deadline = end if deadline is None else min(end, deadline)
            self._send(sock, request, deadline)
            length = parse_length_prefix(
                self._recv_exact(sock, LENGTH_PREFIX_SIZE, deadline, "length prefix")
            )
            if length > self.max_response:
                raise QgsResponseTooLarge(
                    "length prefix", length, f"at most {self.max_response} (max_response)"
                )
            msg = self._recv_exact(sock, length, deadline, "GET_QUOTE_RESP")
        resp = GetQuoteResp.from_message(msg, accept_minor0=self.accept_minor0)
        resp.raise_for_error()
        if resp.selected_id:
            raise QgsProtocolError(
                "selected_id_size",
                len(resp.selected_id),
                "0 (coco sends no id list; QEMU rejects any other value)",
            )
        return self._whole_quote(resp.quote)

    def _whole_quote(self, quote: bytes) -> bytes:
        try:
            true_size = quote_size(quote)
        except QuoteError as exc:
            raise QgsProtocolError(
                "quote", f"{len(quote)} bytes", f"a whole TDX quote ({exc})"
            ) from exc
        tail = quote[true_size:]
        if tail.strip(b"\0"):
            raise QgsProtocolError(
                "quote_size",
                len(quote),
                f"{true_size} (the quote's own size) or that plus zero padding; "
                f"the {len(tail)} bytes after the quote are not all zero",
            )
        return quote[:true_size] if self.trim_padding else quote

    def _connect(self, deadline: float | None = None) -> socket.socket:
        address = self.address
        wait = self.connect_timeout
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                raise QgsTimeout(
                    f"QGS at {address}: the caller's deadline passed before connecting"
                )
        target: str | tuple[int, int]
        if isinstance(address, VsockAddress):
            family = getattr(socket, "AF_VSOCK", None)
            if family is None:
                raise QgsUnavailable(f"QGS at {address}: AF_VSOCK is not supported here")
            target = (address.cid, address.port)
        else:
            family = socket.AF_UNIX
            target = address.path
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            raise QgsUnavailable(f"QGS at {address}: cannot create socket: {exc}") from exc
        try:
            sock.settimeout(wait)
            sock.connect(target)
        except TimeoutError as exc:
            sock.close()
            raise QgsTimeout(f"QGS at {address}: connect took longer than {wait:.3g} s") from exc
        except OSError as exc:
            sock.close()
            reason = exc.strerror or str(exc)
            raise QgsUnavailable(f"QGS at {address}: cannot connect: {reason}") from exc
        return sock

    def _remaining(self, deadline: float, what: str) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise QgsTimeout(f"QGS at {self.address}: no complete {what} before the deadline")
        return left

    def _send(self, sock: socket.socket, data: bytes, deadline: float) -> None:
        # Since Python 3.5 the timeout bounds the whole sendall, not each chunk.
        sock.settimeout(self._remaining(deadline, "request send"))
        try:
            sock.sendall(data)
        except TimeoutError as exc:
            raise QgsTimeout(
                f"QGS at {self.address}: request not accepted within {self.read_timeout} s"
            ) from exc
        except OSError as exc:
            raise QgsUnavailable(
                f"QGS at {self.address}: connection lost while sending: {exc.strerror or exc}"
            ) from exc

    def _recv_exact(self, sock: socket.socket, n: int, deadline: float, what: str) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            sock.settimeout(self._remaining(deadline, what))
            try:
                k = sock.recv_into(view[got:], min(n - got, _RECV_CHUNK))
            except TimeoutError as exc:
                raise QgsTimeout(
                    f"QGS at {self.address}: no complete {what} within {self.read_timeout} s "
                    f"({got} of {n} bytes)"
                ) from exc
            except OSError as exc:
                raise QgsProtocolError(
                    what, f"{got} of {n} bytes (connection error: {exc})", f"{n} bytes"
                ) from exc
            if k == 0:
                raise QgsProtocolError(
                    what, f"{got} of {n} bytes (connection closed)", f"{n} bytes"
                )
            got += k
        return bytes(buf)
