# SPDX-License-Identifier: Apache-2.0
"""A minimal, bounds-checked DER reader for the AMD certificates.

Definite lengths only, low tag numbers only, every length checked against its
parent: a certificate field that overruns its element is a
:class:`CertificateError`, never an exception
from deep inside a parser. Why coco reads DER itself rather than through
``cryptography`` is told in :mod:`coco_snp.certs.certificate`.
"""

from __future__ import annotations

import datetime as dt

import attrs

from coco_core.plugin import DecodeError

__all__ = [
    "OID_CN",
    "CertificateError",
    "Name",
    "Tlv",
    "children",
    "common_name",
    "expect",
    "read_ia5",
    "read_int",
    "read_name",
    "read_oid",
    "read_string",
    "read_time",
    "read_tlv",
]


class CertificateError(DecodeError):
    """Bytes are not a certificate coco can read (the message says where)."""


# ---------------------------------------------------------------------------------------
# A minimal DER reader: definite lengths only, low tag numbers only, every length checked.
# ---------------------------------------------------------------------------------------
@attrs.frozen
class Tlv:
    tag: int
    start: int  # first byte of the tag
    body: int  # first byte of the contents
    end: int  # one past the last content byte


def read_tlv(buf: bytes, pos: int, limit: int, what: str) -> Tlv:
    if pos + 2 > limit:
        raise CertificateError(f"{what}: DER element at byte {pos} is truncated (limit {limit})")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise CertificateError(f"{what}: DER tag 0x{tag:02X} at byte {pos} uses a high tag number")
    first = buf[pos + 1]
    body = pos + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise CertificateError(
                f"{what}: DER length byte 0x{first:02X} at byte {pos + 1}; expected a definite "
                "length of at most 4 length bytes"
            )
        if body + count > limit:
            raise CertificateError(f"{what}: DER length at byte {pos + 1} is truncated")
        length = int.from_bytes(buf[body : body + count], "big")
        body += count
    end = body + length
    if end > limit:
        raise CertificateError(
            f"{what}: DER element at byte {pos} has length {length}, ending at {end}; expected "
            f"it to end within {limit}"
        )
    return Tlv(tag, pos, body, end)


def expect(buf: bytes, pos: int, limit: int, tag: int, what: str) -> Tlv:
    t = read_tlv(buf, pos, limit, what)
    if t.tag != tag:
        raise CertificateError(f"{what}: DER tag is 0x{t.tag:02X}; expected 0x{tag:02X}")
    return t


def children(buf: bytes, parent: Tlv, what: str) -> list[Tlv]:
    out: list[Tlv] = []
    pos = parent.body
    while pos < parent.end:
        child = read_tlv(buf, pos, parent.end, what)
        out.append(child)
        pos = child.end
    return out


def read_oid(content: bytes, what: str) -> str:
    if not content or content[-1] & 0x80:
        raise CertificateError(f"{what}: OBJECT IDENTIFIER {content.hex()} is truncated")
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def read_string(tag: int, content: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return content.decode("utf-16-be", "replace")
    if tag == 0x14:  # T61String, treated as Latin-1
        return content.decode("latin-1")
    return content.decode("utf-8", "replace")  # UTF8String, PrintableString, IA5String


def read_time(buf: bytes, t: Tlv, what: str) -> dt.datetime:
    text = buf[t.body : t.end].decode("ascii", "replace")
    try:
        if t.tag == 0x17:  # UTCTime: YYMMDDHHMMSSZ, years 50..99 are 19xx (RFC 5280 4.1.2.5.1)
            parsed = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
            if parsed.year >= 2050:
                parsed = parsed.replace(year=parsed.year - 100)
        elif t.tag == 0x18:  # GeneralizedTime: YYYYMMDDHHMMSSZ
            parsed = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
        else:
            raise CertificateError(
                f"{what}: tag 0x{t.tag:02X}; expected UTCTime or GeneralizedTime"
            )
    except ValueError:
        raise CertificateError(f"{what}: time {text!r} is not YYMMDDHHMMSSZ") from None
    return parsed.replace(tzinfo=dt.UTC)


#: A distinguished name: ``(attribute OID, value)`` pairs in order.
Name = tuple[tuple[str, str], ...]
#: id-at-commonName (RFC 5280, 4.1.2.4; X.520)
OID_CN = "2.5.4.3"


def read_name(buf: bytes, t: Tlv, what: str) -> Name:
    if t.tag != 0x30:
        raise CertificateError(f"{what}: Name tag 0x{t.tag:02X}; expected SEQUENCE 0x30")
    pairs: list[tuple[str, str]] = []
    for rdn in children(buf, t, what):
        for atv in children(buf, rdn, what):
            parts = children(buf, atv, what)
            if len(parts) != 2 or parts[0].tag != 0x06:
                raise CertificateError(f"{what}: AttributeTypeAndValue is malformed")
            oid = read_oid(buf[parts[0].body : parts[0].end], what)
            pairs.append((oid, read_string(parts[1].tag, buf[parts[1].body : parts[1].end])))
    return tuple(pairs)


def common_name(name: Name) -> str:
    return next((v for k, v in name if k == OID_CN), "")


def read_int(value: bytes, what: str) -> int:
    # The extnValue of an SPL extension is a DER INTEGER (e.g. 02 01 05).
    if len(value) < 3 or value[0] != 0x02 or value[1] != len(value) - 2:
        raise CertificateError(f"{what}: value {value.hex()} is not a DER INTEGER")
    return int.from_bytes(value[2:], "big", signed=True)


def read_ia5(value: bytes, what: str) -> str:
    if len(value) < 2 or value[0] not in (0x16, 0x0C, 0x13) or value[1] != len(value) - 2:
        raise CertificateError(f"{what}: value {value.hex()} is not a short DER string")
    return value[2:].decode("ascii", "replace")
