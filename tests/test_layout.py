# SPDX-License-Identifier: Apache-2.0
"""C struct layouts: import-time checks, packing, arrays, rendering, and kvm_run's offsets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coco_core.errors import LayoutError
from coco_core.generic.uapi import KvmHypercallExit, KvmMsrExit, kvm_run_layout
from coco_core.layout import (
    U8,
    U16,
    U32,
    U64,
    CStruct,
    Hole,
    c_field,
    c_struct,
    scalar,
    struct_of,
    union_of,
)
from coco_core.review.render import render_c


@c_struct("struct demo", size=0x20, source="test")
class Demo(CStruct):
    """
    struct demo {
            __u8 tag;
            __u64 gpa;
            __u16 ids[3];
            __u8 blob[4];
    };
    """

    tag: int = c_field(U8, offset=0x00)
    gpa: int = c_field(U64, offset=0x08)
    ids: tuple[int, ...] = c_field(U16, offset=0x10, count=3)
    blob: bytes = c_field(U8, offset=0x16, count=4)


@c_struct("struct packed_demo", size=0x7, packed=True)
class PackedDemo(CStruct):
    """struct packed_demo { __u8 a; __u32 b; __u16 c; } __attribute__((packed));"""

    a: int = c_field(U8, offset=0)
    b: int = c_field(U32, offset=1)
    c: int = c_field(U16, offset=5)


# struct demo, tag 0x7f, gpa 0x1122334455667788, ids 1 2 3, blob "abcd"
#   0000: 7f 00 00 00 00 00 00 00   tag + 7 bytes padding
#   0008: 88 77 66 55 44 33 22 11   gpa
#   0010: 01 00 02 00 03 00         ids[3]
#   0016: 61 62 63 64               blob[4]
#   001a: 00 00 00 00 00 00         tail padding
DEMO_BYTES = bytes.fromhex(
    "7f 00 00 00 00 00 00 0088 77 66 55 44 33 22 1101 00 02 00 03 0061 62 63 6400 00 00 00 00 00"
)


def test_misdeclared_offset_names_field_and_both_offsets() -> None:
    """A field declared at the wrong offset raises LayoutError naming it and both offsets."""
    with pytest.raises(
        LayoutError,
        match=r"struct bad\.gpa: declared at offset 0x4, but the x86-64 C ABI puts it at 0x8",
    ):

        @c_struct("struct bad", size=0x10)
        class Bad(CStruct):
            tag: int = c_field(U32, offset=0)
            gpa: int = c_field(U64, offset=4)


def test_misdeclared_size_is_reported() -> None:
    """A declared size that differs from the ABI's is refused with both sizes."""
    with pytest.raises(
        LayoutError, match=r"struct small: declared size 0xc, but the x86-64 C ABI gives 0x10"
    ):

        @c_struct("struct small", size=0xC)
        class Small(CStruct):
            gpa: int = c_field(U64, offset=0)
            len: int = c_field(U32, offset=8)


def test_class_must_subclass_cstruct() -> None:
    """Decorating a class that is not a CStruct is refused."""
    with pytest.raises(LayoutError, match="must subclass CStruct"):

        @c_struct("struct x", size=8)
        class X:  # type: ignore[type-var]
            a: int = c_field(U64, offset=0)


def test_unknown_scalar_lists_known_types() -> None:
    """scalar() rejects an unknown C type and lists the known ones."""
    assert scalar("__u32") is U32
    with pytest.raises(LayoutError, match=r"unknown C type 'long'; expected one of"):
        scalar("long")


def test_decode_arrays_and_padding() -> None:
    """Scalars decode as int, __u8 arrays as bytes, other arrays as tuples; padding encodes as 0."""
    d = Demo.from_buffer(DEMO_BYTES)
    assert d == Demo(0x7F, 0x1122334455667788, (1, 2, 3), b"abcd")
    assert d.to_bytes() == DEMO_BYTES
    assert Demo.c_size() == 0x20


def test_decode_at_offset_in_larger_buffer() -> None:
    """from_buffer and pack_into work at an offset inside a larger buffer."""
    buf = bytearray(b"\xee" * 0x40)
    Demo(1, 2, (3, 4, 5), b"wxyz").pack_into(buf, 0x10)
    assert buf[:0x10] == b"\xee" * 0x10
    assert buf[0x30:] == b"\xee" * 0x10
    assert Demo.from_buffer(memoryview(buf), 0x10) == Demo(1, 2, (3, 4, 5), b"wxyz")


def test_packed_struct_has_no_padding() -> None:
    """A packed struct places members back to back."""
    #   0000: 01            a
    #   0001: 04 03 02 01   b = 0x01020304
    #   0005: 06 05         c = 0x0506
    raw = bytes.fromhex("01 04 03 02 01 06 05")
    assert PackedDemo.from_buffer(raw) == PackedDemo(1, 0x01020304, 0x0506)
    lay = PackedDemo.c_layout()
    assert lay.packed
    assert lay.holes() == ()
    assert "__attribute__((packed))" in render_c(lay)


@given(
    tag=st.integers(0, 0xFF),
    gpa=st.integers(0, 2**64 - 1),
    ids=st.tuples(*[st.integers(0, 0xFFFF)] * 3),
    blob=st.binary(min_size=4, max_size=4),
    offset=st.integers(0, 64),
)
def test_pack_from_buffer_round_trip(
    tag: int, gpa: int, ids: tuple[int, ...], blob: bytes, offset: int
) -> None:
    """pack_into then from_buffer gives back the same value at any offset."""
    value = Demo(tag, gpa, ids, blob)
    buf = bytearray(offset + Demo.c_size())
    value.pack_into(buf, offset)
    assert Demo.from_buffer(buf, offset) == value


@given(raw=st.binary(min_size=0x18, max_size=0x18))
def test_bytes_round_trip_keep_non_padding(raw: bytes) -> None:
    """from_buffer then to_bytes gives back every byte except the padding, which becomes zero."""
    msr = KvmMsrExit.from_buffer(raw)
    assert msr.to_bytes() == raw  # __u8 pad[7] is a named member, so no padding is lost


def test_holes_struct_and_union() -> None:
    """holes() lists padding between members, at the end, and past a union's widest member."""
    assert Demo.c_layout().holes() == (Hole(1, 7), Hole(0x1A, 6))
    u = union_of("union u", [("a", U32), ("b", U8, 6)])
    assert (u.size, u.align) == (8, 4)
    assert u.holes() == (Hole(6, 2),)


def test_struct_of_places_like_gcc() -> None:
    """struct_of aligns each member naturally and rounds the size to the largest alignment."""
    s = struct_of("struct s", [("a", U8), ("b", U32), ("c", U8)])
    assert [(m.name, m.offset) for m in s.members] == [("a", 0), ("b", 4), ("c", 8)]
    assert (s.size, s.align) == (12, 4)


def test_to_json_is_nested_like_c() -> None:
    """to_json describes members, arrays and holes."""
    data = Demo.c_layout().to_json()
    assert data["name"] == "struct demo"
    assert data["size"] == 0x20
    assert data["holes"] == [[1, 7], [0x1A, 6]]
    assert data["members"][2] == {
        "name": "ids",
        "offset": 0x10,
        "size": 6,
        "type": "__u16",
        "count": 3,
    }


def test_member_looks_through_anonymous_members() -> None:
    """member() finds a name inside an anonymous union, with its offset from the outer struct."""
    hc = KvmHypercallExit.c_layout()
    assert hc.member("ret").offset == 0x38
    tree = kvm_run_layout()
    assert tree.member("kvm_dirty_regs").offset == 296
    with pytest.raises(KeyError):
        tree.member("nope")


# docs/reference/kernel-abi.md §1.3 (the generic members; tdx and snp_req_certs are
# checked by their plugins' kits)
KVM_RUN_OFFSETS = {
    "kvm_run.exit_reason": (8, 4),
    "kvm_run.hypercall.nr": (32, 8),
    "kvm_run.hypercall.args": (40, 48),
    "kvm_run.hypercall.ret": (88, 8),
    "kvm_run.hypercall.longmode": (96, 4),
    "kvm_run.hypercall.flags": (96, 8),
    "kvm_run.system_event.type": (32, 4),
    "kvm_run.system_event.ndata": (36, 4),
    "kvm_run.system_event.flags": (40, 8),
    "kvm_run.system_event.data": (40, 128),
    "kvm_run.memory_fault.flags": (32, 8),
    "kvm_run.memory_fault.gpa": (40, 8),
    "kvm_run.memory_fault.size": (48, 8),
    "kvm_run.msr.error": (32, 1),
    "kvm_run.msr.reason": (40, 4),
    "kvm_run.msr.index": (44, 4),
    "kvm_run.msr.data": (48, 8),
    "kvm_run.padding": (32, 256),
    "kvm_run.kvm_valid_regs": (288, 8),
    "kvm_run.kvm_dirty_regs": (296, 8),
    "kvm_run.s.padding": (304, 2048),
}


def test_kvm_run_offsets_match_reference_table() -> None:
    """kvm_run's generic members sit where the reference table (computed with gcc) puts them."""
    lay = kvm_run_layout()
    offs = lay.offsets("kvm_run")
    for path, want in KVM_RUN_OFFSETS.items():
        assert offs[path] == want, path
    assert lay.size == 2352


def test_kvm_run_extra_members_keep_the_union_size() -> None:
    """An ABI's extra union member lands at 32 and leaves the union 256 bytes."""
    extra = struct_of("struct", [("gpa", U64), ("npages", U64), ("ret", U64)])
    lay = kvm_run_layout({"snp_req_certs": extra})
    offs = lay.offsets("kvm_run")
    assert offs["kvm_run.snp_req_certs.gpa"] == (32, 8)
    assert offs["kvm_run.snp_req_certs.ret"] == (48, 8)
    assert offs["kvm_run.kvm_valid_regs"] == (288, 8)
    assert lay.size == 2352


# -- C ABIs and access paths -----------------------------------------------------------


def test_char_is_signed_on_x86_64_and_unsigned_on_lp64_le() -> None:
    """The same struct has the same offsets under both ABIs; only plain char's sign differs."""
    from coco_core.layout import CHAR, LP64_LE, X86_64

    members = [("c", CHAR), ("n", U64), ("s", CHAR, 3)]
    x86, rv = struct_of("struct s", members), struct_of("struct s", members, c_abi=LP64_LE)
    assert x86.offsets("s") == rv.offsets("s")
    assert x86.size == rv.size == 24
    assert (x86.c_abi, rv.c_abi) == (X86_64, LP64_LE)
    assert (x86.members[0].type.code, rv.members[0].type.code) == ("b", "B")
    assert X86_64.char_signed
    assert not LP64_LE.char_signed


def test_c_struct_under_lp64_le_decodes_char_unsigned() -> None:
    """A c_struct declared with c_abi=LP64_LE reads a 0xff char as 255, x86-64 as -1."""
    from coco_core.layout import CHAR, LP64_LE

    @c_struct("struct ch", size=2, c_abi=LP64_LE)
    class Unsigned(CStruct):
        """struct ch { char c; __u8 b; };"""

        c: int = c_field(CHAR, offset=0)
        b: int = c_field(U8, offset=1)

    @c_struct("struct ch", size=2)
    class Signed(CStruct):
        """struct ch { char c; __u8 b; };"""

        c: int = c_field(CHAR, offset=0)
        b: int = c_field(U8, offset=1)

    assert Unsigned.from_buffer(b"\xff\x01").c == 255
    assert Signed.from_buffer(b"\xff\x01").c == -1
    assert Unsigned.c_layout().c_abi is LP64_LE


def test_locate_finds_array_elements_and_refuses_what_is_not_there() -> None:
    """locate() gives an element's offset, size and type; a bad index or name is a KeyError."""
    lay = kvm_run_layout()
    assert lay.locate("kvm_run.hypercall.args[0]", "kvm_run") == (40, 8, U64)
    assert lay.locate("kvm_run.hypercall.args[5]", "kvm_run") == (80, 8, U64)
    assert lay.locate("kvm_run.hypercall.flags", "kvm_run") == (96, 8, U64)  # anonymous union
    assert lay.locate("kvm_run.hypercall.args", "kvm_run") == (40, 48, None)
    for bad, why in (
        ("kvm_run.hypercall.args[6]", "outside args[6]"),
        ("kvm_run.hypercall.ret[0]", "not an array"),
        ("kvm_run.hypercall.rett", "no member 'rett'"),
        ("kvm.hypercall.ret", "does not start with"),
    ):
        with pytest.raises(KeyError, match=why.replace("[", r"\[")):
            lay.locate(bad, "kvm_run")
