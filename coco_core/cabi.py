# SPDX-License-Identifier: Apache-2.0
"""The C ABIs a layout may be declared under, and the scalar types they lay out.

coco lays structs out the way a 64-bit little-endian C compiler does. Two rule
sets are declared, and every :class:`~coco_core.layout.Layout` says which one
it was built under (:attr:`~coco_core.layout.Layout.c_abi`):

* :data:`X86_64`, the System V AMD64 psABI (1.0, 3.1.2, "Fundamental Types",
  Figure 3.1): what the SNP and TDX plugins use.
* :data:`LP64_LE`, the LP64 data model of RISC-V (RISC-V ABIs Specification,
  riscv-cc 4.1.1 "C/C++ type sizes and alignments", Table 2 for RV64) and arm64
  (AAPCS64, "Arithmetic Types"): a RISC-V or arm64 TEE's plugin declares its
  layouts under it.

Both give every type coco declares (``__u8`` .. ``__s64``, ``_Bool``, ``short``,
``int``, ``long``, ``long long``, pointers' ``unsigned long``) the same size and
the same natural alignment, and both are little-endian, so the same layout has
the same offsets under each and one ``struct`` format (``"<..."``) decodes it.
The one type whose meaning differs is plain ``char``: signed on x86-64
(psABI 3.1.2), unsigned on RISC-V (riscv-cc 4.1.2: "char is unsigned") and
arm64 (AAPCS64, "Arithmetic Types": an unsigned byte). coco declares no
``wchar_t`` (signed on x86-64 and Linux RISC-V, unsigned on arm64) and no floating type
(``long double`` is 80-bit extended on x86-64, IEEE quad on the other two, 16
bytes on all three). Big-endian targets (s390x) are not supported: the
decoders' ``"<"`` formats assume little-endian.

.. versionadded:: 0.2
"""

from __future__ import annotations

import ctypes
from typing import Any

import attrs

from coco_core.errors import LayoutError

__all__ = [
    "CHAR",
    "C_SCALARS",
    "C_SYNONYMS",
    "LP64_LE",
    "S8",
    "S16",
    "S32",
    "S64",
    "U8",
    "U16",
    "U32",
    "U64",
    "X86_64",
    "CAbi",
    "CType",
    "c_scalar",
    "scalar",
]


@attrs.frozen
class CType:
    """A C scalar type as a 64-bit little-endian C ABI lays it out.

    .. versionadded:: 0.1
    """

    name: str
    size: int
    code: str  #: :mod:`struct` format character
    ctype: Any = attrs.field(eq=False, repr=False)  #: ctypes oracle type

    @property
    def align(self) -> int:
        """Natural alignment, equal to the size for every scalar here (both ABIs)."""
        return self.size

    @property
    def is_byte(self) -> bool:
        """True for ``__u8`` and ``char``: arrays of them decode as ``bytes``."""
        return self.ctype in (ctypes.c_uint8, ctypes.c_char)


# include/uapi/asm-generic/int-ll64.h (Linux 7.2): __u8 .. __s64 are the
# fixed-width types every kvm_run member uses, on every 64-bit architecture.
U8 = CType("__u8", 1, "B", ctypes.c_uint8)
U16 = CType("__u16", 2, "H", ctypes.c_uint16)
U32 = CType("__u32", 4, "I", ctypes.c_uint32)
U64 = CType("__u64", 8, "Q", ctypes.c_uint64)
S8 = CType("__s8", 1, "b", ctypes.c_int8)
S16 = CType("__s16", 2, "h", ctypes.c_int16)
S32 = CType("__s32", 4, "i", ctypes.c_int32)
S64 = CType("__s64", 8, "q", ctypes.c_int64)
#: plain ``char`` as x86-64 has it: signed (System V psABI 3.1.2); see :data:`LP64_LE`.
CHAR = CType("char", 1, "b", ctypes.c_char)
#: plain ``char`` as RISC-V and arm64 have it: unsigned (riscv-cc 4.1.2; AAPCS64).
_UCHAR = CType("char", 1, "B", ctypes.c_char)


@attrs.frozen
class CAbi:
    """A C ABI's rules for the types coco lays out (see the module docstring).

    :param name: short name (``"x86-64"``, ``"lp64-le"``).
    :param title: what it covers, for people.
    :param char: plain ``char`` under this ABI.
    :param source: the ABI documents the rules come from.

    .. versionadded:: 0.2
    """

    name: str
    title: str
    char: CType
    source: str

    @property
    def char_signed(self) -> bool:
        """True if plain ``char`` is signed under this ABI."""
        return self.char.code == "b"

    def resolve(self, ctype: CType) -> CType:
        """``ctype`` as this ABI has it: plain ``char`` becomes :attr:`char`, others stay."""
        return self.char if ctype.name == "char" else ctype


#: The System V AMD64 psABI: signed ``char``.
X86_64 = CAbi(
    "x86-64",
    "x86-64 (System V AMD64 psABI)",
    CHAR,
    "System V AMD64 psABI 1.0, 3.1.2 Fundamental Types, Figure 3.1",
)
#: LP64, little-endian, unsigned ``char``: RISC-V (RV64) and arm64 (AArch64).
LP64_LE = CAbi(
    "lp64-le",
    "LP64 little-endian: RISC-V RV64 and arm64 (unsigned char)",
    _UCHAR,
    "RISC-V ABIs Specification, riscv-cc 4.1.1 (Table 2, RV64) and 4.1.2; "
    "AAPCS64, Arithmetic Types",
)


def _lp64(name: str, like: CType) -> CType:
    return CType(name, like.size, like.code, like.ctype)


_BOOL = CType("_Bool", 1, "?", ctypes.c_bool)

#: Every scalar C spelling a header or a patch may use, as LP64 lays it out
#: (x86-64, RISC-V and arm64 agree on sizes and alignment): the fixed-width uapi
#: types (the same objects as :data:`U8` ...), their ``__le``/``__be``/``__aligned``
#: variants (stored as the unsigned type), the kernel-internal and ``<stdint.h>``
#: names, and the C base types. ``char`` is x86-64's; :meth:`CAbi.resolve` gives
#: another ABI's.
C_SCALARS: dict[str, CType] = {
    **{t.name: t for t in (U8, U16, U32, U64, S8, S16, S32, S64, CHAR)},
    **{n: _lp64(n, U16) for n in ("__le16", "__be16", "u16", "uint16_t", "unsigned short")},
    **{n: _lp64(n, U32) for n in ("__le32", "__be32", "u32", "uint32_t", "unsigned int")},
    **{
        n: _lp64(n, U64)
        for n in (
            "__le64",
            "__be64",
            "__aligned_u64",
            "__aligned_le64",
            "__aligned_be64",
            "u64",
            "uint64_t",
            "unsigned long",
            "unsigned long long",
        )
    },
    **{n: _lp64(n, U8) for n in ("u8", "uint8_t", "unsigned char")},
    **{n: _lp64(n, S8) for n in ("s8", "int8_t", "signed char")},
    **{n: _lp64(n, S16) for n in ("s16", "int16_t", "short")},
    **{n: _lp64(n, S32) for n in ("s32", "int32_t", "int")},
    **{n: _lp64(n, S64) for n in ("s64", "int64_t", "long", "long long")},
    "_Bool": _BOOL,
    "bool": _lp64("bool", _BOOL),
}

#: Spellings that mean the same type (``unsigned`` alone, ``long int``...).
C_SYNONYMS = {
    "unsigned": "unsigned int",
    "signed": "int",
    "signed int": "int",
    "short int": "short",
    "signed short": "short",
    "unsigned short int": "unsigned short",
    "long int": "long",
    "signed long": "long",
    "unsigned long int": "unsigned long",
    "long long int": "long long",
    "signed long long": "long long",
    "unsigned long long int": "unsigned long long",
}

#: The types a struct mirror may declare its members with.
_MIRROR_TYPES = {t.name: t for t in (U8, U16, U32, U64, S32, S64, CHAR)}


def scalar(name: str) -> CType:
    """The fixed-width type spelled ``name`` (``__u64``, ``char``...) a struct mirror may use."""
    try:
        return _MIRROR_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(_MIRROR_TYPES))
        raise LayoutError(f"unknown C type {name!r}; expected one of {known}") from None


def c_scalar(name: str) -> CType:
    """Any scalar C type name a header may use (``__u64``, ``unsigned int``, ``__be32``...).

    :raises LayoutError: the name is not a scalar coco knows.
    """
    t = C_SCALARS.get(C_SYNONYMS.get(name, name))
    if t is None:
        raise LayoutError(f"unknown C type {name!r}")
    return t
