# SPDX-License-Identifier: Apache-2.0
"""The reviewers' renderers: C declarations, Markdown and text tables (80 columns).

:func:`render_c` is coco's one C renderer: the header-like text ``coco abi
show`` prints, the docs' tables, and the program the gcc oracle compiles are
all written by it, with different comments and tag names.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from coco_core.errorspace import ErrorSpace
from coco_core.layout import Hole, Layout, Member
from coco_core.status import CoCoStatus

if TYPE_CHECKING:
    from coco_core.review.compare import AbiComparison

__all__ = [
    "all_holes",
    "fit80",
    "offset_comment",
    "render_c",
    "render_comparison",
    "render_markdown",
    "render_space",
    "table",
    "wrap",
    "wrap_lines",
]

#: ``comment(member, offset from the outermost layout) -> text`` inside ``/* */``, or None
Comment = Callable[[Member, int], "str | None"]


def offset_comment(member: Member, offset: int) -> str:
    """The member's offset within its own struct, as the header's comments give it."""
    return f"{member.offset:#x}"


def render_c(
    lay: Layout,
    *,
    name: str = "",
    indent: str = "\t",
    comment: Comment | None = offset_comment,
    column: int = 0,
    tag: Callable[[str], str] | None = None,
    defs: dict[str, str] | None = None,
) -> str:
    """``lay`` as a C declaration, the way the header writes it.

    :param name: the declarator after the closing brace (``} tdx;``).
    :param indent: one level of indentation.
    :param comment: the comment after each scalar or array member; None for none.
    :param column: pad each declaration to this column before its comment.
    :param tag: renames struct and union tags (the gcc oracle makes them unique).
    :param defs: when given, each tagged struct a member uses is rendered into
        it (tag -> definition), so a program can define it first.
    """
    rename = tag or (lambda n: n)

    def member_line(m: Member, pad: str, base: int) -> str:
        arr = f"[{m.count}]" if m.count is not None else ""
        if isinstance(m.type, Layout):
            type_name = rename(m.type.name)
            if defs is not None and type_name not in defs:
                defs[type_name] = ""  # reserve: a struct cannot contain itself
                defs[type_name] = render_c(m.type, comment=None, tag=tag, defs=defs)
        else:
            type_name = m.type.name
        decl = f"{pad}{indent}{type_name} {m.name or ''}{arr};"
        note = comment(m, base + m.offset) if comment is not None else None
        if note is None:
            return decl
        return f"{decl:<{column}} /* {note} */" if column else f"{decl}\t/* {note} */"

    def lines(inner: Layout, declarator: str, base: int, depth: int) -> list[str]:
        pad = indent * depth
        head = inner.kind if inner.anonymous else rename(inner.name)
        out = [f"{pad}{head} {{"]
        for m in inner.members:
            if isinstance(m.type, Layout) and m.type.anonymous:
                arr = f"[{m.count}]" if m.count is not None else ""
                out.extend(lines(m.type, ((m.name or "") + arr), base + m.offset, depth + 1))
            else:
                out.append(member_line(m, pad, base))
        attr = " __attribute__((packed))" if inner.packed else ""
        natural = max((1 if inner.packed else m.type.align for m in inner.members), default=1)
        if inner.align > natural:  # an explicit aligned(n) on the struct
            attr += f" __attribute__((aligned({inner.align})))"
        tail = f" {declarator}" if declarator else ""
        out.append(f"{pad}}}{attr}{tail};")
        return out

    return "\n".join(lines(lay, name, 0, 0))


def all_holes(lay: Layout, base: int = 0) -> Iterator[Hole]:
    """The padding holes of ``lay`` and of every struct or union nested in it."""
    for h in lay.holes():
        yield Hole(base + h.offset, h.size)
    for m in lay.members:
        if isinstance(m.type, Layout) and m.count is None:
            yield from all_holes(m.type, base + m.offset)


def render_markdown(lay: Layout, base: int = 0, prefix: str = "") -> str:
    """A Markdown table of ``lay``: field, offset, size, type, with padding holes."""
    rows = ["| field | offset | size | type |", "| --- | --- | --- | --- |"]
    entries: list[tuple[int, str]] = []
    for path, off, size, ctype in lay.flatten(prefix or lay.name.split()[-1], base):
        entries.append((off, f"| `{path}` | {off} ({off:#x}) | {size} | `{ctype}` |"))
    for h in all_holes(lay, base):
        entries.append((h.offset, f"| *padding* | {h.offset} ({h.offset:#x}) | {h.size} | |"))
    rows.extend(r for _, r in sorted(entries, key=lambda e: e[0]))
    return "\n".join(rows)


def wrap_lines(text: str, width: int, indent: str = "") -> list[str]:
    """``text`` wrapped to ``width`` columns, continuation lines indented two more."""
    lines = textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent + "  ")
    return lines or [indent]


def fit80(text: str) -> str:
    """Wrap the prose lines longer than 80 columns, keeping their indentation."""
    out: list[str] = []
    for ln in text.splitlines():
        if len(ln) <= 80:
            out.append(ln)
        else:
            lead = ln[: len(ln) - len(ln.lstrip())]
            out.extend(textwrap.wrap(ln, 80, subsequent_indent=lead + "    ") or [ln])
    return "\n".join(out)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool) -> str:
    """A table as Markdown, or as aligned plain text for an 80-column mail."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()]
    lines += [fmt.format(*r).rstrip() for r in rows]
    return "\n".join(lines)


def render_space(space: ErrorSpace, *, markdown: bool) -> str:
    """One error space: its statuses, raw values and names, then every code."""
    head = f"{space.id}: {space.title}"
    meta = f"width {space.width} bits; lands in: {space.landing.value}"
    if space.kernel_accepts is not None:
        meta += "; KVM accepts only: " + ", ".join(
            space.names.get(v, hex(v)) for v in sorted(space.kernel_accepts)
        )
    rows = [
        [status, f"{raw:#x}", name + (" *" if fb else "")] for status, raw, name, fb in space.rows()
    ]
    enc = table(["neutral status", "raw", "name (* = fallback)"], rows, markdown=markdown)
    codes = [
        [f"{raw:#x}", name, _status_name(space, raw)] for raw, name in sorted(space.names.items())
    ]
    dec = table(["raw", "name", "decodes to"], codes, markdown=markdown)
    src = f"source: {space.source}" if space.source else ""
    if markdown:
        return f"### `{space.id}`\n\n{space.title}\n\n{meta}\n\n{enc}\n\n{dec}\n\n{src}".rstrip()
    head, meta, src = (_wrap80(x) for x in (head, meta, src))
    return f"{head}\n{meta}\n\n{enc}\n\n{dec}\n{src}".rstrip()


def _wrap80(text: str) -> str:
    """Wrap prose for an 80-column mail; continuation lines are indented."""
    return "\n".join(textwrap.wrap(text, 80, subsequent_indent="  ", break_on_hyphens=False))


def _status_name(space: ErrorSpace, raw: int) -> str:
    meant = space.decode(raw)
    return meant.name if isinstance(meant, CoCoStatus) else str(meant)


def wrap(text: str, width: int = 78, indent: str = "    ") -> list[str]:
    """``text`` wrapped to ``width`` columns; continuation lines indented two more.

    Hyphens do not break a line: a Message-ID (``<Z78uu3VNoIu48--7@google.com>``) or an
    ABI name stays whole, so it can be searched for.
    """
    sub = " " * len(indent) + "  "
    lines = textwrap.wrap(
        text, width, initial_indent=indent, subsequent_indent=sub, break_on_hyphens=False
    )
    return lines or [indent]


def render_comparison(c: AbiComparison, *, markdown: bool = False) -> str:
    """An :class:`~coco_core.review.compare.AbiComparison` as text (80 columns) or Markdown."""
    out: list[str] = []
    h1 = f"# {c.a} vs {c.b}" if markdown else f"{c.a} -> {c.b}"
    out.append(h1)
    for note in c.notes:
        out.extend([f"> {note}"] if markdown else wrap(f"note: {note}", indent=""))
    out.append("")
    out.append("## Union members" if markdown else "union members (offsets within the member):")
    for m in c.members:
        if m.identical:
            out.append(f"- `{m.member_a}`: identical" if markdown else f"  {m.member_a}: identical")
            continue
        if m.member_a is None or m.member_b is None:
            side = c.b if m.member_a is None else c.a
            name = m.member_b if m.member_a is None else m.member_a
            out.append(f"- `{name}`: only in {side}" if markdown else f"  {name}: only in {side}")
            continue
        title = (
            m.member_a
            if m.member_a == m.member_b
            else f"{m.member_a} ~ {m.member_b} (paired by {m.paired_by})"
        )
        size = "" if m.size_a == m.size_b else f", size {m.size_a} -> {m.size_b}"
        if markdown:
            out.append(f"- `{title}`{size}")
            out.extend(f"  - {ch.describe()}" for ch in m.changes)
        else:
            out.append(f"  {title}{size}")
            for ch in m.changes:
                out.extend(wrap(ch.describe()))
    out.append("")
    out.append("## Exit numbers" if markdown else "exit numbers:")
    if not c.exits:
        out.append("same" if markdown else "  same")
    else:
        rows = [[e.name, _num(e.a), _num(e.b)] for e in c.exits]
        tab = table(["exit", c.a, c.b], rows, markdown=markdown)
        out.append(tab if markdown else _indent(tab))
    for ea, na, eb, nb, kind in c.renumbered:
        line = f"the {kind} exit moved: {ea} = {na} -> {eb} = {nb}"
        if markdown:
            out.append(f"- {line}")
        else:
            out.extend(wrap(line, indent="  "))
    out.append("")
    out.append("## Error spaces" if markdown else "error spaces (completion values):")
    diff = [s for s in c.spaces if not s.same]
    if not diff:
        out.append("same" if markdown else "  same for every exit both decode")
    for s in diff:
        ex = s.exit_a if s.exit_a == s.exit_b else f"{s.exit_a} ~ {s.exit_b}"
        head = f"{ex}: {s.space_a} -> {s.space_b}"
        if markdown:
            out.append(f"- {head}")
        else:
            out.extend(wrap(head, indent="  "))
        lines: list[str] = []
        for raw, ma, mb in s.collisions:
            lines.append(f"collision {raw:#x}: {ma} vs {mb}")
        for st, ra, rb in s.translations:
            lines.append(f"translate {st}: {ra:#x} -> {rb:#x}")
        for st, to in s.fallbacks_a:
            lines.append(f"{c.a} cannot express {st} (written as {to})")
        for st, to in s.fallbacks_b:
            lines.append(f"{c.b} cannot express {st} (written as {to})")
        for ln in lines:
            if markdown:
                out.append(f"  - {ln}")
            else:
                out.extend(wrap(ln))
    out.append("")
    out.append("## Completion duties" if markdown else "completion duties:")
    if not c.duties:
        out.append("same" if markdown else "  same")
    for d in c.duties:
        if d.a is None or d.b is None:
            side = c.a if d.b is None else c.b
            ln = f"{d.exit_name}: only in {side}"
        else:
            what = [
                f"{k}: {getattr(d.a, k)!r} -> {getattr(d.b, k)!r}"
                for k in ("field", "kernel_action", "rejects")
                if getattr(d.a, k) != getattr(d.b, k)
            ]
            ln = f"{d.exit_name}: " + "; ".join(what)
        if markdown:
            out.append(f"- {ln}")
        else:
            out.extend(wrap(ln, indent="  "))
    return "\n".join(out).rstrip() + "\n"


def _num(n: int | None) -> str:
    return "-" if n is None else str(n)


def _indent(text: str) -> str:
    return "\n".join("  " + ln for ln in text.splitlines())
