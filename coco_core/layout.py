# SPDX-License-Identifier: Apache-2.0
"""C struct layouts that read like the kernel header.

Two shapes share one model:

* :func:`c_struct` turns an attrs class whose fields are declared with
  :func:`c_field` into a *flat* struct: a frozen value with ``from_buffer`` and
  ``pack_into`` built on one precompiled :class:`struct.Struct`. This is what the
  hot path decodes. At import the decorator checks every declared offset and the
  size against the layout's C ABI (natural alignment) and against a ``ctypes``
  oracle, and raises :class:`~coco_core.errors.LayoutError` naming the field and
  both offsets on a mismatch.
* :class:`Layout` is the tree a reviewer reads: structs and unions, nested and
  anonymous members, arrays. Any flat struct has one (``Cls.c_layout()``), and
  larger trees such as ``struct kvm_run`` are built from them with
  :func:`struct_of` and :func:`union_of`, which place members as a C compiler
  does. A layout flattens to ``{access path: (offset, size)}``, finds one path
  (an array element too: :meth:`Layout.locate`) and renders as JSON; the
  reviewers' renderers (C, Markdown) are :mod:`coco_core.review.render`.

Every layout is declared under a C ABI (:mod:`coco_core.cabi`): :data:`X86_64`
by default, :data:`LP64_LE` for a RISC-V or arm64 TEE (``c_abi=LP64_LE``). The
two give the same offsets; they differ in what plain ``char`` means.
"""

from __future__ import annotations

import ctypes
import re
import struct
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Literal, Self

import attrs

from coco_core.cabi import (
    C_SCALARS,
    C_SYNONYMS,
    CHAR,
    LP64_LE,
    S8,
    S16,
    S32,
    S64,
    U8,
    U16,
    U32,
    U64,
    X86_64,
    CAbi,
    CType,
    c_scalar,
    scalar,
)
from coco_core.errors import DecodeError, LayoutError

__all__ = [
    "CHAR",
    "C_FIELD",
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
    "CField",
    "CStruct",
    "CType",
    "Hole",
    "Layout",
    "Member",
    "MemberSpec",
    "c_field",
    "c_scalar",
    "c_struct",
    "scalar",
    "struct_of",
    "union_of",
]

#: attrs metadata key under which :func:`c_field` stores its :class:`CField`.
C_FIELD = "coco_core.c_field"


@attrs.frozen
class Member:
    """One member of a :class:`Layout`; ``name`` is None for an anonymous member."""

    name: str | None
    offset: int
    type: CType | Layout
    count: int | None = None  #: array length, None for a scalar member

    @property
    def size(self) -> int:
        """Bytes the member occupies, the whole array for an array."""
        return self.type.size * (self.count if self.count is not None else 1)

    @property
    def type_name(self) -> str:
        """The C spelling of the member's type."""
        return self.type.name


@attrs.frozen
class Hole:
    """Padding the compiler inserts: ``size`` bytes at ``offset``."""

    offset: int
    size: int


@attrs.frozen
class Layout:
    """A C struct or union: its members with their offsets, size and alignment.

    Build one with :func:`struct_of` / :func:`union_of` (which compute offsets
    the way gcc does for the layout's C ABI) or get it from a :func:`c_struct` class.
    """

    name: str  #: "struct kvm_run", "union" for an anonymous union, ...
    kind: Literal["struct", "union"]
    members: tuple[Member, ...]
    size: int
    align: int
    packed: bool = False
    source: str = ""  #: header path and kernel version, or the patch it comes from
    #: the C ABI the layout was declared under (.. versionadded:: 0.2)
    c_abi: CAbi = X86_64

    @property
    def anonymous(self) -> bool:
        """True for a layout declared inline without a tag."""
        return self.name in ("struct", "union")

    def holes(self) -> tuple[Hole, ...]:
        """Padding holes between members and at the end (structs only)."""
        if self.kind == "union":
            widest = max((m.size for m in self.members), default=0)
            return (Hole(widest, self.size - widest),) if widest < self.size else ()
        out: list[Hole] = []
        pos = 0
        for m in self.members:
            if m.offset > pos:
                out.append(Hole(pos, m.offset - pos))
            pos = max(pos, m.offset + m.size)
        if pos < self.size:
            out.append(Hole(pos, self.size - pos))
        return tuple(out)

    def member(self, name: str) -> Member:
        """The member called ``name``, looking through anonymous members."""
        for m in self.members:
            if m.name == name:
                return m
            if m.name is None and isinstance(m.type, Layout):
                try:
                    inner = m.type.member(name)
                except KeyError:
                    continue
                return attrs.evolve(inner, offset=m.offset + inner.offset)
        raise KeyError(name)

    def flatten(self, prefix: str, base: int = 0) -> Iterator[tuple[str, int, int, str]]:
        """Yield ``(access path, offset, size, C type)`` for every leaf member.

        Paths are written as C writes them: anonymous unions and structs are
        left out, arrays are one member with their whole size.
        """
        for m in self.members:
            path = prefix if m.name is None else f"{prefix}.{m.name}"
            if isinstance(m.type, Layout) and m.count is None:
                yield from m.type.flatten(path, base + m.offset)
            else:
                suffix = f"[{m.count}]" if m.count is not None else ""
                yield path, base + m.offset, m.size, m.type.name + suffix

    def offsets(self, prefix: str) -> dict[str, tuple[int, int]]:
        """``{path: (offset, size)}`` for :meth:`flatten`'s leaves."""
        return {p: (o, s) for p, o, s, _ in self.flatten(prefix)}

    def locate(self, path: str, prefix: str) -> tuple[int, int, CType | None]:
        """``(offset, size, scalar type)`` of one access path, as C writes it.

        ``path`` starts with ``prefix`` (``"kvm_run.riscv_sbi.ret[0]"`` with
        prefix ``"kvm_run"``); a ``[i]`` after an array member names element
        ``i``. The type is None for a struct, union or whole array.

        :raises KeyError: no such member, or an index outside the array (the
            message names the path and what was found).

        .. versionadded:: 0.2
        """
        head, _, rest = path.partition(".")
        if head != prefix:
            raise KeyError(f"{path}: does not start with {prefix!r}")
        offset, lay = 0, self
        parts = rest.split(".") if rest else []
        for i, part in enumerate(parts):
            m = _ELEMENT.fullmatch(part)
            if m is None:
                raise KeyError(f"{path}: {part!r} is not a member name or name[index]")
            name, index = m.group(1), m.group(2)
            try:
                member = lay.member(name)
            except KeyError:
                raise KeyError(f"{path}: {lay.name} has no member {name!r}") from None
            offset += member.offset
            last = i == len(parts) - 1
            if index is not None:
                if member.count is None:
                    raise KeyError(f"{path}: {name} is not an array")
                if not 0 <= int(index) < member.count:
                    raise KeyError(f"{path}: index {index} outside {name}[{member.count}]")
                offset += int(index) * member.type.size
                if isinstance(member.type, CType):
                    if not last:
                        raise KeyError(f"{path}: {name}[{index}] is a scalar")
                    return offset, member.type.size, member.type
                lay = member.type
                continue
            if last:
                one = (
                    member.type if isinstance(member.type, CType) and member.count is None else None
                )
                return offset, member.size, one
            if not isinstance(member.type, Layout) or member.count is not None:
                raise KeyError(f"{path}: {name} has no members")
            lay = member.type
        return offset, lay.size, None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description (members nested as in C)."""
        members: list[dict[str, Any]] = []
        for m in self.members:
            entry: dict[str, Any] = {"name": m.name, "offset": m.offset, "size": m.size}
            if isinstance(m.type, Layout):
                entry["layout"] = m.type.to_json()
            else:
                entry["type"] = m.type.name
            if m.count is not None:
                entry["count"] = m.count
            members.append(entry)
        return {
            "name": self.name,
            "kind": self.kind,
            "size": self.size,
            "align": self.align,
            "packed": self.packed,
            "holes": [[h.offset, h.size] for h in self.holes()],
            "members": members,
        }


_ELEMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?")

MemberSpec = tuple[str | None, "CType | Layout"] | tuple[str | None, "CType | Layout", int]
"""One member for :func:`struct_of`: (name, type) or (name, type, array length)."""


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def struct_of(
    name: str,
    members: Sequence[MemberSpec],
    *,
    packed: bool = False,
    source: str = "",
    c_abi: CAbi = X86_64,
) -> Layout:
    """Lay out a struct the way gcc does under ``c_abi`` (or packed, with no padding).

    Plain ``char`` members get ``c_abi``'s ``char`` (:meth:`CAbi.resolve`).
    """
    placed: list[Member] = []
    pos = 0
    align = 1
    for spec in members:
        mname, mtype = spec[0], spec[1]
        if isinstance(mtype, CType):
            mtype = c_abi.resolve(mtype)
        count = spec[2] if len(spec) == 3 else None
        a = 1 if packed else mtype.align
        pos = _round_up(pos, a)
        member = Member(mname, pos, mtype, count)
        placed.append(member)
        pos += member.size
        align = max(align, a)
    size = _round_up(pos, align)
    return Layout(name, "struct", tuple(placed), size, align, packed, source, c_abi)


def union_of(
    name: str, members: Sequence[MemberSpec], *, source: str = "", c_abi: CAbi = X86_64
) -> Layout:
    """Lay out a union: every member at offset 0, size rounded to the widest alignment."""
    placed = [
        Member(
            spec[0],
            0,
            c_abi.resolve(spec[1]) if isinstance(spec[1], CType) else spec[1],
            spec[2] if len(spec) == 3 else None,
        )
        for spec in members
    ]
    align = max((m.type.align for m in placed), default=1)
    size = _round_up(max((m.size for m in placed), default=0), align)
    return Layout(name, "union", tuple(placed), size, align, False, source, c_abi)


# -- flat structs for the hot path ---------------------------------------------------


@attrs.frozen
class CField:
    """What :func:`c_field` records: the C type, declared offset and array length."""

    ctype: CType
    offset: int
    count: int | None = None


def c_field(ctype: CType, *, offset: int, count: int | None = None) -> Any:
    """Declare one member of a :func:`c_struct` class at a declared ``offset``.

    Scalars decode as ``int``; ``__u8`` arrays as ``bytes``; other arrays as a
    ``tuple`` of ints.
    """
    return attrs.field(metadata={C_FIELD: CField(ctype, offset, count)})


class CStruct:
    """Base of every :func:`c_struct` class: decoding and encoding in one call."""

    __slots__ = ()
    _c_struct: ClassVar[struct.Struct]
    _c_layout: ClassVar[Layout]
    _c_shape: ClassVar[tuple[tuple[int, int] | None, ...] | None]

    @classmethod
    def c_layout(cls) -> Layout:
        """The :class:`Layout` this class mirrors."""
        return cls._c_layout

    @classmethod
    def c_size(cls) -> int:
        """``sizeof`` the struct."""
        return cls._c_struct.size

    @classmethod
    def offset_of(cls, name: str) -> int:
        """``offsetof`` member ``name`` (its declared, import-checked offset).

        :raises KeyError: the struct has no member ``name``.
        """
        return cls._c_layout.member(name).offset

    @classmethod
    def size_of(cls, name: str) -> int:
        """The size of member ``name`` in bytes (the whole array for an array)."""
        return cls._c_layout.member(name).size

    @classmethod
    def format_of(cls, name: str) -> str:
        """The :mod:`struct` format of scalar member ``name`` (``"<Q"``).

        :raises LayoutError: the member is an array.
        """
        m = cls._c_layout.member(name)
        if m.count is not None or not isinstance(m.type, CType):
            raise LayoutError(f"{cls._c_layout.name}.{name} is not a scalar member")
        return "<" + m.type.code

    @classmethod
    def from_buffer(cls, buf: bytes | bytearray | memoryview, offset: int = 0) -> Self:
        """Decode from ``buf`` at ``offset`` with the precompiled struct (no copy).

        :raises DecodeError: ``buf`` holds fewer than ``offset + sizeof`` bytes.
        """
        try:
            values = cls._c_struct.unpack_from(buf, offset)
        except struct.error:
            raise DecodeError(
                f"{cls.__name__}.from_buffer: buf has {len(buf)} bytes; "
                f"{cls._c_layout.name} needs {cls._c_struct.size} from offset {offset}"
            ) from None
        if cls._c_shape is None:
            return cls(*values)
        return cls(*_group(values, cls._c_shape))

    def pack_into(self, buf: bytearray | memoryview, offset: int = 0) -> None:
        """Encode into ``buf`` at ``offset``; padding bytes are written as zero."""
        type(self)._c_struct.pack_into(buf, offset, *self._flat_values())

    def to_bytes(self) -> bytes:
        """Encode into a new ``bytes`` of ``sizeof`` the struct."""
        return type(self)._c_struct.pack(*self._flat_values())

    def _flat_values(self) -> list[Any]:
        out: list[Any] = []
        for a in attrs.fields(type(self)):  # type: ignore[arg-type]  # subclasses are attrs
            v = getattr(self, a.name)
            spec: CField = a.metadata[C_FIELD]
            if spec.count is not None and not spec.ctype.is_byte:
                out.extend(v)
            else:
                out.append(v)
        return out


def _group(values: tuple[Any, ...], shape: tuple[tuple[int, int] | None, ...]) -> list[Any]:
    out: list[Any] = []
    i = 0
    for s in shape:
        if s is None:
            out.append(values[i])
            i += 1
        else:
            _, n = s
            out.append(tuple(values[i : i + n]))
            i += n
    return out


_T = typing.TypeVar("_T", bound=type)


@typing.dataclass_transform(frozen_default=True, field_specifiers=(c_field, attrs.field))
def c_struct(
    cname: str, *, size: int, packed: bool = False, source: str = "", c_abi: CAbi = X86_64
) -> Callable[[_T], _T]:
    """Make a class a frozen C struct mirror; check it against its C ABI at import.

    :param cname: the C spelling, ``"struct kvm_exit_snp_req_certs"``.
    :param size: ``sizeof`` as the header's comments or a compiler state it.
    :param packed: the struct is ``__attribute__((packed))``.
    :param source: header path and kernel version, or the patch it comes from.
    :param c_abi: the C ABI it is laid out under (:data:`X86_64`, :data:`LP64_LE`);
        ``.. versionadded:: 0.2``.
    :raises LayoutError: a declared offset or the size disagrees with the ABI.
    """

    def wrap(cls: _T) -> _T:
        if not issubclass(cls, CStruct):
            raise LayoutError(f"{cls.__name__}: a c_struct class must subclass CStruct")
        frozen = attrs.frozen(cls)
        fields = [(a.name, a.metadata.get(C_FIELD)) for a in attrs.fields(frozen)]  # type: ignore[arg-type]
        missing = [n for n, spec in fields if spec is None]
        if missing:
            raise LayoutError(f"{cname}: fields {missing} are not declared with c_field()")
        specs: list[tuple[str, CField]] = [
            (n, attrs.evolve(s, ctype=c_abi.resolve(s.ctype))) for n, s in fields if s is not None
        ]
        layout = struct_of(
            cname,
            [(n, s.ctype) if s.count is None else (n, s.ctype, s.count) for n, s in specs],
            packed=packed,
            source=source,
            c_abi=c_abi,
        )
        for (fname, spec), member in zip(specs, layout.members, strict=True):
            if spec.offset != member.offset:
                raise LayoutError(
                    f"{cname}.{fname}: declared at offset {spec.offset:#x}, "
                    f"but the {c_abi.name} C ABI puts it at {member.offset:#x}"
                )
        if layout.size != size:
            raise LayoutError(
                f"{cname}: declared size {size:#x}, but the {c_abi.name} C ABI gives "
                f"{layout.size:#x}"
            )
        fmt = ["<"]
        pos = 0
        shape: list[tuple[int, int] | None] = []
        for _, spec in specs:
            if spec.offset > pos:
                fmt.append(f"{spec.offset - pos}x")
            if spec.count is None:
                fmt.append(spec.ctype.code)
                shape.append(None)
            elif spec.ctype.is_byte:
                fmt.append(f"{spec.count}s")
                shape.append(None)
            else:
                fmt.append(f"{spec.count}{spec.ctype.code}")
                shape.append((spec.offset, spec.count))
            pos = spec.offset + spec.ctype.size * (spec.count or 1)
        if size > pos:
            fmt.append(f"{size - pos}x")
        compiled = struct.Struct("".join(fmt))
        if compiled.size != size:
            raise LayoutError(f"{cname}: struct format gives {compiled.size:#x}, want {size:#x}")
        _check_ctypes_oracle(cname, specs, size, packed)
        frozen._c_struct = compiled
        frozen._c_layout = layout
        frozen._c_shape = None if all(s is None for s in shape) else tuple(shape)
        return typing.cast("_T", frozen)

    return wrap


def _check_ctypes_oracle(
    cname: str, specs: list[tuple[str, CField]], size: int, packed: bool
) -> None:
    """Let ctypes lay the struct out independently and compare every offset."""
    ctypes_fields: list[tuple[str, Any]] = []
    for name, spec in specs:
        t = spec.ctype.ctype
        ctypes_fields.append((name, t * spec.count if spec.count is not None else t))
    ns: dict[str, Any] = {"_fields_": ctypes_fields}
    if packed:
        ns["_pack_"] = 1
        ns["_layout_"] = "ms"  # ctypes >= 3.14 wants it spelled out with _pack_
    oracle = type("Oracle", (ctypes.Structure,), ns)
    for name, spec in specs:
        got = getattr(oracle, name).offset
        if got != spec.offset:
            raise LayoutError(
                f"{cname}.{name}: declared at offset {spec.offset:#x}, ctypes puts it at {got:#x}"
            )
    if ctypes.sizeof(oracle) != size:
        raise LayoutError(f"{cname}: ctypes gives size {ctypes.sizeof(oracle):#x}, want {size:#x}")
