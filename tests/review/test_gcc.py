# SPDX-License-Identifier: Apache-2.0
"""Every registered layout agrees with gcc's offsetof/sizeof."""

from __future__ import annotations

import shutil

import pytest

from coco_core.layout import U8, U32, U64, Layout, struct_of, union_of
from coco_core.registry import Registry
from coco_core.review.gcc import compare_with_gcc, gcc_offsets, render_program_c

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def _all_layouts() -> dict[str, Layout]:
    reg = Registry.from_entry_points()
    out: dict[str, Layout] = {}
    for abi in reg.abis.values():
        out[f"{abi.name}/kvm_run"] = abi.kvm_run_layout()
        for name, lay in abi.union_members.items():
            out[f"{abi.name}/{name}"] = lay
    return out


def test_every_registered_layout_matches_gcc() -> None:
    """All ABIs' kvm_run layouts and union members have gcc's offsets and sizes."""
    layouts = _all_layouts()
    measured = gcc_offsets(layouts)
    for key, lay in layouts.items():
        want = lay.offsets(key)
        want[key] = (0, lay.size)
        assert measured[key] == want, key


def test_kvm_run_size_and_union_offset() -> None:
    """gcc puts the exit union at 32 and makes kvm_run 2352 bytes under every ABI."""
    for key, lay in _all_layouts().items():
        if key.endswith("/kvm_run"):
            assert compare_with_gcc(lay, "kvm_run") == []
            assert lay.size == 2352


def test_tagged_members_and_packed_render() -> None:
    """Tagged nested structs, arrays of structs and packed structs compile and measure right."""
    inner = struct_of("struct inner", [("a", U8), ("b", U64)])
    packed = struct_of("struct pk", [("a", U8), ("b", U32)], packed=True)
    outer = struct_of(
        "struct outer",
        [("x", inner), ("y", inner, 2), ("p", packed), (None, union_of("union", [("u", U32)]))],
    )
    assert compare_with_gcc(outer, "outer") == []
    assert "struct inner__coco0" in render_program_c({"outer": outer})


def test_mismatch_is_reported() -> None:
    """A layout with a wrong offset is reported with both values."""
    good = struct_of("struct m", [("a", U8), ("b", U64)])
    bad = Layout(
        good.name, "struct", (good.members[0], good.members[1].__class__("b", 4, U64)), 16, 8
    )
    problems = compare_with_gcc(bad, "m")
    assert [p.path for p in problems] == ["m.b"]
    assert "coco offset 4" in str(problems[0])
    assert "gcc offset 8" in str(problems[0])
