# SPDX-License-Identifier: Apache-2.0
"""How the CoCo requests moved from proposal to release, across every registered ABI.

:func:`history` walks every registered ABI in :attr:`Abi.order
<coco_core.abi.Abi.order>` and tells how each CoCo request moved: exit name and
number, the member that carries it, its fields, and what changed since the
previous ABI with that request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from coco_core.abi import Abi, ExitDecoder
from coco_core.registry import Registry
from coco_core.review.compare import AnyAbi, compare_layouts, leaves, member_requests
from coco_core.review.render import wrap

__all__ = ["HistoryEntry", "history", "render_history"]


def _num(n: int | None) -> str:
    return "-" if n is None else str(n)


@attrs.frozen
class HistoryEntry:
    """One request kind under one ABI: the exit and the member that carry it."""

    request: str
    abi: str
    order: str
    exits: tuple[tuple[str, int], ...]
    member: str | None
    fields: tuple[tuple[str, int, int, str], ...]  #: (path, offset, size, type)
    changes: tuple[str, ...] = ()  #: what changed since the previous ABI with this request
    #: the completion rules of those exits: ``EXIT: field: what KVM does; rejects: ...``
    duties: tuple[str, ...] = ()


def _exit_numbers(abi: AnyAbi, decs: Sequence[ExitDecoder]) -> tuple[tuple[str, int], ...]:
    exits = abi.exits
    out: dict[str, int] = {}
    for d in decs:
        base = d.name.split("/", 1)[0]
        out[base] = exits.get(base, d.reason)
    return tuple(sorted(out.items(), key=lambda kv: kv[1]))


def _base(name: str) -> str:
    """``KVM_EXIT_TDX`` of ``KVM_EXIT_TDX/GET_QUOTE`` or ``KVM_EXIT_HYPERCALL/... (SNP PSC)``."""
    return name.split("/", 1)[0].split(" ", 1)[0]


def _duties(abi: Abi, decs: Sequence[ExitDecoder]) -> tuple[str, ...]:
    """The completion rules of the exits ``decs`` read, as one line each."""
    names = {d.name for d in decs}
    bases = {_base(d.name) for d in decs}
    out = []
    for duty in abi.duties:
        named = duty.exit_name in names or any(duty.exit_name.startswith(f"{n} ") for n in names)
        if named or (_base(duty.exit_name) in bases and "/" not in duty.exit_name):
            rule = f"{duty.exit_name}: {duty.field}: {duty.kernel_action}"
            out.append(rule + (f"; rejects: {duty.rejects}" if duty.rejects else ""))
    return tuple(out)


def history(registry: Registry, *, requests: Iterable[str] | None = None) -> list[HistoryEntry]:
    """How the CoCo requests moved across every registered ABI, in :attr:`Abi.order`.

    For each request kind (``certificate``, ``quote``, ...) and each ABI that
    decodes it: the exit names and numbers, the union member, its fields, and
    what changed since the previous ABI with that request (exit number,
    member, renamed/moved/widened fields, and each completion rule that is new
    or different: what KVM does with the answer and what it rejects).
    """
    wanted = set(requests) if requests is not None else None
    abis = sorted(registry.abis.values(), key=lambda x: (x.order, x.name))
    entries: list[HistoryEntry] = []
    last: dict[str, tuple[Abi, HistoryEntry]] = {}
    for abi in abis:
        reqs = member_requests(abi)
        by_kind: dict[str, list[ExitDecoder]] = {}
        for d in abi.decoders:
            if d.fallback:
                continue
            by_kind.setdefault(d.request_type.kind, []).append(d)
        for kind in sorted(by_kind):
            if wanted is not None and kind not in wanted:
                continue
            decs = by_kind[kind]
            member = next((m for m, ks in reqs.items() if kind in ks), None)
            lay = abi.union_members.get(member) if member else None
            fields = tuple(
                (leaf.path, leaf.offset, leaf.size, leaf.type)
                for leaf in (leaves(lay) if lay is not None else [])
            )
            exits = _exit_numbers(abi, decs)
            entry = HistoryEntry(
                kind, abi.name, abi.order, exits, member, fields, duties=_duties(abi, decs)
            )
            prev = last.get(kind)
            if prev is not None:
                entry = attrs.evolve(entry, changes=_changes(prev[0], prev[1], abi, entry))
            entries.append(entry)
            last[kind] = (abi, entry)
    return entries


def _changes(pa: Abi, pe: HistoryEntry, abi: Abi, e: HistoryEntry) -> tuple[str, ...]:
    out: list[str] = []
    before, after = dict(pe.exits), dict(e.exits)
    for n in sorted(before.keys() | after.keys()):
        if before.get(n) != after.get(n):
            out.append(f"{n}: {_num(before.get(n))} -> {_num(after.get(n))}")
    if pe.member != e.member:
        out.append(f"member {pe.member} -> {e.member}")
    if pe.member and e.member:
        la, lb = pa.union_members[pe.member], abi.union_members[e.member]
        out.extend(ch.describe() for ch in compare_layouts(la, lb))
    out.extend(f"completion {rule}" for rule in e.duties if rule not in pe.duties)
    return tuple(out)


def render_history(entries: Sequence[HistoryEntry], *, markdown: bool = False) -> str:
    """The history as text (80 columns) or Markdown, grouped by request kind."""
    out: list[str] = []
    kinds = list(dict.fromkeys(e.request for e in entries))
    for kind in kinds:
        rows = [e for e in entries if e.request == kind]
        chain = " -> ".join(f"{','.join(f'{n}={v}' for n, v in r.exits)} ({r.abi})" for r in rows)
        if markdown:
            out.append(f"## {kind}\n")
            out.append("| ABI | exits | member | fields | changes |")
            out.append("| --- | --- | --- | --- | --- |")
            for r in rows:
                fields = ", ".join(f"`{p}` {t}@{o}" for p, o, _, t in r.fields)
                exits = ", ".join(f"{n}={v}" for n, v in r.exits)
                out.append(
                    f"| {r.abi} | {exits} | {r.member or '-'} | {fields} | "
                    f"{'; '.join(r.changes) or ''} |"
                )
            out.append("")
            continue
        out.append(f"{kind}:")
        out.extend(wrap(chain, indent="  "))
        for r in rows:
            exits = ", ".join(f"{n}={v}" for n, v in r.exits)
            out.extend(wrap(f"{r.abi} [{r.order}] {exits} member {r.member or '-'}", indent="  "))
            if r.fields and (r.changes or r is rows[0]):
                fields = ", ".join(f"{p} {t}@{o}" for p, o, _, t in r.fields)
                out.extend(wrap(fields, indent="      "))
            first = [f"completion {rule}" for rule in r.duties] if r is rows[0] else []
            for ch in (*first, *r.changes):
                out.extend(wrap(ch, indent="    * "))
        out.append("")
    return "\n".join(out).rstrip() + "\n"
