# SPDX-License-Identifier: Apache-2.0
"""What ``coco abi`` prints: the registered ABIs, one ABI in full, offsets, exits, checks.

Each function returns the text (or the JSON document) for one subcommand; the
CLI only parses arguments and prints. Text fits 80 columns; JSON shapes are
stable (``abi offsets``/``abi exits`` are what the header tests compare).
"""

from __future__ import annotations

from typing import Any

from coco_core.abi import Abi
from coco_core.generic.uapi import GENERIC_MEMBERS
from coco_core.kernels import DEFAULT_ABI
from coco_core.layout import Layout, Member
from coco_core.registry import Registry
from coco_core.review import gcc
from coco_core.review.compare import ImportedAbi
from coco_core.review.members import kvm_run_offsets, member_json, render_members
from coco_core.review.render import fit80, render_c, render_space, table, wrap_lines

__all__ = [
    "abi_exits",
    "abi_json",
    "abi_list",
    "abi_offsets",
    "check_layouts",
    "imported_json",
    "render_abi",
    "render_abi_list",
    "render_imported",
]


def _vendor(abi: Abi) -> str:
    return ",".join(abi.vendors) or "kvm"


def abi_list(reg: Registry) -> list[dict[str, Any]]:
    """One row per registered ABI (``coco abi list --format json``)."""
    return [
        {
            "name": abi.name,
            "vendor": _vendor(abi),
            "source": abi.source,
            "released": abi.released,
            "order": abi.order,
            "default": abi.name == DEFAULT_ABI,
            "union_members": list(abi.union_members),
            "exits": abi.exits,
        }
        for abi in reg.abis.values()
    ]


def render_abi_list(reg: Registry) -> str:
    """The registered ABIs as an 80-column table, the default marked ``*``."""
    trows = []
    for r in abi_list(reg):
        extra = [m for m in r["union_members"] if m not in GENERIC_MEMBERS]
        top = max(r["exits"].values(), default=0)
        trows.append(
            [
                r["name"] + (" *" if r["default"] else ""),
                r["vendor"],
                "released" if r["released"] else "proposal",
                str(top),
                ", ".join(extra) or "-",
            ]
        )
    used = (
        sum(
            max(len(h), *(len(t[i]) for t in trows)) + 2
            for i, h in enumerate(["ABI", "vendor", "kind", "top"])
        )
        if trows
        else 0
    )
    room = max(80 - used, 12)
    for t in trows:
        if len(t[4]) > room:
            t[4] = t[4][: room - 3] + "..."
    text = table(["ABI", "vendor", "kind", "top", "CoCo members"], trows, markdown=False)
    return f"{text}\n\n* default ABI ({DEFAULT_ABI})"


def abi_json(abi: Abi) -> dict[str, Any]:
    """One ABI as ``coco abi show --format json`` prints it."""
    return {
        "name": abi.name,
        "vendor": _vendor(abi),
        "source": abi.source,
        "released": abi.released,
        "order": abi.order,
        "exits": abi.exits,
        "union_members": {n: member_json(n, lay) for n, lay in abi.union_members.items()},
        "error_spaces": [s.to_json() for s in abi.error_spaces],
        "duties": [
            {
                "exit": d.exit_name,
                "field": d.field,
                "kernel_action": d.kernel_action,
                "rejects": d.rejects,
            }
            for d in abi.duties
        ],
        "notes": list(abi.notes),
    }


def render_abi(abi: Abi, fmt: str) -> str:
    """One ABI in full, as C-like text (``fmt`` "c", 80 columns) or Markdown."""
    md = fmt == "markdown"
    out: list[str] = []
    kind = "released" if abi.released else "proposal"
    if md:
        out += [f"# ABI `{abi.name}` ({kind}, vendor {_vendor(abi)})", "", abi.source, ""]
        out += ["## Union members", ""]
    else:
        out += [f"/* ABI {abi.name} ({kind}, vendor {_vendor(abi)}) */"]
        out += [f"/* {ln} */" for ln in wrap_lines(abi.source, 72)]
        out.append("")
    out += render_members(dict(abi.union_members), fmt)
    out.append("## Error spaces\n" if md else "error spaces:\n")
    out += [render_space(s, markdown=md) + "\n" for s in abi.error_spaces]
    out.append("## Completion duties\n" if md else "completion duties:")
    for d in abi.duties:
        text = f"{d.exit_name} ({d.field}): {d.kernel_action}"
        if d.rejects:
            text += f"; rejects: {d.rejects}"
        out += [f"- {text}"] if md else wrap_lines(text, 76, "  ")
    if abi.notes:
        out.append("\n## Notes\n" if md else "\nnotes:")
        for n in abi.notes:
            out += [f"- {n}"] if md else wrap_lines(n, 76, "  ")
    text = "\n".join(out).rstrip()
    return text if md else fit80(text)


def abi_offsets(abi: Abi, *, as_json: bool) -> str | dict[str, Any]:
    """``kvm_run`` offsets of ``abi``: a table, or the JSON document."""
    offs = kvm_run_offsets(abi)
    if as_json:
        return {"abi": abi.name, "offsets": {k: list(v) for k, v in offs.items()}}
    rows = [[p, str(o), str(s)] for p, (o, s) in offs.items()]
    return f"{abi.name}: struct kvm_run\n" + table(
        ["member", "offset", "size"], rows, markdown=False
    )


def abi_exits(abi: Abi, *, as_json: bool) -> str | dict[str, Any]:
    """The ``KVM_EXIT_*`` numbers of ``abi``: a table, or the JSON document."""
    if as_json:
        return {"abi": abi.name, "exits": abi.exits}
    rows = [[n, str(v)] for n, v in abi.exits.items()]
    return f"{abi.name}:\n" + table(["exit", "number"], rows, markdown=False)


def _is_run(name: str) -> bool:
    """True for ``kvm_run`` itself: shown from its own offset 0, not as a union member."""
    return name == "kvm_run"


def imported_json(imported: ImportedAbi, struct: str) -> dict[str, Any]:
    """A struct read from a file, as ``coco abi import --format json`` prints it."""
    ((name, lay),) = imported.union_members.items()
    return {
        "file": imported.source,
        "struct": struct,
        "layout": (
            {"size": lay.size, "offsets": {p: [o, s] for p, (o, s) in lay.offsets(name).items()}}
            | {"layout": lay.to_json()}
            if _is_run(name)
            else member_json(name, lay)
        ),
        "exits": dict(imported.exits),
        "notes": list(imported.notes),
    }


def render_imported(imported: ImportedAbi, fmt: str) -> str:
    """A struct read from a file, as C-like text or Markdown."""
    ((name, lay),) = imported.union_members.items()
    if _is_run(name) and fmt != "markdown":
        out = [
            f"/* {lay.name}: {lay.size} bytes; offsets from its start */",
            render_c(lay, indent="    ", comment=_from_start, column=44),
            "",
        ]
    else:
        out = render_members(dict(imported.union_members), fmt)
    if imported.notes and fmt != "markdown":
        out += [f"/* {n} */" for n in imported.notes[:20]]
    return "\n".join(out).rstrip()


def _from_start(member: Member, offset: int) -> str:
    return f"@{offset:<4} {member.size:>4}"


def check_layouts(reg: Registry, header: str | None, abi_name: str) -> tuple[list[str], list[str]]:
    """Every registered layout against gcc, and ``abi_name`` against a real header.

    :returns: (summary lines, problems); the check passed when there are no problems.
    :raises ConfigurationError: ``abi_name`` is not registered (with or without a header).
    """
    abi = reg.abi(abi_name)
    problems: list[str] = []
    summary: list[str] = []
    layouts: dict[str, Layout] = {}
    for each in reg.abis.values():
        layouts[f"{each.name}:kvm_run"] = each.kvm_run_layout()
        for m, lay in each.union_members.items():
            layouts[f"{each.name}:{m}"] = lay
    measured = gcc.gcc_offsets(layouts)
    checked = 0
    for key, lay in layouts.items():
        want = lay.offsets(key)
        want[key] = (0, lay.size)
        got = measured[key]
        for path in sorted(want.keys() | got.keys()):
            checked += 1
            if want.get(path) != got.get(path):
                problems.append(f"{path}: coco {want.get(path)}, gcc {got.get(path)}")
    summary.append(
        f"gcc: {len(layouts)} layouts, {checked} members checked, {len(problems)} mismatches"
    )
    if header:
        offs = kvm_run_offsets(abi)
        hdr = gcc.header_offsets(header, list(offs))
        bad_off = 0
        for path, ours in offs.items():
            have = hdr.get(path)
            if have != ours:
                bad_off += 1
                what = "not in the header" if have is None else f"header {have[0]} size {have[1]}"
                problems.append(f"{path}: {abi.name} {ours[0]} size {ours[1]}, {what}")
        exits = abi.exits
        defs = gcc.header_defines(header, list(exits))
        bad_exit = 0
        for name, num in exits.items():
            if defs.get(name) != num:
                bad_exit += 1
                have_s = "not defined" if defs.get(name) is None else str(defs.get(name))
                problems.append(f"{name}: {abi.name} {num}, header {have_s}")
        summary.append(
            f"header: {len(offs)} offsets ({bad_off} mismatches), "
            f"{len(exits)} exit numbers ({bad_exit} mismatches) for {abi.name}"
        )
    return summary, problems
