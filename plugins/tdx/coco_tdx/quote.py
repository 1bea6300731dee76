# SPDX-License-Identifier: Apache-2.0
"""Intel TDX quote (v4 and v5) parser.

Layouts mirror Intel DCAP, intel/SGXDataCenterAttestationPrimitives
``QuoteGeneration/quote_wrapper/common/inc/sgx_quote_4.h`` (``sgx_quote4_header_t``,
``sgx_report2_body_t``, ``sgx_quote4_t``) and ``sgx_quote_5.h``
(``sgx_report2_body_v1_5_t``, ``sgx_quote5_t``), all ``#pragma pack(1)`` and
little-endian; the same offsets are spelled out in google/go-tdx-guest
``abi/abi.go`` (``headerSize = 0x30``, ``tdQuoteBodySize = 0x248``,
``tdQuoteBodySizeV5TDX15 = 648``). The Intel document is "Intel TDX DCAP Quoting
Library API", appendix A.3 (v4) and A.4 (v5).

::

    v4:  header[48] | body[584]                         | u32 sig_data_len | sig_data
    v5:  header[48] | u16 type | u32 size | body[size]  | u32 sig_data_len | sig_data

A quote's size is always computed from that structure, never from the length of
the buffer holding it: real quote files carry zero padding (70 bytes, 8000-byte
buffers) and in one case trailing ASCII text (testdata/SOURCES.md).
"""

from __future__ import annotations

import enum
import struct
from typing import Any

import attrs

from coco_core.plugin import DecodeError

__all__ = [
    "BODY_DESCRIPTOR_SIZE",
    "HEADER_SIZE",
    "MIN_SIGNATURE_DATA_SIZE",
    "QUOTE_VERSION_V4",
    "QUOTE_VERSION_V5",
    "SIG_DATA_LEN_SIZE",
    "TD10_BODY_SIZE",
    "TD15_BODY_SIZE",
    "TEE_TYPE_TDX",
    "Quote",
    "QuoteBodyType",
    "QuoteError",
    "QuoteHeader",
    "TdQuoteBody",
    "quote_size",
]

#: ``sizeof(sgx_quote4_header_t)``; sgx_quote_4.h, go-tdx-guest ``headerSize = 0x30``.
HEADER_SIZE = 48
#: ``sizeof(sgx_report2_body_t)``; sgx_quote_4.h, go-tdx-guest ``tdQuoteBodySize = 0x248``.
TD10_BODY_SIZE = 584
#: ``sizeof(sgx_report2_body_v1_5_t)``; sgx_quote_5.h, go-tdx-guest ``tdQuoteBodySizeV5TDX15``.
TD15_BODY_SIZE = 648
#: ``u16 type`` + ``u32 size`` at offsets 48 and 50 of ``sgx_quote5_t`` (sgx_quote_5.h).
BODY_DESCRIPTOR_SIZE = 6
#: ``uint32_t signature_data_len`` (sgx_quote4_t offset 632).
SIG_DATA_LEN_SIZE = 4
#: ``sgx_ecdsa_sig_data_v4_t``: ``sig[64]`` + ``attest_pub_key[64]`` (sgx_quote_4.h), then the
#: certification-data type u16 and size u32 (go-tdx-guest ``certificationDataKnownSize = 0x06``).
MIN_SIGNATURE_DATA_SIZE = 64 + 64 + 6
#: sgx_quote_4.h: "Supported values: 0 (SGX), 0x81(TDX)"; go-tdx-guest ``TeeTDX = 0x00000081``.
TEE_TYPE_TDX = 0x81
#: go-tdx-guest ``QuoteVersionV4 = 4``.
QUOTE_VERSION_V4 = 4
#: sgx_quote_5.h ``QE_QUOTE_VERSION_V5 5``.
QUOTE_VERSION_V5 = 5

# sgx_quote4_header_t: version u16 @0, att_key_type u16 @2, tee_type u32 @4,
# reserved u32 @8, vendor_id[16] @12, user_data[20] @28.
_HEADER = struct.Struct("<HHI4s16s20s")
# sgx_quote5_t: type u16 @48, size u32 @50.
_DESCRIPTOR = struct.Struct("<HI")
_U32 = struct.Struct("<I")
# sgx_report2_body_t, offsets from sgx_quote_4.h: tee_tcb_svn[16] @0, mr_seam[48] @16,
# mrsigner_seam[48] @64, seam_attributes[8] @112, td_attributes[8] @120, xfam[8] @128,
# mr_td[48] @136, mr_config_id[48] @184, mr_owner[48] @232, mr_owner_config[48] @280,
# rt_mr[4][48] @328, report_data[64] @520.
_BODY10 = struct.Struct("<16s48s48s8s8s8s48s48s48s48s48s48s48s48s64s")
# sgx_report2_body_v1_5_t adds tee_tcb_svn2[16] @584 and mr_servicetd[48] @600.
_BODY15_TAIL = struct.Struct("<16s48s")

# Checked at import: the struct formats must add up to the C sizes.
if _HEADER.size != HEADER_SIZE or _DESCRIPTOR.size != BODY_DESCRIPTOR_SIZE:
    raise AssertionError("quote header layout disagrees with sgx_quote_4.h/sgx_quote_5.h")
if _BODY10.size + _BODY15_TAIL.size != TD15_BODY_SIZE or _BODY10.size != TD10_BODY_SIZE:
    raise AssertionError("quote body layout disagrees with sgx_quote_4.h/sgx_quote_5.h")


class QuoteError(DecodeError):
    """Bytes are not a (complete) TDX quote.

    :ivar field: the quote field that failed, e.g. ``"sig_data_len"``.
    :ivar value: the value found (a number, or a length).
    :ivar expected: what a valid quote has there.
    """

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"TDX quote: {field} is {value}, expected {expected}")


@enum.unique
class QuoteBodyType(enum.IntEnum):
    """Quote Body Type of a v5 quote (``sgx_quote5_t.type``, sgx_quote_5.h comment).

    A v4 quote has no descriptor; its body is always a TD 1.0 report.
    """

    SGX_ENCLAVE_REPORT = 1  # "1 (SGX Enclave Report)", sgx_quote_5.h
    TD_REPORT_10 = 2  # "2 (TD Report for TDX 1.0)"; go-tdx-guest tdxVersion10BodyType
    TD_REPORT_15 = 3  # "3 (TD Report for TDX 1.5)"; go-tdx-guest tdxVersion15BodyType


_BODY_SIZE_BY_TYPE = {
    QuoteBodyType.TD_REPORT_10: TD10_BODY_SIZE,
    QuoteBodyType.TD_REPORT_15: TD15_BODY_SIZE,
}


def _hex(data: bytes) -> str:
    return data.hex()


@attrs.frozen
class QuoteHeader:
    """``sgx_quote4_header_t`` (48 bytes; v5 uses the same header).

    ``reserved`` is the u32 at offset 8: sgx_quote_4.h calls it ``reserved``,
    the older ``sgx_quote3_header_t`` puts ``qe_svn``/``pce_svn`` there; it is
    kept as raw bytes so nothing is guessed.
    """

    version: int
    attestation_key_type: int
    tee_type: int
    reserved: bytes = attrs.field(converter=bytes)
    qe_vendor_id: bytes = attrs.field(converter=bytes)
    user_data: bytes = attrs.field(converter=bytes)

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview) -> QuoteHeader:
        """Decode and validate the header at the start of *buf*.

        :raises QuoteError: *buf* is shorter than 48 bytes, the version is not
            4 or 5, or the TEE type is not TDX (0x81).
        """
        if len(buf) < HEADER_SIZE:
            raise QuoteError("header", f"{len(buf)} bytes", f"at least {HEADER_SIZE} bytes")
        version, akt, tee, reserved, vendor, user = _HEADER.unpack_from(buf, 0)
        if version not in (QUOTE_VERSION_V4, QUOTE_VERSION_V5):
            raise QuoteError("version", version, f"{QUOTE_VERSION_V4} or {QUOTE_VERSION_V5}")
        if tee != TEE_TYPE_TDX:
            raise QuoteError("tee_type", f"{tee:#x}", f"{TEE_TYPE_TDX:#x} (TDX)")
        return cls(version, akt, tee, reserved, vendor, user)

    def to_bytes(self) -> bytes:
        """Encode the header back to its 48 wire bytes."""
        return _HEADER.pack(
            self.version,
            self.attestation_key_type,
            self.tee_type,
            self.reserved,
            self.qe_vendor_id,
            self.user_data,
        )


@attrs.frozen
class TdQuoteBody:
    """``sgx_report2_body_t`` (TD 1.0, 584 bytes) or ``sgx_report2_body_v1_5_t`` (648 bytes).

    All fields are the raw little-endian bytes; ``tee_tcb_svn2`` and
    ``mrservicetd`` are ``None`` for a TD 1.0 body.
    """

    tee_tcb_svn: bytes
    mrseam: bytes
    mrsignerseam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mrtd: bytes
    mrconfigid: bytes
    mrowner: bytes
    mrownerconfig: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    rtmr3: bytes
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mrservicetd: bytes | None = None

    @property
    def size(self) -> int:
        """584 for a TD 1.0 body, 648 for a TD 1.5 body."""
        return TD10_BODY_SIZE if self.tee_tcb_svn2 is None else TD15_BODY_SIZE

    @classmethod
    def from_bytes(
        cls, buf: bytes | bytearray | memoryview, offset: int = 0, *, td15: bool = False
    ) -> TdQuoteBody:
        """Decode a body at *offset*; *td15* selects the 648-byte TD 1.5 layout.

        :raises QuoteError: fewer bytes remain than the body needs.
        """
        need = TD15_BODY_SIZE if td15 else TD10_BODY_SIZE
        have = len(buf) - offset
        if have < need:
            raise QuoteError("body", f"{max(have, 0)} bytes", f"{need} bytes")
        (svn, seam, signer, seam_attr, td_attr, xfam, mrtd, cfg, owner, owner_cfg,
         r0, r1, r2, r3, report_data) = _BODY10.unpack_from(buf, offset)  # fmt: skip
        svn2: bytes | None = None
        servicetd: bytes | None = None
        if td15:
            svn2, servicetd = _BODY15_TAIL.unpack_from(buf, offset + TD10_BODY_SIZE)
        return cls(
            svn, seam, signer, seam_attr, td_attr, xfam, mrtd, cfg, owner, owner_cfg,
            r0, r1, r2, r3, report_data, svn2, servicetd,
        )  # fmt: skip

    def to_bytes(self) -> bytes:
        """Encode the body back to its 584 or 648 wire bytes."""
        out = _BODY10.pack(
            self.tee_tcb_svn,
            self.mrseam,
            self.mrsignerseam,
            self.seam_attributes,
            self.td_attributes,
            self.xfam,
            self.mrtd,
            self.mrconfigid,
            self.mrowner,
            self.mrownerconfig,
            self.rtmr0,
            self.rtmr1,
            self.rtmr2,
            self.rtmr3,
            self.report_data,
        )
        if self.tee_tcb_svn2 is not None:
            out += _BODY15_TAIL.pack(self.tee_tcb_svn2, self.mrservicetd or b"")
        return out

    def to_dict(self) -> dict[str, str | None]:
        """Every field as a lowercase hex string (``None`` where absent)."""
        return {
            a.name: (None if (v := getattr(self, a.name)) is None else _hex(v))
            for a in attrs.fields(TdQuoteBody)
        }


@attrs.frozen
class _Layout:
    """Where the parts of a quote lie, computed from the structure alone."""

    version: int
    body_type: int
    body_offset: int
    body_size: int
    sig_data_len: int
    sig_offset: int

    @property
    def size(self) -> int:
        return self.sig_offset + self.sig_data_len


def _layout(buf: bytes | bytearray | memoryview) -> _Layout:
    header = QuoteHeader.from_bytes(buf)
    if header.version == QUOTE_VERSION_V4:
        body_type, body_offset, body_size = QuoteBodyType.TD_REPORT_10, HEADER_SIZE, TD10_BODY_SIZE
    else:
        if len(buf) < HEADER_SIZE + BODY_DESCRIPTOR_SIZE:
            raise QuoteError(
                "v5 body descriptor",
                f"{len(buf) - HEADER_SIZE} bytes",
                f"{BODY_DESCRIPTOR_SIZE} bytes after the {HEADER_SIZE}-byte header",
            )
        raw_type, body_size = _DESCRIPTOR.unpack_from(buf, HEADER_SIZE)
        if raw_type not in _BODY_SIZE_BY_TYPE:
            raise QuoteError(
                "body type",
                raw_type,
                f"{QuoteBodyType.TD_REPORT_10.value} (TD 1.0) or "
                f"{QuoteBodyType.TD_REPORT_15.value} (TD 1.5)",
            )
        body_type = QuoteBodyType(raw_type)
        want = _BODY_SIZE_BY_TYPE[body_type]
        if body_size != want:
            raise QuoteError("body size", body_size, f"{want} for body type {raw_type}")
        body_offset = HEADER_SIZE + BODY_DESCRIPTOR_SIZE
    len_offset = body_offset + body_size
    if len(buf) < len_offset + SIG_DATA_LEN_SIZE:
        raise QuoteError(
            "length",
            f"{len(buf)} bytes",
            f"at least {len_offset + SIG_DATA_LEN_SIZE} bytes (header, body, sig_data_len)",
        )
    (sig_data_len,) = _U32.unpack_from(buf, len_offset)
    sig_offset = len_offset + SIG_DATA_LEN_SIZE
    if sig_data_len < MIN_SIGNATURE_DATA_SIZE:
        raise QuoteError(
            "sig_data_len",
            sig_data_len,
            f"at least {MIN_SIGNATURE_DATA_SIZE} (ECDSA signature, key, certification header)",
        )
    if len(buf) < sig_offset + sig_data_len:
        raise QuoteError(
            "sig_data_len",
            sig_data_len,
            f"at most {len(buf) - sig_offset} (bytes left after offset {sig_offset})",
        )
    return _Layout(header.version, body_type, body_offset, body_size, sig_data_len, sig_offset)


def quote_size(buf: bytes | bytearray | memoryview) -> int:
    """The true size of the quote at the start of *buf*, ignoring any trailing bytes.

    header + (v5: 6-byte descriptor) + body + 4 + ``sig_data_len``.

    :raises QuoteError: *buf* does not start with a complete TDX quote.
    """
    return _layout(buf).size


@attrs.frozen
class Quote:
    """A decoded TDX quote.

    ``raw`` holds exactly the quote's bytes (trailing padding removed), so
    ``len(quote.raw) == quote.size``.
    """

    header: QuoteHeader
    body_type: QuoteBodyType
    body: TdQuoteBody
    signature_data: bytes = attrs.field(repr=lambda v: f"<{len(v)} bytes>")
    raw: bytes = attrs.field(repr=False)

    @property
    def version(self) -> int:
        """Quote version, 4 or 5."""
        return self.header.version

    @property
    def body_size(self) -> int:
        """584 (TD 1.0) or 648 (TD 1.5)."""
        return self.body.size

    @property
    def signature_data_len(self) -> int:
        """The ``sig_data_len`` field."""
        return len(self.signature_data)

    @property
    def size(self) -> int:
        """The quote's true size in bytes."""
        return len(self.raw)

    @property
    def signed_bytes(self) -> bytes:
        """Header and body (with the v5 descriptor): what the attestation key signs."""
        return self.raw[: self.size - len(self.signature_data) - SIG_DATA_LEN_SIZE]

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview) -> Quote:
        """Decode the quote at the start of *buf*; trailing bytes are ignored.

        :raises QuoteError: truncated or invalid quote, naming the field.
        """
        layout = _layout(buf)
        view = memoryview(buf)
        body = TdQuoteBody.from_bytes(
            view, layout.body_offset, td15=layout.body_type == QuoteBodyType.TD_REPORT_15
        )
        return cls(
            header=QuoteHeader.from_bytes(view),
            body_type=QuoteBodyType(layout.body_type),
            body=body,
            signature_data=bytes(view[layout.sig_offset : layout.size]),
            raw=bytes(view[: layout.size]),
        )

    def to_bytes(self) -> bytes:
        """The quote's exact bytes."""
        return self.raw

    def to_dict(self, *, include_signature: bool = False) -> dict[str, Any]:
        """A JSON-ready dict: numbers stay numbers, byte fields become hex strings.

        :param include_signature: also emit ``signature_data`` as hex (several KiB).
        """
        out: dict[str, Any] = {
            "version": self.header.version,
            "attestation_key_type": self.header.attestation_key_type,
            "tee_type": self.header.tee_type,
            "reserved": _hex(self.header.reserved),
            "qe_vendor_id": _hex(self.header.qe_vendor_id),
            "user_data": _hex(self.header.user_data),
            "body_type": int(self.body_type),
            "body_size": self.body_size,
            "body": self.body.to_dict(),
            "signature_data_len": self.signature_data_len,
            "size": self.size,
        }
        if include_signature:
            out["signature_data"] = _hex(self.signature_data)
        return out
