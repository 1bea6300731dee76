# SPDX-License-Identifier: Apache-2.0
"""The reviewers' renderers: C declarations and Markdown tables of layouts."""

from __future__ import annotations

from coco_core.generic.uapi import kvm_run_layout
from coco_core.layout import U8, U16, U64, CStruct, c_field, c_struct
from coco_core.review.render import render_c, render_markdown


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


def test_render_c_reads_like_the_header() -> None:
    """render_c writes the C declaration with an offset comment per member."""
    text = render_c(Demo.c_layout())
    assert text.splitlines() == [
        "struct demo {",
        "\t__u8 tag;\t/* 0x0 */",
        "\t__u64 gpa;\t/* 0x8 */",
        "\t__u16 ids[3];\t/* 0x10 */",
        "\t__u8 blob[4];\t/* 0x16 */",
        "};",
    ]


def test_render_c_nests_anonymous_members() -> None:
    """An anonymous union inside a struct renders inline, as the header writes it."""
    text = render_c(kvm_run_layout())
    assert "\tunion {" in text
    assert "__u64 kvm_valid_regs;\t/* 0x120 */" in text


def test_render_markdown_shows_padding() -> None:
    """render_markdown lists members and padding holes sorted by offset."""
    rows = render_markdown(Demo.c_layout()).splitlines()
    assert rows[0] == "| field | offset | size | type |"
    assert rows[2] == "| `demo.tag` | 0 (0x0) | 1 | `__u8` |"
    assert rows[3] == "| *padding* | 1 (0x1) | 7 | |"
    assert rows[-1] == "| *padding* | 26 (0x1a) | 6 | |"
