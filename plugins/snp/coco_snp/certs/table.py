# SPDX-License-Identifier: Apache-2.0
"""The GHCB certificate table the VMM writes for an SNP extended guest request.

Format (GHCB spec 56421 "SNP Extended Guest Request"; AMDESE/sev-guest ``cert-table.h``;
go-sev-guest ``abi/abi.go`` ``CertTableHeaderEntry``/``ParseSnpCertTableHeader``; see
``docs/reference/kernel-abi.md`` §3.6 and ``wire-formats.md`` §2)::

    struct cert_table_entry {
            uint8_t  guid[16];   /* RFC-4122 byte order: uuid.UUID(...).bytes, not bytes_le */
            uint32_t offset;     /* from the start of the table */
            uint32_t length;
    };                           /* 24 bytes */

The entries end with an all-zero 24-byte entry; the certificates follow it. KVM's "empty
table" is 24 zero bytes. The guest buffer is a whole number of 4 KiB pages, so zero padding
after the last certificate is normal and accepted.
"""

from __future__ import annotations

import enum
import itertools
import struct
import uuid
from collections.abc import Iterable
from typing import Any

import attrs

from coco_core.plugin import DecodeError

__all__ = [
    "ENTRY_SIZE",
    "GUIDS",
    "PAGE_SIZE",
    "CertTable",
    "CertTableEntry",
    "CertTableError",
    "CertTableKind",
    "build_cert_table",
    "parse_cert_table",
    "required_pages",
]

# 24-byte entry: guid[16], u32 offset, u32 length (go-sev-guest abi.CertTableEntrySize = 24).
ENTRY_SIZE = 24
_ENTRY = struct.Struct("<16sII")
assert _ENTRY.size == ENTRY_SIZE
# The extended guest request counts 4 KiB pages (kernel-abi.md §3.1: RBX = number of pages).
PAGE_SIZE = 4096
_TERMINATOR = bytes(ENTRY_SIZE)


class CertTableError(DecodeError):
    """A certificate table is malformed; the message names the entry index and values."""


@enum.unique
class CertTableKind(enum.Enum):
    """The role a table entry's GUID names (GHCB spec; go-sev-guest abi.go GUID constants)."""

    VCEK = "63da758d-e664-4564-adc5-f4b93be8accd"  # VcekGUID
    VLEK = "a8074bc2-a25a-483e-aae6-39c045a0b8a1"  # VlekGUID
    ASK = "4ab7b379-bbac-4fe4-a02f-05aef327c782"  # AskGUID, also used for the ASVK
    ARK = "c0b406a4-a803-4952-9743-3fb6014cd0ae"  # ArkGUID

    @property
    def guid(self) -> uuid.UUID:
        """The GUID as a :class:`uuid.UUID`."""
        return uuid.UUID(self.value)


GUIDS: dict[uuid.UUID, CertTableKind] = {k.guid: k for k in CertTableKind}


@attrs.frozen
class CertTableEntry:
    """One table entry and the bytes it points at."""

    index: int
    guid: uuid.UUID
    kind: CertTableKind | None  # None: a GUID this module does not know (kept, not an error)
    offset: int
    length: int
    data: bytes = attrs.field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (without the data)."""
        return {
            "index": self.index,
            "guid": str(self.guid),
            "kind": None if self.kind is None else self.kind.name,
            "offset": self.offset,
            "length": self.length,
        }


@attrs.frozen
class CertTable:
    """A parsed certificate table."""

    entries: tuple[CertTableEntry, ...]
    header_size: int  # bytes of entries + terminator
    data_end: int  # end of the last certificate (== header_size when empty)
    buffer_size: int
    trailing_zero: bool  # every byte after data_end is zero (normal page padding)

    def get(self, kind: CertTableKind) -> CertTableEntry | None:
        """The first entry of ``kind``, if any."""
        return next((e for e in self.entries if e.kind is kind), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "header_size": self.header_size,
            "data_end": self.data_end,
            "buffer_size": self.buffer_size,
            "pages": required_pages(self.data_end),
            "trailing_zero": self.trailing_zero,
            "entries": [e.as_dict() for e in self.entries],
        }


def _guid_of(key: uuid.UUID | CertTableKind | str) -> uuid.UUID:
    if isinstance(key, CertTableKind):
        return key.guid
    if isinstance(key, uuid.UUID):
        return key
    by_name = {k.name.lower(): k for k in CertTableKind}
    if key.lower() in by_name:
        return by_name[key.lower()].guid
    try:
        return uuid.UUID(key)
    except ValueError:
        names = ", ".join(sorted(by_name))
        raise CertTableError(
            f"certificate key {key!r} is neither a GUID nor a known kind ({names})"
        ) from None


def build_cert_table(entries: Iterable[tuple[uuid.UUID | CertTableKind | str, bytes]]) -> bytes:
    """Build a table: entries, all-zero terminator, then the certificates in order.

    The first certificate starts right after the terminator
    (``(len(entries) + 1) * 24``), as go-sev-guest ``CertTable.Marshal`` lays it out. An
    empty input gives KVM's empty table, 24 zero bytes.

    :raises CertTableError: for an all-zero GUID (reserved for the terminator), an empty
        certificate, or a table that does not fit in u32 offsets.
    """
    items = [(_guid_of(key), bytes(data)) for key, data in entries]
    header_size = (len(items) + 1) * ENTRY_SIZE
    cursor = header_size
    head = bytearray()
    for i, (guid, data) in enumerate(items):
        if guid.int == 0:
            raise CertTableError(
                f"entry {i}: GUID is all zero; expected a certificate GUID (zero is the terminator)"
            )
        if not data:
            raise CertTableError(f"entry {i} ({guid}): certificate is empty; expected DER bytes")
        if cursor + len(data) > 0xFFFFFFFF:
            raise CertTableError(
                f"entry {i} ({guid}): ends at byte {cursor + len(data)}; expected the table to "
                "fit in u32 offsets"
            )
        head += _ENTRY.pack(guid.bytes, cursor, len(data))
        cursor += len(data)
    head += _TERMINATOR
    return bytes(head) + b"".join(data for _, data in items)


def parse_cert_table(buf: bytes) -> CertTable:
    """Parse and validate a certificate table.

    Checks, in order: every entry (and the terminator) lies inside the buffer; no entry with
    an all-zero GUID except the terminator; each certificate is non-empty, starts at or after
    the end of the terminator and ends inside the buffer; no two certificates overlap. Bytes
    after the last certificate are tolerated (a guest buffer is page-sized);
    :attr:`CertTable.trailing_zero` says whether they are all zero.

    :raises CertTableError: naming the entry index, the values and what was expected.
    """
    buf = bytes(buf)
    size = len(buf)
    raw: list[tuple[uuid.UUID, int, int]] = []
    pos = 0
    while True:
        if pos + ENTRY_SIZE > size:
            raise CertTableError(
                f"entry {len(raw)} at byte {pos}: buffer ends at {size} bytes; expected a "
                f"24-byte entry or the all-zero terminator (table has no terminator)"
            )
        guid_b, offset, length = _ENTRY.unpack_from(buf, pos)
        pos += ENTRY_SIZE
        if guid_b == bytes(16):
            if offset == 0 and length == 0:
                break
            raise CertTableError(
                f"entry {len(raw)}: GUID is all zero but offset={offset} length={length}; "
                "expected an all-zero terminator or a non-zero GUID"
            )
        raw.append((uuid.UUID(bytes=guid_b), offset, length))
    header_size = pos
    entries: list[CertTableEntry] = []
    for i, (guid, offset, length) in enumerate(raw):
        kind = GUIDS.get(guid)
        name = f"entry {i} ({kind.name if kind else guid})"
        if length == 0:
            raise CertTableError(f"{name}: length=0; expected a certificate of at least 1 byte")
        if offset < header_size:
            raise CertTableError(
                f"{name}: offset={offset} points into the table; expected an offset >= "
                f"{header_size} (end of the terminator)"
            )
        if offset + length > size:
            raise CertTableError(
                f"{name}: offset={offset} length={length} ends at {offset + length}; expected "
                f"it to end within the {size}-byte buffer"
            )
        entries.append(CertTableEntry(i, guid, kind, offset, length, buf[offset : offset + length]))
    ordered = sorted(entries, key=lambda e: (e.offset, e.index))
    for a, b in itertools.pairwise(ordered):
        if b.offset < a.offset + a.length:
            raise CertTableError(
                f"entry {b.index} (offset={b.offset} length={b.length}) overlaps entry "
                f"{a.index} (offset={a.offset} length={a.length}, ends at "
                f"{a.offset + a.length}); expected disjoint certificates"
            )
    data_end = max((e.offset + e.length for e in entries), default=header_size)
    trailing_zero = not any(buf[data_end:])
    return CertTable(tuple(entries), header_size, data_end, size, trailing_zero)


def required_pages(table_len: int) -> int:
    """4 KiB pages needed to hold ``table_len`` bytes (the npages KVM reports on ENOSPC)."""
    if table_len < 0:
        raise CertTableError(f"table length is {table_len}; expected a non-negative byte count")
    return -(-table_len // PAGE_SIZE)
