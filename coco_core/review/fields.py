# SPDX-License-Identifier: Apache-2.0
"""Field by field: what changed between two layouts of one ``kvm_run`` union member.

:func:`compare_layouts` matches the leaf fields of two member layouts (same path, then
a unique leaf name, then same offset and size: a rename, then the only remaining field
of a type: renamed and moved) and says what changed for each: added, removed, renamed,
moved (offset changed), widened/narrowed/retyped. :mod:`coco_core.review.compare`
uses it for every member pair; :mod:`coco_core.review.history` for every step.
"""

from __future__ import annotations

import attrs

from coco_core.layout import Layout

__all__ = ["FieldChange", "compare_layouts", "leaves"]

_PADDING_NAMES = ("pad", "padding", "reserved", "rsvd")


@attrs.frozen
class _Leaf:
    path: str  #: relative to the member ("req_certs.gfn")
    offset: int  #: relative to the member
    size: int
    type: str

    @property
    def leaf(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def padding(self) -> bool:
        return self.leaf.startswith(_PADDING_NAMES)


@attrs.frozen
class FieldChange:
    """One field of a member pair: what changed between side A and side B.

    ``kinds`` ⊂ {added, removed, renamed, moved, retyped, widened, narrowed};
    offsets are relative to the member (add 32 for ``kvm_run``).
    """

    kinds: tuple[str, ...]
    path_a: str | None
    path_b: str | None
    offset_a: int | None = None
    offset_b: int | None = None
    size_a: int | None = None
    size_b: int | None = None
    type_a: str | None = None
    type_b: str | None = None

    def describe(self) -> str:
        """One line for people."""
        if self.kinds == ("added",):
            return f"added {self.path_b} ({self.type_b} at +{self.offset_b})"
        if self.kinds == ("removed",):
            return f"removed {self.path_a} ({self.type_a} at +{self.offset_a})"
        parts: list[str] = []
        if "renamed" in self.kinds:
            parts.append(f"renamed {self.path_a} -> {self.path_b}")
        else:
            parts.append(f"{self.path_b}:")
        if "moved" in self.kinds:
            parts.append(f"moved +{self.offset_a} -> +{self.offset_b}")
        for k in ("widened", "narrowed", "retyped"):
            if k in self.kinds:
                parts.append(f"{k} {self.type_a} -> {self.type_b}")
        return " ".join(parts)


def leaves(lay: Layout) -> list[_Leaf]:
    """Every leaf field of a member layout, paths and offsets relative to the member."""
    return [
        _Leaf(p.partition(".")[2], off, size, ctype) for p, off, size, ctype in lay.flatten("m")
    ]


def _widening(ta: str, tb: str, sa: int, sb: int) -> str:
    if ta == tb:
        return ""
    if sb > sa:
        return "widened"
    if sb < sa:
        return "narrowed"
    return "retyped"


def compare_layouts(a: Layout, b: Layout) -> tuple[FieldChange, ...]:
    """Field-level changes from member layout ``a`` to ``b`` (offsets relative)."""
    la, lb = leaves(a), leaves(b)
    matched: list[tuple[_Leaf, _Leaf]] = []
    rest_a = list(la)
    rest_b = list(lb)

    def take(fa: _Leaf, fb: _Leaf) -> None:
        matched.append((fa, fb))
        rest_a.remove(fa)
        rest_b.remove(fb)

    # full relative path, then a unique leaf name
    for fb in list(rest_b):
        fa = next((x for x in rest_a if x.path == fb.path), None)
        if fa is not None:
            take(fa, fb)
    for fb in list(rest_b):
        same = [x for x in rest_a if x.leaf == fb.leaf]
        if len(same) == 1 and sum(1 for y in rest_b if y.leaf == fb.leaf) == 1:
            take(same[0], fb)
    # renamed: same offset and size
    for fb in list(rest_b):
        fa = next(
            (x for x in rest_a if (x.offset, x.size) == (fb.offset, fb.size) and not x.padding),
            None,
        )
        if fa is not None and not fb.padding:
            take(fa, fb)
    # renamed and moved: the only remaining non-padding field of that type
    for fb in list(rest_b):
        if fb.padding:
            continue
        cand_a = [x for x in rest_a if x.type == fb.type and not x.padding]
        cand_b = [y for y in rest_b if y.type == fb.type and not y.padding]
        if len(cand_a) == 1 and len(cand_b) == 1:
            take(cand_a[0], fb)
    out: list[FieldChange] = []
    for fa, fb in matched:
        kinds: list[str] = []
        if fa.path != fb.path:
            kinds.append("renamed")
        if fa.offset != fb.offset:
            kinds.append("moved")
        w = _widening(fa.type, fb.type, fa.size, fb.size)
        if w:
            kinds.append(w)
        if kinds:
            out.append(
                FieldChange(
                    tuple(kinds),
                    fa.path,
                    fb.path,
                    fa.offset,
                    fb.offset,
                    fa.size,
                    fb.size,
                    fa.type,
                    fb.type,
                )
            )
    for fa in rest_a:
        out.append(
            FieldChange(("removed",), fa.path, None, fa.offset, None, fa.size, None, fa.type)
        )
    for fb in rest_b:
        out.append(
            FieldChange(("added",), None, fb.path, None, fb.offset, None, fb.size, None, fb.type)
        )
    order = {leaf.path: i for i, leaf in enumerate(lb)}
    order_a = {leaf.path: i for i, leaf in enumerate(la)}
    return tuple(
        sorted(
            out,
            key=lambda c: (order.get(c.path_b or "", 10_000 + order_a.get(c.path_a or "", 0)),),
        )
    )
