# SPDX-License-Identifier: Apache-2.0
"""``kvm_run`` offsets of an ABI, and its union members as a reviewer reads them.

:func:`kvm_run_offsets` is the ``{path: (offset, size)}`` map ``coco abi
offsets`` prints and the header tests compare; :func:`render_members` shows
each union member as C (offsets within the member and from ``kvm_run``), as
a Markdown table, or as JSON, with its padding holes.
"""

from __future__ import annotations

from typing import Any

from coco_core.abi import Abi
from coco_core.generic.uapi import EXIT_UNION_OFFSET, EXIT_UNION_SIZE
from coco_core.layout import Layout, Member
from coco_core.review.render import all_holes, render_c, table

__all__ = ["holes", "kvm_run_offsets", "member_json", "render_members"]

_UNION = EXIT_UNION_OFFSET
_UNION_SIZE = EXIT_UNION_SIZE


def kvm_run_offsets(abi: Abi) -> dict[str, tuple[int, int]]:
    """``{path: (offset, size)}`` of ``kvm_run`` under ``abi``, as ``abi offsets`` prints.

    The exit union's ``padding`` is left out and ``s`` is one member.
    """
    lay = abi.kvm_run_layout()
    out: dict[str, tuple[int, int]] = {}
    for path, v in lay.offsets("kvm_run").items():
        if path == "kvm_run.padding" or path.startswith("kvm_run.s."):
            continue
        out[path] = v
    s = lay.member("s")
    out["kvm_run.s"] = (s.offset, s.size)
    return out


def holes(lay: Layout) -> list[tuple[int, int]]:
    """``(offset, size)`` of every padding hole in ``lay``, nested ones included, sorted."""
    return sorted((h.offset, h.size) for h in all_holes(lay))


def _kvm_run_comment(member: Member, offset: int) -> str:
    return f"+{offset:#04x} @{_UNION + offset:<3} {member.size:>3}"


def _member_c(name: str, lay: Layout) -> str:
    """A union member as C with offsets within the member and from kvm_run."""
    lines = [
        f"/* {name}: {lay.size} of {_UNION_SIZE} exit-union bytes "
        f"({lay.size * 100 // _UNION_SIZE}%), at kvm_run+{_UNION} */",
        render_c(lay, name=name, indent="    ", comment=_kvm_run_comment, column=36),
    ]
    for off, size in holes(lay):
        lines.append(f"/* padding: {size} bytes at +{off:#x} (kvm_run+{_UNION + off}) */")
    return "\n".join(lines)


def _member_rows(name: str, lay: Layout) -> list[list[str]]:
    rows: list[tuple[int, list[str]]] = []
    for path, off, size, ctype in lay.flatten(name):
        rows.append((off, [f"`{path}`", str(off), str(_UNION + off), str(size), f"`{ctype}`"]))
    for off, size in holes(lay):
        rows.append((off, ["*padding*", str(off), str(_UNION + off), str(size), ""]))
    return [r for _, r in sorted(rows, key=lambda e: e[0])]


def member_json(name: str, lay: Layout) -> dict[str, Any]:
    """One union member as JSON: offsets within it and in ``kvm_run``, holes, layout."""
    return {
        "offset": _UNION,
        "size": lay.size,
        "union_bytes_used": lay.size,
        "union_percent": round(lay.size * 100 / _UNION_SIZE, 1),
        "offsets": {p: [o, s] for p, (o, s) in lay.offsets(name).items()},
        "kvm_run_offsets": {
            f"kvm_run.{p}": [_UNION + o, s] for p, (o, s) in lay.offsets(name).items()
        },
        "holes": [[o, s] for o, s in holes(lay)],
        "layout": lay.to_json(),
    }


def render_members(members: dict[str, Layout], fmt: str) -> list[str]:
    """Each union member as C (``fmt`` "c") or as a Markdown table ("markdown")."""
    out: list[str] = []
    for name, lay in members.items():
        if fmt == "markdown":
            out.append(
                f"### `{name}` ({lay.size} of {_UNION_SIZE} exit-union bytes, "
                f"at `kvm_run`+{_UNION})\n"
            )
            out.append(
                table(
                    ["field", "offset", "kvm_run offset", "size", "type"],
                    _member_rows(name, lay),
                    markdown=True,
                )
            )
            out.append("")
        else:
            out.append(_member_c(name, lay))
            out.append("")
    return out
