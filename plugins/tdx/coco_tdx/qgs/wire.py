# SPDX-License-Identifier: Apache-2.0
"""Intel QGS (Quote Generation Service) wire messages.

Mirrors intel/SGXDataCenterAttestationPrimitives @a46ee8ab (DCAP 1.22 era)
``QuoteGeneration/quote_wrapper/qgs_msg_lib/inc/qgs_msg_lib.h`` and
``qgs_msg_lib.cpp``; the framing is from ``qgs/qgs_server.cpp`` and upstream QEMU
``target/i386/kvm/tdx-quote-generator.c`` (summarised in
docs/reference/wire-formats.md §1.2-1.5).

On the stream every message is a 4-byte **big-endian** length followed by a packed
**little-endian** ``qgs_msg``::

    u32 BE length | u16 major | u16 minor | u32 type | u32 size | u32 error_code | payload

``size`` counts the whole ``qgs_msg`` including its 16-byte header and must equal
the frame length. Only GET_QUOTE is implemented; coco never asks for collateral
or platform info.

Minor-version policy: QGS itself only checks ``major == 1`` (qgs_msg_lib.cpp,
"Only major version is checked"), but upstream QEMU rejects a response whose minor
is not 1, which rejects QGS from before DCAP 1.21 (minor 0). Response decoders here
follow QEMU by default and accept minor 0 only with ``accept_minor0=True``.
"""

from __future__ import annotations

import enum
import struct

import attrs

from coco_core.plugin import CoCoError

__all__ = [
    "GET_QUOTE_FIXED_SIZE",
    "HEADER_SIZE",
    "LENGTH_PREFIX_SIZE",
    "QGS_MSG_LIB_MAJOR_VER",
    "QGS_MSG_LIB_MINOR_VER",
    "U32_MAX",
    "GetQuoteReq",
    "GetQuoteResp",
    "QgsError",
    "QgsErrorCode",
    "QgsMsgError",
    "QgsMsgHeader",
    "QgsMsgType",
    "QgsProtocolError",
    "QgsResponseTooLarge",
    "frame",
    "parse_length_prefix",
    "unframe",
]

#: ``const uint32_t QGS_MSG_LIB_MAJOR_VER = 1;`` (qgs_msg_lib.cpp)
QGS_MSG_LIB_MAJOR_VER = 1
#: ``const uint32_t QGS_MSG_LIB_MINOR_VER = 1;`` (qgs_msg_lib.cpp, DCAP >= 1.21; 0 before).
QGS_MSG_LIB_MINOR_VER = 1
#: The BE length in front of every message (qgs_server.cpp; wire-formats.md §1.2).
LENGTH_PREFIX_SIZE = 4
#: ``sizeof(qgs_msg_header_t)`` (qgs_msg_lib.h).
HEADER_SIZE = 16
#: ``sizeof(qgs_msg_get_quote_req_t)`` == ``sizeof(qgs_msg_get_quote_resp_t)`` (qgs_msg_lib.h):
#: the header plus two u32 sizes. Also the size of a GET_QUOTE error response.
GET_QUOTE_FIXED_SIZE = 24
#: Sizes are u32 on the wire; qgs_msg_lib.cpp rejects totals ``>= UINT32_MAX``.
U32_MAX = 0xFFFFFFFF

_HEADER = struct.Struct("<HHIII")
_SIZES = struct.Struct("<II")
_BE_U32 = struct.Struct(">I")


@enum.unique
class QgsMsgType(enum.IntEnum):
    """``qgs_msg_type_t`` (qgs_msg_lib.h)."""

    GET_QUOTE_REQ = 0  # GET_QUOTE_REQ
    GET_QUOTE_RESP = 1  # GET_QUOTE_RESP
    GET_COLLATERAL_REQ = 2  # GET_COLLATERAL_REQ
    GET_COLLATERAL_RESP = 3  # GET_COLLATERAL_RESP
    GET_PLATFORM_INFO_REQ = 4  # GET_PLATFORM_INFO_REQ
    GET_PLATFORM_INFO_RESP = 5  # GET_PLATFORM_INFO_RESP
    MAX = 6  # QGS_MSG_TYPE_MAX (sentinel, not a message type)


#: ``#define QGS_MSG_MK_ERROR(x) (0x00012000 | (x))`` (qgs_msg_lib.h).
_QGS_MSG_MK_ERROR = 0x00012000


@enum.unique
class QgsMsgError(enum.IntEnum):
    """``qgs_msg_error_t`` (qgs_msg_lib.h); values are ``QGS_MSG_MK_ERROR(x)``.

    QGS itself answers every failed GET_QUOTE with ``UNEXPECTED``
    (qgs/qgs_ql_logic.cpp; wire-formats.md §1.5).
    """

    SUCCESS = 0x0000  # QGS_MSG_SUCCESS
    UNEXPECTED = _QGS_MSG_MK_ERROR | 0x0001  # QGS_MSG_ERROR_UNEXPECTED
    OUT_OF_MEMORY = _QGS_MSG_MK_ERROR | 0x0002  # QGS_MSG_ERROR_OUT_OF_MEMORY
    INVALID_PARAMETER = _QGS_MSG_MK_ERROR | 0x0003  # QGS_MSG_ERROR_INVALID_PARAMETER
    INVALID_VERSION = _QGS_MSG_MK_ERROR | 0x0004  # QGS_MSG_ERROR_INVALID_VERSION
    INVALID_TYPE = _QGS_MSG_MK_ERROR | 0x0005  # QGS_MSG_ERROR_INVALID_TYPE
    INVALID_SIZE = _QGS_MSG_MK_ERROR | 0x0006  # QGS_MSG_ERROR_INVALID_SIZE
    INVALID_CODE = _QGS_MSG_MK_ERROR | 0x0007  # QGS_MSG_ERROR_INVALID_CODE
    MAX = _QGS_MSG_MK_ERROR | 0x0008  # QGS_MSG_ERROR_MAX (sentinel: first invalid code)


# Defined error codes and their C names; SUCCESS and the MAX sentinel are not errors.
_ERROR_NAMES = {
    int(m): f"QGS_MSG_ERROR_{m.name}"
    for m in QgsMsgError
    if m not in (QgsMsgError.SUCCESS, QgsMsgError.MAX)
}


class QgsError(CoCoError):
    """Base class of every error talking to a QGS."""


class QgsProtocolError(QgsError):
    """The peer sent bytes that are not a valid QGS message.

    :ivar field: the field that failed, e.g. ``"header.type"``.
    :ivar value: what was received.
    :ivar expected: what a valid message has there.
    """

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"QGS protocol: {field} is {value}, expected {expected}")


class QgsResponseTooLarge(QgsProtocolError):
    """The response frame is larger than the caller allowed (``max_response``)."""


class QgsErrorCode(QgsError):
    """QGS answered with a non-zero ``error_code``.

    :ivar code: the raw code, always kept.
    :ivar name: the ``qgs_msg_error_t`` name if *code* is a defined error
        (``QGS_MSG_ERROR_UNEXPECTED`` ...), else ``None``; never guessed.
    """

    def __init__(self, code: int) -> None:
        self.code = code
        self.name: str | None = _ERROR_NAMES.get(code)
        label = self.name if self.name is not None else "unknown code"
        super().__init__(f"QGS returned error_code {code:#x} ({label})")


def frame(msg: bytes) -> bytes:
    """Prefix the ``qgs_msg`` *msg* with its 4-byte big-endian length."""
    if len(msg) > U32_MAX:
        raise QgsProtocolError("message length", len(msg), f"at most {U32_MAX:#x}")
    return _BE_U32.pack(len(msg)) + msg


def parse_length_prefix(prefix: bytes | bytearray | memoryview) -> int:
    """Decode the 4-byte big-endian length prefix.

    :raises QgsProtocolError: not 4 bytes, or a length too small to hold a header.
    """
    if len(prefix) != LENGTH_PREFIX_SIZE:
        raise QgsProtocolError(
            "length prefix", f"{len(prefix)} bytes", f"{LENGTH_PREFIX_SIZE} bytes"
        )
    length: int = _BE_U32.unpack(prefix)[0]
    if length < HEADER_SIZE:
        raise QgsProtocolError(
            "length prefix", length, f"at least {HEADER_SIZE} (a qgs_msg_header_t)"
        )
    return length


def unframe(data: bytes | bytearray | memoryview) -> bytes:
    """Strip the length prefix from one complete frame and return the ``qgs_msg``.

    :raises QgsProtocolError: the prefix disagrees with the number of bytes after it.
    """
    length = parse_length_prefix(bytes(data[:LENGTH_PREFIX_SIZE]))
    body = bytes(data[LENGTH_PREFIX_SIZE:])
    if len(body) != length:
        raise QgsProtocolError("length prefix", length, f"{len(body)} (the bytes that follow it)")
    return body


def _check_minor(minor: int, accept_minor0: bool) -> None:
    if minor == QGS_MSG_LIB_MINOR_VER or (accept_minor0 and minor == 0):
        return
    allowed = "0 or 1" if accept_minor0 else "1 (0 only with accept_minor0)"
    raise QgsProtocolError("header.minor_version", minor, allowed)


@attrs.frozen
class QgsMsgHeader:
    """``qgs_msg_header_t`` (16 bytes, packed, little-endian; qgs_msg_lib.h)."""

    major_version: int
    minor_version: int
    type: int
    size: int
    error_code: int

    @classmethod
    def from_bytes(cls, msg: bytes | bytearray | memoryview) -> QgsMsgHeader:
        """Decode the header at the start of *msg*; only its length is checked here.

        :raises QgsProtocolError: *msg* is shorter than 16 bytes.
        """
        if len(msg) < HEADER_SIZE:
            raise QgsProtocolError("qgs_msg", f"{len(msg)} bytes", f"at least {HEADER_SIZE}")
        return cls(*_HEADER.unpack_from(msg, 0))

    def to_bytes(self) -> bytes:
        """Encode the 16 header bytes."""
        return _HEADER.pack(
            self.major_version, self.minor_version, self.type, self.size, self.error_code
        )

    def check(
        self, msg_len: int, msg_type: QgsMsgType, *, minor: bool, accept_minor0: bool
    ) -> None:
        """Validate major version, type, ``size == msg_len`` and (if *minor*) the minor version.

        :raises QgsProtocolError: naming the first field that is wrong.
        """
        if self.major_version != QGS_MSG_LIB_MAJOR_VER:
            raise QgsProtocolError(
                "header.major_version", self.major_version, str(QGS_MSG_LIB_MAJOR_VER)
            )
        if minor:
            _check_minor(self.minor_version, accept_minor0)
        if self.type != msg_type:
            raise QgsProtocolError("header.type", self.type, f"{int(msg_type)} ({msg_type.name})")
        if self.size != msg_len:
            raise QgsProtocolError("header.size", self.size, f"{msg_len} (the frame length)")


@attrs.frozen
class GetQuoteReq:
    """``qgs_msg_get_quote_req_t``: the TDREPORT (and optional id list) to quote."""

    report: bytes = attrs.field(converter=bytes)
    id_list: bytes = attrs.field(converter=bytes, default=b"")
    minor_version: int = QGS_MSG_LIB_MINOR_VER

    def to_message(self) -> bytes:
        """The packed ``qgs_msg`` (no length prefix), as ``qgs_msg_gen_get_quote_req``.

        :raises QgsProtocolError: empty report (qgs_msg_lib: "cannot be 0") or a
            total size that does not fit in u32.
        """
        if not self.report:
            raise QgsProtocolError("report_size", 0, "non-zero (qgs_msg_lib.h: cannot be 0)")
        size = GET_QUOTE_FIXED_SIZE + len(self.report) + len(self.id_list)
        if size >= U32_MAX:
            raise QgsProtocolError("header.size", size, f"below {U32_MAX:#x}")
        header = QgsMsgHeader(
            QGS_MSG_LIB_MAJOR_VER, self.minor_version, QgsMsgType.GET_QUOTE_REQ, size, 0
        )
        return (
            header.to_bytes()
            + _SIZES.pack(len(self.report), len(self.id_list))
            + self.report
            + self.id_list
        )

    def to_frame(self) -> bytes:
        """The message with its big-endian length prefix, ready for the socket."""
        return frame(self.to_message())

    @classmethod
    def from_message(cls, msg: bytes | bytearray | memoryview) -> GetQuoteReq:
        """Decode and validate as QGS does (``qgs_msg_inflate_get_quote_req``).

        Any minor version is accepted, as QGS does; major must be 1, type
        GET_QUOTE_REQ, ``size == len(msg) == 24 + report_size + id_list_size``,
        ``error_code == 0`` and ``report_size != 0``.

        :raises QgsProtocolError: naming the first field that is wrong.
        """
        header = QgsMsgHeader.from_bytes(msg)
        header.check(len(msg), QgsMsgType.GET_QUOTE_REQ, minor=False, accept_minor0=True)
        if header.error_code != 0:
            raise QgsProtocolError("header.error_code", f"{header.error_code:#x}", "0 in a request")
        if len(msg) < GET_QUOTE_FIXED_SIZE:
            raise QgsProtocolError(
                "GET_QUOTE_REQ", f"{len(msg)} bytes", f"at least {GET_QUOTE_FIXED_SIZE}"
            )
        report_size, id_list_size = _SIZES.unpack_from(msg, HEADER_SIZE)
        if report_size == 0:
            raise QgsProtocolError("report_size", 0, "non-zero")
        want = GET_QUOTE_FIXED_SIZE + report_size + id_list_size
        if want != len(msg):
            raise QgsProtocolError(
                "report_size + id_list_size",
                f"{report_size} + {id_list_size}",
                f"{len(msg) - GET_QUOTE_FIXED_SIZE} (header.size - {GET_QUOTE_FIXED_SIZE})",
            )
        start = GET_QUOTE_FIXED_SIZE
        view = memoryview(msg)
        return cls(
            bytes(view[start : start + report_size]),
            bytes(view[start + report_size : want]),
            header.minor_version,
        )

    @classmethod
    def from_frame(cls, data: bytes | bytearray | memoryview) -> GetQuoteReq:
        """Decode one complete frame (length prefix included); see :meth:`from_message`."""
        return cls.from_message(unframe(data))


@attrs.frozen
class GetQuoteResp:
    """``qgs_msg_get_quote_resp_t``: a quote, or (``error_code != 0``) a 24-byte error.

    ``error_code`` is kept raw; :meth:`raise_for_error` turns a non-zero value into
    :class:`QgsErrorCode`.
    """

    quote: bytes = attrs.field(converter=bytes, repr=lambda v: f"<{len(v)} bytes>")
    selected_id: bytes = attrs.field(converter=bytes, default=b"")
    error_code: int = 0
    minor_version: int = QGS_MSG_LIB_MINOR_VER

    @classmethod
    def error(cls, code: int, *, minor_version: int = QGS_MSG_LIB_MINOR_VER) -> GetQuoteResp:
        """An error response as ``qgs_msg_gen_error_resp(code, GET_QUOTE_RESP)`` builds it."""
        if code == 0:
            raise QgsProtocolError("error_code", 0, "non-zero in an error response")
        return cls(b"", b"", code, minor_version)

    def raise_for_error(self) -> None:
        """Raise :class:`QgsErrorCode` if this is an error response."""
        if self.error_code != 0:
            raise QgsErrorCode(self.error_code)

    def to_message(self) -> bytes:
        """The packed ``qgs_msg`` (no length prefix)."""
        if self.error_code == 0 and not self.quote:
            raise QgsProtocolError("quote_size", 0, "non-zero in a success response")
        size = GET_QUOTE_FIXED_SIZE + len(self.selected_id) + len(self.quote)
        if size >= U32_MAX:
            raise QgsProtocolError("header.size", size, f"below {U32_MAX:#x}")
        header = QgsMsgHeader(
            QGS_MSG_LIB_MAJOR_VER,
            self.minor_version,
            QgsMsgType.GET_QUOTE_RESP,
            size,
            self.error_code,
        )
        return (
            header.to_bytes()
            + _SIZES.pack(len(self.selected_id), len(self.quote))
            + self.selected_id
            + self.quote
        )

    def to_frame(self) -> bytes:
        """The message with its big-endian length prefix."""
        return frame(self.to_message())

    @classmethod
    def from_message(
        cls, msg: bytes | bytearray | memoryview, *, accept_minor0: bool = False
    ) -> GetQuoteResp:
        """Decode and validate a GET_QUOTE_RESP ``qgs_msg`` (length prefix already removed).

        Checks, in order: major 1; minor 1 (or 0 with *accept_minor0*); type
        GET_QUOTE_RESP; ``size == len(msg)``; at least 24 bytes. An error response
        (``error_code != 0``) must be exactly 24 bytes with both sizes 0, as
        ``qgs_msg_inflate_get_quote_resp`` requires. A success response must have
        ``quote_size > 0`` and ``24 + selected_id_size + quote_size == size``.

        :raises QgsProtocolError: naming the first field that is wrong.
        """
        header = QgsMsgHeader.from_bytes(msg)
        header.check(len(msg), QgsMsgType.GET_QUOTE_RESP, minor=True, accept_minor0=accept_minor0)
        if len(msg) < GET_QUOTE_FIXED_SIZE:
            raise QgsProtocolError(
                "GET_QUOTE_RESP", f"{len(msg)} bytes", f"at least {GET_QUOTE_FIXED_SIZE}"
            )
        selected_id_size, quote_size = _SIZES.unpack_from(msg, HEADER_SIZE)
        if header.error_code != 0:
            if len(msg) != GET_QUOTE_FIXED_SIZE or selected_id_size or quote_size:
                raise QgsProtocolError(
                    "error response",
                    f"size {len(msg)}, selected_id_size {selected_id_size}, "
                    f"quote_size {quote_size}",
                    f"size {GET_QUOTE_FIXED_SIZE} with both sizes 0 "
                    f"(error_code {header.error_code:#x})",
                )
            return cls(b"", b"", header.error_code, header.minor_version)
        if quote_size == 0:
            raise QgsProtocolError("quote_size", 0, "non-zero when error_code is 0")
        want = GET_QUOTE_FIXED_SIZE + selected_id_size + quote_size
        if want != len(msg):
            raise QgsProtocolError(
                "quote_size",
                quote_size,
                f"{len(msg) - GET_QUOTE_FIXED_SIZE - selected_id_size} "
                f"(frame length {len(msg)} - {GET_QUOTE_FIXED_SIZE} - "
                f"selected_id_size {selected_id_size})",
            )
        start = GET_QUOTE_FIXED_SIZE
        view = memoryview(msg)
        return cls(
            bytes(view[start + selected_id_size : want]),
            bytes(view[start : start + selected_id_size]),
            0,
            header.minor_version,
        )

    @classmethod
    def from_frame(
        cls, data: bytes | bytearray | memoryview, *, accept_minor0: bool = False
    ) -> GetQuoteResp:
        """Decode one complete frame (length prefix included); see :meth:`from_message`."""
        return cls.from_message(unframe(data), accept_minor0=accept_minor0)
