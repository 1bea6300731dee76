# SPDX-License-Identifier: Apache-2.0
"""Compare two exit ABIs the way a kernel reviewer reads them.

:func:`compare_abis` lines up two :class:`~coco_core.abi.Abi` (or an
:class:`ImportedAbi` read from a header or a patch with
:mod:`coco_core.review.cparse`) and reports:

* **layouts**: for each pair of ``kvm_run`` union members, the fields added,
  removed, renamed (same place and size, new name: ``gfn`` → ``gpa``),
  retyped/widened (``__u32`` → ``__u64``) and moved (offset changed);
* **exit numbers**: same name with another number, names on one side only;
* **error spaces**: for exits both sides decode, raw values that collide (same
  raw, different meaning), statuses that need translation, and statuses a side
  cannot express (declared fallbacks);
* **completion duties** that differ.

Pairing rule for union members: members that decode the same neutral request
(the ``request_type`` of the decoders reading them) are paired, preferring
equal names; then members with equal names; then, where one side has no
decoders (an imported header), the member sharing most field names. An
explicit ``pairs={"coco": "snp_req_certs"}`` overrides all of that.

How the requests moved across every registered ABI is
:mod:`coco_core.review.history`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from coco_core.abi import Abi, CompletionDuty, ExitDecoder
from coco_core.errorspace import ErrorSpace
from coco_core.generic.uapi import EXIT_UNION_OFFSET, GENERIC_MEMBERS
from coco_core.layout import Layout
from coco_core.status import CoCoStatus

__all__ = [
    "AbiComparison",
    "DutyChange",
    "ExitChange",
    "FieldChange",
    "ImportedAbi",
    "MemberComparison",
    "SpaceComparison",
    "compare_abis",
    "compare_layouts",
    "leaves",
    "member_requests",
]

_UNION = EXIT_UNION_OFFSET
_PADDING_NAMES = ("pad", "padding", "reserved", "rsvd")
_GENERIC = GENERIC_MEMBERS


@attrs.frozen
class ImportedAbi:
    """A layout read from a C header or a patch, to compare against an ABI.

    It has union members and exit numbers (``KVM_EXIT_*`` defines) only: no
    decoders, error spaces or duties.
    """

    name: str
    source: str
    union_members: Mapping[str, Layout]
    exits: Mapping[str, int] = attrs.field(factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def decoders(self) -> tuple[ExitDecoder, ...]:
        """Always empty: a header carries no decoders."""
        return ()

    @property
    def error_spaces(self) -> tuple[ErrorSpace, ...]:
        """Always empty."""
        return ()

    @property
    def duties(self) -> tuple[CompletionDuty, ...]:
        """Always empty."""
        return ()

    @property
    def discriminators(self) -> dict[int, Any]:
        """Always empty."""
        return {}


AnyAbi = Abi | ImportedAbi


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


@attrs.frozen
class MemberComparison:
    """Two paired union members (either may be None: only on one side)."""

    member_a: str | None
    member_b: str | None
    size_a: int | None
    size_b: int | None
    paired_by: str  #: "request", "name", "fields", "explicit", "" if unpaired
    changes: tuple[FieldChange, ...]

    @property
    def identical(self) -> bool:
        """True if both sides exist and nothing changed."""
        return (
            self.member_a is not None
            and self.member_b is not None
            and not self.changes
            and self.size_a == self.size_b
        )


@attrs.frozen
class ExitChange:
    """An exit name whose number differs, or that one side lacks."""

    name: str
    a: int | None
    b: int | None


@attrs.frozen
class SpaceComparison:
    """The completion values of one exit under both ABIs."""

    exit_a: str
    exit_b: str
    space_a: str | None
    space_b: str | None
    #: raw values both spaces define with a different meaning: (raw, meaning A, meaning B)
    collisions: tuple[tuple[int, str, str], ...] = ()
    #: statuses written as different raw values: (status, raw A, raw B)
    translations: tuple[tuple[str, int, int], ...] = ()
    #: statuses A cannot express: (status, written as)
    fallbacks_a: tuple[tuple[str, str], ...] = ()
    fallbacks_b: tuple[tuple[str, str], ...] = ()

    @property
    def same(self) -> bool:
        """True if both exits use one space (or equal tables)."""
        return self.space_a == self.space_b and not (
            self.collisions or self.translations or self.fallbacks_a or self.fallbacks_b
        )


@attrs.frozen
class DutyChange:
    """A completion duty present on one side only, or different."""

    exit_name: str
    a: CompletionDuty | None
    b: CompletionDuty | None


@attrs.frozen
class AbiComparison:
    """Everything :func:`compare_abis` found; render with :meth:`render`."""

    a: str
    b: str
    members: tuple[MemberComparison, ...]
    exits: tuple[ExitChange, ...]
    spaces: tuple[SpaceComparison, ...]
    duties: tuple[DutyChange, ...]
    #: exits that decode the same request under another number:
    #: (exit in a, number in a, exit in b, number in b, request kind)
    renumbered: tuple[tuple[str, int, str, int, str], ...] = ()
    #: what the comparison left out, and why (an imported file declares only part)
    notes: tuple[str, ...] = ()

    @property
    def differs(self) -> bool:
        """True if anything differs."""
        return (
            any(not m.identical for m in self.members)
            or bool(self.exits)
            or any(not s.same for s in self.spaces)
            or bool(self.duties)
            or bool(self.renumbered)
        )

    def render(self, *, markdown: bool = False) -> str:
        """Plain text (80 columns) or Markdown."""
        from coco_core.review.render import render_comparison

        return render_comparison(self, markdown=markdown)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "a": self.a,
            "b": self.b,
            "members": [attrs.asdict(m) for m in self.members],
            "exits": [attrs.asdict(e) for e in self.exits],
            "renumbered": [
                {"a": ea, "a_number": na, "b": eb, "b_number": nb, "request": kind}
                for ea, na, eb, nb, kind in self.renumbered
            ],
            "spaces": [attrs.asdict(s) for s in self.spaces],
            "notes": list(self.notes),
            "duties": [
                {
                    "exit": d.exit_name,
                    "a": None if d.a is None else attrs.asdict(d.a),
                    "b": None if d.b is None else attrs.asdict(d.b),
                }
                for d in self.duties
            ],
        }


# -- members and requests -------------------------------------------------------------


def _member_of(abi: AnyAbi, dec: ExitDecoder, members: Mapping[str, Layout]) -> str | None:
    disc = abi.discriminators.get(dec.reason)
    if disc is not None:
        parts = disc.field.split(".")
        if len(parts) > 1 and parts[1] in members:
            return parts[1]
    base = dec.name.split("/", 1)[0].lower().removeprefix("kvm_exit_").removeprefix("x86_")
    if base in ("rdmsr", "wrmsr"):
        base = "msr"
    return base if base in members else None


def member_requests(abi: AnyAbi) -> dict[str, frozenset[str]]:
    """Union member → the kinds of neutral request its decoders produce."""
    members = abi.union_members
    out: dict[str, set[str]] = {m: set() for m in members}
    for dec in abi.decoders:
        m = _member_of(abi, dec, members)
        if m is not None:
            out[m].add(dec.request_type.kind)
    return {k: frozenset(v) for k, v in out.items()}


def leaves(lay: Layout) -> list[_Leaf]:
    """Every leaf field of a member layout, paths and offsets relative to the member."""
    return [
        _Leaf(p.partition(".")[2], off, size, ctype) for p, off, size, ctype in lay.flatten("m")
    ]


def _pair_members(
    a: AnyAbi, b: AnyAbi, explicit: Mapping[str, str]
) -> list[tuple[str | None, str | None, str]]:
    ma, mb = dict(a.union_members), dict(b.union_members)
    for x, y in explicit.items():
        if x not in ma:
            raise _config(f"--pair {x}:{y}: {a.name} has no union member {x!r}", list(ma))
        if y not in mb:
            raise _config(f"--pair {x}:{y}: {b.name} has no union member {y!r}", list(mb))
    ra, rb = member_requests(a), member_requests(b)
    pairs: list[tuple[str | None, str | None, str]] = []
    used_a: set[str] = set()
    used_b: set[str] = set()

    def pair(x: str, y: str, how: str) -> None:
        pairs.append((x, y, how))
        used_a.add(x)
        used_b.add(y)

    for x, y in explicit.items():
        pair(x, y, "explicit")
    # 1. same neutral request, equal names first
    for x in ma:
        if x in used_a or not ra.get(x):
            continue
        cands = [y for y in mb if y not in used_b and ra[x] & rb.get(y, frozenset())]
        if cands:
            pair(x, x if x in cands else cands[0], "request")
    # 2. equal names
    for x in ma:
        if x not in used_a and x in mb and x not in used_b:
            pair(x, x, "name")
    # 3. shared field names, where one side cannot say what it decodes: the most
    #    similar pairs first, over all members (not greedily in header order,
    #    which let `hypercall` take a struct that shares only `ret` and `flags`
    #    with it from `snp_req_certs`, which shares `gpa`, `npages`, `ret`)
    scored: list[tuple[float, int, int, str, str]] = []
    for ia, (x, lay_a) in enumerate(ma.items()):
        if x in used_a:
            continue
        names_a = {leaf.leaf for leaf in leaves(lay_a) if not leaf.padding}
        for y, lay_b in mb.items():
            if y in used_b or (ra.get(x) and rb.get(y)):
                continue
            names_b = {leaf.leaf for leaf in leaves(lay_b) if not leaf.padding}
            common = len(names_a & names_b)
            if common:
                # Jaccard similarity: shared names over all names, so a big union
                # member sharing a few common names (`ret`, `flags`) loses to a
                # small struct sharing nearly all of them.
                scored.append((-common / len(names_a | names_b), -common, ia, x, y))
    for *_, x, y in sorted(scored):
        if x not in used_a and y not in used_b:
            pair(x, y, "fields")
    for x in ma:
        if x not in used_a:
            pairs.append((x, None, ""))
    for y in mb:
        if y not in used_b:
            pairs.append((None, y, ""))
    return pairs


def _config(msg: str, known: Iterable[str]) -> Exception:
    from coco_core.errors import ConfigurationError

    return ConfigurationError(f"{msg}; members: {', '.join(known) or 'none'}")


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


# -- spaces ---------------------------------------------------------------------------


def _meaning(space: ErrorSpace, raw: int) -> str:
    s = space.decode(raw)
    return s.name if isinstance(s, CoCoStatus) else "unknown"


def compare_spaces(
    exit_a: str, exit_b: str, a: ErrorSpace | None, b: ErrorSpace | None
) -> SpaceComparison:
    """How the completion values of two exits differ."""
    if a is None or b is None or a is b:
        return SpaceComparison(
            exit_a, exit_b, None if a is None else a.id, None if b is None else b.id
        )
    collisions = tuple(
        (raw, f"{a.names[raw]} = {_meaning(a, raw)}", f"{b.names[raw]} = {_meaning(b, raw)}")
        for raw in sorted(a.names.keys() & b.names.keys())
        if _meaning(a, raw) != _meaning(b, raw)
    )
    translations = tuple(
        (s.name, a.encode(s), b.encode(s)) for s in CoCoStatus if a.encode(s) != b.encode(s)
    )
    fa = tuple((s.name, t.name) for s, t in a.fallbacks.items())
    fb = tuple((s.name, t.name) for s, t in b.fallbacks.items())
    return SpaceComparison(exit_a, exit_b, a.id, b.id, collisions, translations, fa, fb)


def _pair_decoders(a: AnyAbi, b: AnyAbi) -> list[tuple[ExitDecoder, ExitDecoder]]:
    out: list[tuple[ExitDecoder, ExitDecoder]] = []
    db = list(b.decoders)
    for da in a.decoders:
        match = next((x for x in db if x.name == da.name and x.vendor == da.vendor), None)
        if match is None:
            match = next(
                (
                    x
                    for x in db
                    if x.request_type is da.request_type
                    and x.vendor == da.vendor
                    and not x.fallback
                    and not da.fallback
                ),
                None,
            )
        if match is not None:
            db.remove(match)
            out.append((da, match))
    return out


# -- the comparison -------------------------------------------------------------------


def compare_abis(a: AnyAbi, b: AnyAbi, *, pairs: Mapping[str, str] | None = None) -> AbiComparison:
    """Compare ABI ``a`` (older, usually) with ``b``.

    :param pairs: explicit union-member pairs ``{member of a: member of b}``.
    :raises ConfigurationError: an explicit pair names a member a side lacks.
    """
    members: list[MemberComparison] = []
    ua, ub = a.union_members, b.union_members
    for x, y, how in _pair_members(a, b, pairs or {}):
        la = ua[x] if x is not None else None
        lb = ub[y] if y is not None else None
        changes = compare_layouts(la, lb) if la is not None and lb is not None else ()
        members.append(
            MemberComparison(
                x, y, None if la is None else la.size, None if lb is None else lb.size, how, changes
            )
        )
    ea, eb = a.exits, b.exits
    names = ea.keys() | eb.keys()
    if isinstance(a, ImportedAbi) or isinstance(b, ImportedAbi):
        # A header excerpt or a patch defines a few exits, not the whole list: compare
        # the names it defines and any number it gives that the other side uses.
        part = dict(ea) if isinstance(a, ImportedAbi) else dict(eb)
        other = eb if isinstance(a, ImportedAbi) else ea
        taken = {num: n for n, num in other.items()}
        names = set(part) | {taken[num] for num in part.values() if num in taken}
    exits = tuple(
        ExitChange(n, ea.get(n), eb.get(n))
        for n in sorted(names, key=lambda n: (ea.get(n, eb.get(n, 0)), n))
        if ea.get(n) != eb.get(n)
    )
    spaces: list[SpaceComparison] = []
    renumbered: list[tuple[str, int, str, int, str]] = []
    for da, db in _pair_decoders(a, b):
        sc = compare_spaces(da.name, db.name, da.error_space, db.error_space)
        spaces.append(sc)
        if da.reason != db.reason:
            kind = getattr(da.request_type, "kind", da.request_type.__name__)
            renumbered.append((da.name, da.reason, db.name, db.reason, kind))
    dmap_a = {d.exit_name: d for d in a.duties}
    dmap_b = {d.exit_name: d for d in b.duties}
    duties = tuple(
        DutyChange(e, dmap_a.get(e), dmap_b.get(e))
        for e in sorted(dmap_a.keys() | dmap_b.keys())
        if dmap_a.get(e) != dmap_b.get(e)
    )
    notes: list[str] = []
    for side, rest in ((a, b), (b, a)):
        if isinstance(side, ImportedAbi) and not isinstance(rest, ImportedAbi):
            # A file declares a struct or two, not a whole ABI: what only the registered
            # side has is not a difference, so name it once instead of listing it.
            left_out = [m.member_a or m.member_b for m in members if _only_on(m, rest)]
            members = [m for m in members if not _only_on(m, rest)]
            duties = ()
            if left_out:
                notes.append(
                    f"{side.name} declares no {', '.join(str(x) for x in left_out)} "
                    f"(members of {rest.name} not compared); no completion duties"
                )
    return AbiComparison(
        a.name,
        b.name,
        tuple(members),
        exits,
        tuple(spaces),
        duties,
        tuple(renumbered),
        tuple(notes),
    )


def _only_on(m: MemberComparison, abi: AnyAbi) -> bool:
    """True if ``m`` is a member only ``abi`` has."""
    name = m.member_a if m.member_b is None else m.member_b if m.member_a is None else None
    return name is not None and name in abi.union_members
