# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_core.review.cparse: C struct declarations from headers and patches."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coco_core.errors import DecodeError
from coco_core.layout import CHAR, S32, S64, U8, U16, U32, U64, Layout, struct_of, union_of
from coco_core.review.cparse import CParseError, evaluate, parse_c
from coco_core.review.render import render_c

V1 = """
struct kvm_exit_coco {
#define KVM_EXIT_COCO_REQ_CERTS 0
#define KVM_EXIT_COCO_MAX       1
	__u8 nr;
	__u8 pad0[7];
	union {
		struct {
			__u64 gfn;   /* 8 */
			__u32 npages;
#define KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN 1
#define KVM_EXIT_COCO_REQ_CERTS_ERR_GENERIC     (1 << 31)
			__u32 ret;   // 20
		} req_certs;
	};
};
"""

PATCH = """From: Someone <a@b>
Subject: [PATCH v7 1/2] KVM: Introduce KVM_EXIT_SNP_REQ_CERTS

diff --git a/include/uapi/linux/kvm.h b/include/uapi/linux/kvm.h
index 1..2 100644
--- a/include/uapi/linux/kvm.h
+++ b/include/uapi/linux/kvm.h
@@ -135,6 +135,12 @@ struct kvm_xen_exit {
 <T>} u;
 };

+struct kvm_exit_snp_req_certs {
+<T>__u64 gpa;
+<T>__u64 npages;
+<T>__u64 ret;
+};
+
 #define KVM_S390_GET_SKEYS_NONE   1
@@ -180,6 +186,7 @@ struct kvm_xen_exit {
 #define KVM_EXIT_ARM_LDST64B      42
+#define KVM_EXIT_SNP_REQ_CERTS    43
-#define KVM_EXIT_OLD              99
@@ -480,6 +487,8 @@ struct kvm_run {
 <T><T><T>__u64 gpa;
 <T><T>} arm_sea;
+<T><T>/* KVM_EXIT_SNP_REQ_CERTS */
+<T><T>struct kvm_exit_snp_req_certs snp_req_certs;
+<T><T>struct {
+<T><T><T>__u64 gfn;
+<T><T><T>__u32 npages;
+<T><T>} coco_frag;
 <T><T>/* Fix the size of the union. */
 <T><T>char padding[256];
 <T>};
""".replace("<T>", "\t")


def test_v1_struct_offsets_and_defines() -> None:
    """The v1 KVM_EXIT_COCO struct lays out as its comments say, with its #defines."""
    h = parse_c(V1)
    lay = h.struct("kvm_exit_coco")
    assert lay.size == 24
    assert lay.offsets("c") == {
        "c.nr": (0, 1),
        "c.pad0": (1, 7),
        "c.req_certs.gfn": (8, 8),
        "c.req_certs.npages": (16, 4),
        "c.req_certs.ret": (20, 4),
    }
    assert h.defines["KVM_EXIT_COCO_REQ_CERTS_ERR_GENERIC"] == 1 << 31
    assert h.structs["struct kvm_exit_coco"] is h.structs["kvm_exit_coco"]


def test_patch_reads_new_side_only() -> None:
    """A patch contributes its '+' and context lines; '-' lines and headers are dropped."""
    h = parse_c(PATCH)
    assert h.patch
    assert h.struct("kvm_exit_snp_req_certs").offsets("s")["s.ret"] == (16, 8)
    assert h.defines["KVM_EXIT_SNP_REQ_CERTS"] == 43
    assert "KVM_EXIT_OLD" not in h.defines
    assert h.members["coco_frag"].offsets("m") == {"m.gfn": (0, 8), "m.npages": (8, 4)}
    assert h.members["snp_req_certs"].size == 24


def test_kvm_run_union_members_are_extracted() -> None:
    """Named members of kvm_run's anonymous exit union are available by name."""
    text = """
    #define SYNC (1024 * 2)
    struct kvm_run {
        __u8 request_interrupt_window;
        __u8 HINT_UNSAFE_IN_KVM(immediate_exit);
        __u8 padding1[6];
        __u32 exit_reason;
    #ifdef __KVM_S390
        __u64 psw_mask;
    #endif
        union {
            /* KVM_EXIT_TDX */
            struct {
                __u64 flags;
                __u64 nr;
                union {
                    struct { __u64 ret; __u64 data[5]; } unknown;
                    struct { __u64 ret; __u64 gpa; __u64 size; } get_quote;
                    struct { __u64 ret; __u64 leaf; __u64 r11, r12, r13, r14; } get_tdvmcall_info;
                };
            } tdx;
            char padding[256];
        };
        union { char padding[SYNC]; } s;
    };
    """
    h = parse_c(text)
    run = h.struct("struct kvm_run")
    assert run.member("exit_reason").offset == 8
    assert run.member("s").offset == 272
    assert run.size == 272 + 2048
    tdx = h.members["tdx"]
    assert tdx.offsets("tdx")["tdx.get_quote.gpa"] == (24, 8)
    assert tdx.offsets("tdx")["tdx.get_tdvmcall_info.r14"] == (56, 8)
    assert any("__KVM_S390" in n and "dropped" in n for n in h.notes)


def test_types_attributes_and_arithmetic() -> None:
    """LP64 base types, __le types, packed attributes and array arithmetic lay out like gcc."""
    h = parse_c(
        """
        #define N 4
        #define M (N * 2 + 1)
        struct a { char c; unsigned int u; long long ll; __le16 w; int arr[M - 1]; };
        struct b { __u8 x; __u64 y; } __attribute__((packed));
        struct __packed c { __u8 x; __u32 y; };
        typedef struct { __u16 v; } tv_t;
        struct d { tv_t t; struct b inner[2]; __s8 s; };
        """
    )
    a = h.struct("a")
    assert [m.offset for m in a.members] == [0, 4, 8, 16, 20]
    assert a.size == 56
    assert h.struct("b").size == 9
    assert h.struct("c").size == 5
    d = h.struct("d")
    assert d.offsets("d") == {"d.t.v": (0, 2), "d.inner": (2, 18), "d.s": (20, 1)}


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("0x10", 16),
        ("(1ULL << 3)", 8),
        ("_BITULL(5)", 32),
        ("BIT(2) | BIT(0)", 5),
        ("A + 2", 9),
        ("(__u64)A * 2", 14),
        ("010", 8),
    ],
)
def test_evaluate(expr: str, value: int) -> None:
    """Constant expressions evaluate with C literals, kernel bit macros and earlier defines."""
    assert evaluate(expr, {"A": 7}) == value


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("struct x { __u32 a : 3; };", "bitfield"),
        ("struct x { foo_t a; };", "unknown type 'foo_t'"),
        ("struct x { __u32 a;", "unbalanced braces"),
        ("struct x { __u32 a; }; };", "unbalanced '}'"),
        ("struct x { __u32 a[Q]; };", "array size"),
    ],
)
def test_errors_name_line_and_cause(text: str, fragment: str) -> None:
    """Unreadable C raises CParseError (a DecodeError) with a line number and the cause."""
    with pytest.raises(CParseError) as info:
        parse_c(text).struct("x")
    assert fragment in str(info.value)
    assert str(info.value).startswith("line 1:")
    assert isinstance(info.value, DecodeError)


def test_unknown_name_lists_what_was_found() -> None:
    """Asking for a struct the text lacks names the ones it has."""
    with pytest.raises(CParseError, match="found: struct kvm_exit_coco"):
        parse_c(V1).struct("nope")


# -- round trip -------------------------------------------------------------------------

_SCALARS = [U8, U16, U32, U64, S32, S64, CHAR]
_names = st.text(string.ascii_lowercase, min_size=1, max_size=6).map(lambda s: "f_" + s)


@st.composite
def _layouts(draw: st.DrawFn, depth: int = 0, anonymous: bool = True) -> Layout:
    n = draw(st.integers(1, 5))
    names = draw(st.lists(_names, min_size=n, max_size=n, unique=True))
    specs: list[tuple[str | None, object] | tuple[str | None, object, int]] = []
    for name in names:
        if depth < 2 and draw(st.booleans()) and draw(st.booleans()):
            inner = draw(_layouts(depth + 1))
            specs.append((name, inner))
        else:
            t = draw(st.sampled_from(_SCALARS))
            if draw(st.integers(0, 3)) == 0:
                specs.append((name, t, draw(st.integers(1, 5))))
            else:
                specs.append((name, t))
    kind = draw(st.sampled_from(["struct", "union"]))
    packed = kind == "struct" and draw(st.integers(0, 4)) == 0
    tag = kind if anonymous else f"{kind} top"
    if kind == "struct":
        return struct_of(tag, specs, packed=packed)  # type: ignore[arg-type]
    return union_of(tag, specs)  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None)
@given(_layouts(anonymous=False))
def test_round_trip_render_parse(lay: Layout) -> None:
    """Any layout rendered with Layout.render_c parses back to the same offsets and size."""
    back = parse_c(render_c(lay)).struct(lay.name)
    assert back.offsets("t") == lay.offsets("t")
    assert back.size == lay.size


RUN_WITH_COMMENTS = """
#define KVM_EXIT_IO               2
#define KVM_EXIT_HYPERCALL        3
#define KVM_EXIT_X86_RDMSR        29
#define KVM_EXIT_X86_WRMSR        30
struct kvm_run {
	__u32 exit_reason;
	union {
		/* KVM_EXIT_IO */
		struct {
#define KVM_EXIT_IO_IN  0
#define KVM_EXIT_IO_OUT 1
			__u8 direction;
			__u8 size; /* bytes */
			__u16 port;
		} io;
		/* KVM_EXIT_HYPERCALL */
		struct {
			__u64 nr;
			__u64 ret;
		} hypercall;
		/* KVM_EXIT_X86_RDMSR / KVM_EXIT_X86_WRMSR */
		struct {
			__u8 error;
		} msr;
		char padding[256];
	};
};
"""


def test_exit_union_members_carry_their_kvm_exit_comment() -> None:
    """kvm.h's ``/* KVM_EXIT_HYPERCALL */`` above ``struct { ... } hypercall;`` names its exits."""
    h = parse_c(RUN_WITH_COMMENTS)
    assert h.run_members == ("io", "hypercall", "msr", "padding")
    assert h.member_exits == {
        "io": ("KVM_EXIT_IO",),
        "hypercall": ("KVM_EXIT_HYPERCALL",),
        "msr": ("KVM_EXIT_X86_RDMSR", "KVM_EXIT_X86_WRMSR"),
    }
    assert h.members["io"].offsets("io")["io.port"] == (2, 2)


def test_defines_inside_a_struct_are_not_exit_reasons() -> None:
    """``#define KVM_EXIT_IO_IN 0`` inside ``struct { ... } io;`` is a direction, not an exit."""
    h = parse_c(RUN_WITH_COMMENTS)
    assert h.defines["KVM_EXIT_IO_IN"] == 0
    assert h.exit_reasons() == {
        "KVM_EXIT_IO": 2,
        "KVM_EXIT_HYPERCALL": 3,
        "KVM_EXIT_X86_RDMSR": 29,
        "KVM_EXIT_X86_WRMSR": 30,
    }


@pytest.mark.parametrize(("align", "offset", "size"), [(8, 16, 24), (16, 16, 32), (32, 32, 64)])
def test_member_aligned_attribute_moves_the_member(align: int, offset: int, size: int) -> None:
    """``__u64 ret __attribute__((aligned(N)))`` puts ``ret`` at a multiple of N (GCC manual)."""
    text = (
        "struct kvm_exit_snp_req_certs {\n\t__u64 gpa;\n\t__u64 npages;\n"
        f"\t__u64 ret __attribute__((aligned({align})));\n}};\n"
    )
    lay = parse_c(text).struct("kvm_exit_snp_req_certs")
    assert (lay.member("ret").offset, lay.size, lay.align) == (offset, size, max(align, 8))


def test_included_header_types_are_known() -> None:
    """``struct kvm_debug_exit_arch`` from an included ``asm/kvm.h`` lays out ``debug``."""
    asm = "struct kvm_debug_exit_arch {\n\t__u32 exception;\n\t__u32 pad;\n\t__u64 pc;\n};\n"
    text = (
        "#include <asm/kvm.h>\nstruct kvm_run {\n\tunion {\n"
        "\t\t/* KVM_EXIT_DEBUG */\n\t\tstruct {\n\t\t\tstruct kvm_debug_exit_arch arch;\n"
        "\t\t} debug;\n\t};\n};\n"
    )
    with pytest.raises(CParseError, match=r"^kvm\.h:6: unknown type 'struct kvm_debug_exit_arch'"):
        parse_c(text, source="kvm.h").struct("debug")
    h = parse_c(text, source="kvm.h", includes=[("asm/kvm.h", asm)])
    assert h.struct("debug").offsets("debug")["debug.arch.pc"] == (8, 8)
    assert h.struct("kvm_run").size == 16


def test_an_included_header_coco_cannot_read_is_a_note() -> None:
    """int-ll64.h's ``typedef __signed__ char __s8;`` is not C coco reads: a note with its line."""
    odd = ("asm-generic/int-ll64.h", "\ntypedef __signed__ char __s8;\n")
    h = parse_c("struct x { __s8 a; };", source="kvm.h", includes=[odd])
    assert h.struct("x").member("a").type.name == "__s8"
    assert any(n.startswith("asm-generic/int-ll64.h:2: ") and "not read" in n for n in h.notes)
