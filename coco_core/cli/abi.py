# SPDX-License-Identifier: Apache-2.0
"""``coco abi``: list, show, compare and check the registered exit ABIs.

Imported only when ``coco abi`` runs. Text output fits 80 columns; JSON shapes
are stable (``abi offsets``/``abi exits`` are what the header tests compare).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coco_core.errors import ConfigurationError

if TYPE_CHECKING:
    from coco_core.abi import Abi
    from coco_core.layout import Layout
    from coco_core.registry import Registry
    from coco_core.review.compare import ImportedAbi

__all__ = ["configure_parser", "kvm_run_offsets", "load_abi_or_file"]

_UNION = 32
_UNION_SIZE = 256


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``abi`` subcommands to ``parser``."""
    from coco_core.registry import DEFAULT_ABI

    sub = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND")

    p = sub.add_parser("list", help="registered ABIs, their vendors and CoCo exits")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_list)

    p = sub.add_parser("show", help="one ABI: union members, offsets, errors, duties")
    p.add_argument("name", help="ABI name (see 'coco abi list')")
    p.add_argument("--format", choices=("c", "markdown", "json"), default="c")
    p.set_defaults(func=_show)

    p = sub.add_parser("offsets", help="{kvm_run path: [offset, size]} of an ABI")
    p.add_argument("--abi", default=DEFAULT_ABI)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_offsets)

    p = sub.add_parser("exits", help="KVM_EXIT_* numbers of an ABI")
    p.add_argument("--abi", default=DEFAULT_ABI)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_exits)

    p = sub.add_parser("history", help="how the CoCo exits moved across all ABIs")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.set_defaults(func=_history)

    p = sub.add_parser("compare", help="compare two ABIs, headers or patch files")
    p.add_argument("a", help="ABI name, or a C header / patch file")
    p.add_argument("b", help="ABI name, or a C header / patch file")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.add_argument("--struct", help="struct or member to take from a file")
    p.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="X:Y",
        help="pair union member X of A with Y of B (repeatable)",
    )
    p.set_defaults(func=_compare)

    p = sub.add_parser("import", help="show a struct read from a C header or patch")
    p.add_argument("file")
    p.add_argument("--struct", required=True, help="struct, union or member name")
    p.add_argument("--format", choices=("c", "markdown", "json"), default="c")
    p.set_defaults(func=_import)

    p = sub.add_parser("check", help="verify every layout with gcc (and a real header)")
    p.add_argument("--header", help="dir with usr/include/linux/kvm.h, or the kvm.h file")
    p.add_argument("--abi", default=DEFAULT_ABI, help="ABI compared with --header")
    p.set_defaults(func=_check)


# -- helpers --------------------------------------------------------------------------


def _vendor(abi: Abi) -> str:
    return ",".join(abi.vendors) or "kvm"


def kvm_run_offsets(abi: Abi) -> dict[str, tuple[int, int]]:
    """``{path: (offset, size)}`` of ``kvm_run`` under ``abi``, as ``abi offsets`` prints.

    The exit union's ``padding`` is left out and ``s`` is one member.
    """
    offs = abi.kvm_run_layout().offsets("kvm_run")
    out: dict[str, tuple[int, int]] = {}
    for path, v in offs.items():
        if path == "kvm_run.padding":
            continue
        if path.startswith("kvm_run.s."):
            continue
        out[path] = v
    lay = abi.kvm_run_layout()
    s = lay.member("s")
    out["kvm_run.s"] = (s.offset, s.size)
    return out


def load_abi_or_file(reg: Registry, what: str, struct: str | None = None) -> Abi | ImportedAbi:
    """A registered ABI by name, or a header/patch file imported with cparse."""
    if what in reg.abis:
        return reg.abis[what]
    p = Path(what)
    if not p.exists():
        known = ", ".join(reg.abis) or "none"
        raise ConfigurationError(f"unknown ABI {what!r} and no such file; registered ABIs: {known}")
    return _import_file(p, struct)


def _read(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {p}: {exc.strerror or exc}") from None


def _import_file(p: Path, struct: str | None) -> ImportedAbi:
    from coco_core.review.compare import ImportedAbi
    from coco_core.review.cparse import parse_c

    parsed = parse_c(_read(p), source=str(p))
    if struct is None:
        names = parsed.names()
        if len(names) == 1:
            struct = names[0]
        else:
            pick = [n for n in names if "req_certs" in n or "coco" in n]
            if not pick:
                found = ", ".join(names) or "none"
                raise ConfigurationError(f"{p}: name the struct with --struct; found: {found}")
            struct = pick[0]
    lay = parsed.struct(struct)
    member = struct.split()[-1]
    exits = {k: v for k, v in parsed.defines.items() if k.startswith("KVM_EXIT_")}
    return ImportedAbi(str(p), str(p), {member: lay}, exits, parsed.notes)


def _holes(lay: Layout, base: int = 0) -> list[tuple[int, int]]:
    from coco_core.layout import Layout as _L

    out = [(base + h.offset, h.size) for h in lay.holes()]
    for m in lay.members:
        if isinstance(m.type, _L) and m.count is None:
            out.extend(_holes(m.type, base + m.offset))
    return sorted(out)


def _member_c(name: str, lay: Layout) -> str:
    """A union member as C with offsets within the member and from kvm_run."""
    lines = [
        f"/* {name}: {lay.size} of {_UNION_SIZE} exit-union bytes "
        f"({lay.size * 100 // _UNION_SIZE}%), at kvm_run+{_UNION} */"
    ]
    lines.extend(_c_lines(lay, name, 0, 0))
    for off, size in _holes(lay):
        lines.append(f"/* padding: {size} bytes at +{off:#x} (kvm_run+{_UNION + off}) */")
    return "\n".join(lines)


def _c_lines(lay: Layout, name: str | None, base: int, depth: int) -> list[str]:
    from coco_core.layout import Layout as _L

    pad = "    " * depth
    head = lay.kind if lay.anonymous else lay.name
    out = [f"{pad}{head} {{"]
    for m in lay.members:
        arr = f"[{m.count}]" if m.count is not None else ""
        if isinstance(m.type, _L) and m.type.anonymous:
            out.extend(_c_lines(m.type, (m.name or "") + arr, base + m.offset, depth + 1))
            continue
        decl = f"{pad}    {m.type.name} {m.name}{arr};"
        off = base + m.offset
        out.append(f"{decl:<36} /* +{off:#04x} @{_UNION + off:<3} {m.size:>3} */")
    tail = f" {name}" if name else ""
    attr = " __attribute__((packed))" if lay.packed else ""
    out.append(f"{pad}}}{attr}{tail};")
    return out


def _member_rows(name: str, lay: Layout) -> list[list[str]]:
    rows: list[tuple[int, list[str]]] = []
    for path, off, size, ctype in lay.flatten(name):
        rows.append((off, [f"`{path}`", str(off), str(_UNION + off), str(size), f"`{ctype}`"]))
    for off, size in _holes(lay):
        rows.append((off, ["*padding*", str(off), str(_UNION + off), str(size), ""]))
    return [r for _, r in sorted(rows, key=lambda e: e[0])]


def _member_json(name: str, lay: Layout) -> dict[str, Any]:
    return {
        "offset": _UNION,
        "size": lay.size,
        "union_bytes_used": lay.size,
        "union_percent": round(lay.size * 100 / _UNION_SIZE, 1),
        "offsets": {p: [o, s] for p, (o, s) in lay.offsets(name).items()},
        "kvm_run_offsets": {
            f"kvm_run.{p}": [_UNION + o, s] for p, (o, s) in lay.offsets(name).items()
        },
        "holes": [[o, s] for o, s in _holes(lay)],
        "layout": lay.to_json(),
    }


def _render_members(members: dict[str, Layout], fmt: str) -> list[str]:
    from coco_core.review.render import table

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


# -- commands -------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from coco_core.registry import DEFAULT_ABI
    from coco_core.review.render import table

    reg: Registry = args.registry
    rows: list[dict[str, Any]] = []
    for abi in reg.abis.values():
        rows.append(
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
        )
    if args.format == "json":
        print(json.dumps({"abis": rows}, indent=2))
        return 0
    generic = {"io", "hypercall", "system_event", "msr", "memory_fault"}
    trows = []
    for r in rows:
        extra = [m for m in r["union_members"] if m not in generic]
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
    print(table(["ABI", "vendor", "kind", "top", "CoCo members"], trows, markdown=False))
    print(f"\n* default ABI ({DEFAULT_ABI})")
    return 0


def _show(args: argparse.Namespace) -> int:
    from coco_core.review.render import render_space

    reg: Registry = args.registry
    abi = reg.abi(args.name)
    members = abi.union_members
    if args.format == "json":
        doc = {
            "name": abi.name,
            "vendor": _vendor(abi),
            "source": abi.source,
            "released": abi.released,
            "order": abi.order,
            "exits": abi.exits,
            "union_members": {n: _member_json(n, lay) for n, lay in members.items()},
            "error_spaces": [s.to_json() for s in abi.error_spaces],
            "duties": [
                {
                    "exit": d.exit,
                    "field": d.field,
                    "kernel_action": d.kernel_action,
                    "rejects": d.rejects,
                }
                for d in abi.duties
            ],
            "notes": list(abi.notes),
        }
        print(json.dumps(doc, indent=2, default=int))
        return 0
    md = args.format == "markdown"
    out: list[str] = []
    kind = "released" if abi.released else "proposal"
    if md:
        out += [f"# ABI `{abi.name}` ({kind}, vendor {_vendor(abi)})", "", abi.source, ""]
        out += ["## Union members", ""]
    else:
        out += [f"/* ABI {abi.name} ({kind}, vendor {_vendor(abi)}) */"]
        out += [f"/* {ln} */" for ln in _wrap_lines(abi.source, 72)]
        out.append("")
    out += _render_members(members, args.format)
    out.append("## Error spaces\n" if md else "error spaces:\n")
    out += [render_space(s, markdown=md) + "\n" for s in abi.error_spaces]
    out.append("## Completion duties\n" if md else "completion duties:")
    for d in abi.duties:
        text = f"{d.exit} ({d.field}): {d.kernel_action}"
        if d.rejects:
            text += f"; rejects: {d.rejects}"
        out += [f"- {text}"] if md else _wrap_lines(text, 76, "  ")
    if abi.notes:
        out.append("\n## Notes\n" if md else "\nnotes:")
        for n in abi.notes:
            out += [f"- {n}"] if md else _wrap_lines(n, 76, "  ")
    text = "\n".join(out).rstrip()
    print(text if md else _fit80(text))
    return 0


def _fit80(text: str) -> str:
    """Wrap the prose lines other renderers made longer than 80 columns."""
    import textwrap

    out: list[str] = []
    for ln in text.splitlines():
        if len(ln) <= 80:
            out.append(ln)
        else:
            lead = ln[: len(ln) - len(ln.lstrip())]
            out.extend(textwrap.wrap(ln, 80, subsequent_indent=lead + "    ") or [ln])
    return "\n".join(out)


def _wrap_lines(text: str, width: int, indent: str = "") -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent + "  ") or [
        indent
    ]


def _offsets(args: argparse.Namespace) -> int:

    reg: Registry = args.registry
    abi = reg.abi(args.abi)
    offs = kvm_run_offsets(abi)
    if args.format == "json":
        doc = {"abi": abi.name, "offsets": {k: list(v) for k, v in offs.items()}}
        print(json.dumps(doc, indent=2))
        return 0
    from coco_core.review.render import table

    rows = [[p, str(o), str(s)] for p, (o, s) in offs.items()]
    print(f"{abi.name}: struct kvm_run")
    print(table(["member", "offset", "size"], rows, markdown=False))
    return 0


def _exits(args: argparse.Namespace) -> int:

    reg: Registry = args.registry
    abi = reg.abi(args.abi)
    if args.format == "json":
        print(json.dumps({"abi": abi.name, "exits": abi.exits}, indent=2))
        return 0
    from coco_core.review.render import table

    rows = [[n, str(v)] for n, v in abi.exits.items()]
    print(f"{abi.name}:")
    print(table(["exit", "number"], rows, markdown=False))
    return 0


def _history(args: argparse.Namespace) -> int:
    import attrs

    from coco_core.review.compare import history, render_history

    reg: Registry = args.registry
    entries = history(reg)
    if args.format == "json":
        print(json.dumps({"history": [attrs.asdict(e) for e in entries]}, indent=2))
        return 0
    print(render_history(entries, markdown=args.format == "markdown").rstrip())
    return 0


def _parse_pairs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        x, sep, y = item.partition(":")
        if not sep or not x or not y:
            raise ConfigurationError(f"--pair {item!r}: expected MEMBER_A:MEMBER_B")
        out[x] = y
    return out


def _compare(args: argparse.Namespace) -> int:
    from coco_core.review.compare import compare_abis

    reg: Registry = args.registry
    a = load_abi_or_file(reg, args.a, args.struct)
    b = load_abi_or_file(reg, args.b, args.struct)
    result = compare_abis(a, b, pairs=_parse_pairs(args.pair))
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2, default=str))
        return 0
    print(result.render(markdown=args.format == "markdown").rstrip())
    return 0


def _import(args: argparse.Namespace) -> int:
    imported = _import_file(Path(args.file), args.struct)
    ((name, lay),) = imported.union_members.items()
    if args.format == "json":
        doc = {
            "file": imported.source,
            "struct": args.struct,
            "layout": _member_json(name, lay),
            "exits": dict(imported.exits),
            "notes": list(imported.notes),
        }
        print(json.dumps(doc, indent=2))
        return 0
    out = _render_members({name: lay}, args.format)
    if imported.notes and args.format != "markdown":
        out += [f"/* {n} */" for n in imported.notes[:20]]
    print("\n".join(out).rstrip())
    return 0


def _check(args: argparse.Namespace) -> int:
    from coco_core.review.gcc import gcc_offsets, header_defines, header_offsets

    reg: Registry = args.registry
    problems: list[str] = []
    layouts: dict[str, Layout] = {}
    for abi in reg.abis.values():
        layouts[f"{abi.name}:kvm_run"] = abi.kvm_run_layout()
        for m, lay in abi.union_members.items():
            layouts[f"{abi.name}:{m}"] = lay
    measured = gcc_offsets(layouts)
    checked = 0
    for key, lay in layouts.items():
        want = lay.offsets(key)
        want[key] = (0, lay.size)
        got = measured[key]
        for path in sorted(want.keys() | got.keys()):
            checked += 1
            if want.get(path) != got.get(path):
                problems.append(f"{path}: coco {want.get(path)}, gcc {got.get(path)}")
    print(f"gcc: {len(layouts)} layouts, {checked} members checked, {len(problems)} mismatches")
    if args.header:
        abi = reg.abi(args.abi)
        offs = kvm_run_offsets(abi)
        hdr = header_offsets(args.header, list(offs))
        bad_off = 0
        for path, ours in offs.items():
            have = hdr.get(path)
            if have != ours:
                bad_off += 1
                what = "not in the header" if have is None else f"header {have[0]} size {have[1]}"
                problems.append(f"{path}: {abi.name} {ours[0]} size {ours[1]}, {what}")
        exits = abi.exits
        defs = header_defines(args.header, list(exits))
        bad_exit = 0
        for name, num in exits.items():
            if defs.get(name) != num:
                bad_exit += 1
                have_s = "not defined" if defs.get(name) is None else str(defs.get(name))
                problems.append(f"{name}: {abi.name} {num}, header {have_s}")
        print(
            f"header: {len(offs)} offsets ({bad_off} mismatches), "
            f"{len(exits)} exit numbers ({bad_exit} mismatches) for {abi.name}"
        )
    for p in problems:
        print(f"MISMATCH {p}")
    return 1 if problems else 0
