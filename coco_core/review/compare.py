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
equal names; then, against a file, the member whose ``/* KVM_EXIT_* */`` comment
names an exit number the other side's decoders read (how ``kvm_run``'s anonymous
members ``io``, ``hypercall``... are found); then members with equal names; then,
where one side has no decoders (an imported header), the member sharing most
field names. An
explicit ``pairs={"coco": "snp_req_certs"}`` overrides all of that.

How the requests moved across every registered ABI is
:mod:`coco_core.review.history`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

import attrs

from coco_core.abi import Abi, CompletionDuty, ExitDecoder
from coco_core.errors import ConfigurationError
from coco_core.errorspace import ErrorSpace
from coco_core.layout import Layout
from coco_core.review.fields import FieldChange, compare_layouts, leaves
from coco_core.review.imported import ImportedAbi
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


AnyAbi = Abi | ImportedAbi


@attrs.frozen
class MemberComparison:
    """Two paired union members (either may be None: only on one side)."""

    member_a: str | None
    member_b: str | None
    size_a: int | None
    size_b: int | None
    paired_by: str  #: "request", "exit", "name", "fields", "explicit", "" if unpaired
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


def member_exits(abi: AnyAbi) -> dict[str, frozenset[int]]:
    """Union member → the exit numbers it is read for.

    A registered ABI: the reasons of the decoders reading the member. A file: the
    ``/* KVM_EXIT_* */`` comment above the member, by the numbers the file defines.
    """
    if isinstance(abi, ImportedAbi):
        return {
            m: frozenset(abi.exits[n] for n in names if n in abi.exits)
            for m, names in abi.member_exits.items()
        }
    out: dict[str, set[int]] = {}
    for dec in abi.decoders:
        m = _member_of(abi, dec, abi.union_members)
        if m is not None:
            out.setdefault(m, set()).add(dec.reason)
    return {k: frozenset(v) for k, v in out.items()}


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

    def pair_sharing(
        sa: Mapping[str, AbstractSet[object]], sb: Mapping[str, AbstractSet[object]], how: str
    ) -> None:
        """Pair each member with one whose set shares an element, the same name first."""
        for x in ma:
            if x in used_a or not sa.get(x):
                continue
            cands = [y for y in mb if y not in used_b and sa[x] & sb.get(y, frozenset())]
            if cands:
                pair(x, x if x in cands else cands[0], how)

    for x, y in explicit.items():
        pair(x, y, "explicit")
    # 1. same neutral request
    pair_sharing(ra, rb, "request")
    # 2. a file's member read for the same exit number (its /* KVM_EXIT_* */ comment):
    #    the anonymous members of kvm_run's union
    files = isinstance(a, ImportedAbi) or isinstance(b, ImportedAbi)
    xa, xb = (member_exits(a), member_exits(b)) if files else ({}, {})
    pair_sharing(xa, xb, "exit")
    # 3. equal names
    for x in ma:
        if x not in used_a and x in mb and x not in used_b:
            pair(x, x, "name")
    # 4. shared field names, where one side cannot say what it decodes: the most
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
            if xa.get(x) and xb.get(y):  # both read for known exits, and not the same ones
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
    return ConfigurationError(f"{msg}; members: {', '.join(known) or 'none'}")


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
    if _partial(a) or _partial(b):
        # A header excerpt or a patch defines a few exits, not the whole list: compare
        # the names it defines and any number it gives that the other side uses.
        part = dict(ea) if _partial(a) else dict(eb)
        other = eb if _partial(a) else ea
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
    notes: list[str] = [
        f"{side.name}: {mail}"
        for side in (a, b)
        if isinstance(side, ImportedAbi)
        for mail in side.series
    ]
    for side, rest in ((a, b), (b, a)):
        if not isinstance(side, ImportedAbi) or _partial(rest):
            continue
        duties = ()
        only_rest = [m for m in members if _only_on(m, rest)]
        if side.whole:
            # kvm_run from a header: a registered member it lacks is a difference, unless
            # the header's member could not be laid out (then nothing can be said).
            for m in only_rest:
                name = str(m.member_a or m.member_b)
                if name in side.errors:
                    raise ConfigurationError(
                        f"{rest.name} member {name!r} cannot be compared: {side.errors[name]}"
                    )
            only_side = (
                []  # two whole headers: every member counts
                if isinstance(rest, ImportedAbi)
                else [m for m in members if _only_on(m, side)]
            )
            members = [m for m in members if m not in only_side]
            left = ", ".join(str(m.member_a or m.member_b) for m in only_side)
            notes.append(
                f"{side.name}: {len(only_side)} exit-union member(s) {rest.name} does not "
                f"register, not compared ({left or 'none'}); a header has no completion duties"
            )
            notes.extend(
                f"{side.name}: member {m} not laid out: {err}" for m, err in side.errors.items()
            )
            continue
        # A file declares a struct or two, not a whole ABI: what only the other side has
        # is not a difference, so name it once instead of listing it.
        members = [m for m in members if m not in only_rest]
        left = ", ".join(str(m.member_a or m.member_b) for m in only_rest)
        if left:
            notes.append(
                f"{side.name} declares no {left} (members of {rest.name} not compared); "
                "no completion duties"
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


def _partial(abi: AnyAbi) -> bool:
    """True for a file that declares part of an ABI (a struct, a patch), not ``kvm_run``."""
    return isinstance(abi, ImportedAbi) and not abi.whole


def _only_on(m: MemberComparison, abi: AnyAbi) -> bool:
    """True if ``m`` is a member only ``abi`` has."""
    name = m.member_a if m.member_b is None else m.member_b if m.member_a is None else None
    return name is not None and name in abi.union_members
