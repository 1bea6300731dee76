# SPDX-License-Identifier: Apache-2.0
"""Read C struct and union declarations from kernel headers and patch files.

:func:`parse_c` takes the text of a header (``include/uapi/linux/kvm.h``) or
of a patch posted to kvm@vger (only the new side is read: ``+`` and context
lines; ``-`` lines and diff headers are dropped) and returns a
:class:`ParsedHeader`: every ``struct``/``union`` laid out as a
:class:`~coco_core.layout.Layout` (x86-64 natural alignment, via
:func:`~coco_core.layout.struct_of` / :func:`~coco_core.layout.union_of`) and
every ``#define`` whose value is an integer expression.

What it understands: nested and anonymous structs/unions, named inline members
(``struct { ... } req_certs;``), several declarators per line, arrays sized by
a number, a ``#define`` or simple arithmetic, the kernel's fixed-width types
(``__u8``..``__s64``, ``__le*``/``__be*`` as unsigned, ``__aligned_u64``), the
C base types of LP64, typedefs, ``__attribute__((packed))``/``__packed``, and
wrappers such as ``HINT_UNSAFE_IN_KVM(name)``. Preprocessor conditionals keep
their members (the userspace view: ``#ifndef __KERNEL__`` is taken) and are
recorded in :attr:`ParsedHeader.notes`, except blocks guarded by a macro named
in ``undefined`` (default ``__KVM_S390``), which are dropped because they
would shift the x86-64 layout.

Bitfields are rejected with a :class:`CParseError`: coco models flag words as
``IntFlag`` on a whole storage unit, so a bitfield in a proposal has to be
rewritten as its storage type before it can be compared.

A patch hunk usually shows only part of a struct. Complete inline members seen
in such a fragment (``struct { ... } coco;`` added inside ``kvm_run``'s union)
are kept in :attr:`ParsedHeader.members`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence

import attrs

from coco_core.errors import CParseError, LayoutError
from coco_core.layout import CType, Layout, MemberSpec, struct_of, union_of
from coco_core.layout import c_scalar as layout_c_scalar
from coco_core.review.cdecl import Aggregate, Decl, Parser, TypeRef, c_name, parse_fragment
from coco_core.review.cexpr import evaluate
from coco_core.review.csource import (
    Define,
    line_comments,
    split_directives,
    strip_comments,
    tokens,
)
from coco_core.review.patches import source_chunks

__all__ = ["CParseError", "ParsedHeader", "c_scalar", "evaluate", "parse_c"]


def c_scalar(name: str) -> CType:
    """The :class:`CType` of a scalar C type name (``__u64``, ``unsigned int``...).

    The table is :data:`coco_core.layout.C_SCALARS`, so a header's ``char``
    is the same type as a struct mirror's.

    :raises CParseError: the name is not a scalar coco knows.
    """
    try:
        return layout_c_scalar(name)
    except LayoutError as exc:
        raise CParseError(str(exc)) from None


def _scalar_or_none(name: str) -> CType | None:
    try:
        return layout_c_scalar(name)
    except LayoutError:
        return None


@attrs.frozen
class ParsedHeader:
    """What :func:`parse_c` found.

    :param structs: ``"struct NAME"``/``"union NAME"`` → layout; a bare
        ``NAME`` resolves too (``structs["kvm_run"]``).
    :param defines: every ``#define`` whose value is an integer expression.
    :param members: named inline members found outside a complete struct (patch
        fragments) and the named members of ``kvm_run``'s exit union.
    :param typedefs: typedef name → layout, for typedef'd structs.
    :param errors: declarations that could not be laid out (unknown type...),
        by name; :meth:`struct` raises the stored error.
    :param notes: preprocessor conditionals and other things a reader should know.
    :param patch: True if the text was a patch (only its new side was read).
    :param scoped_defines: the ``#define`` names made inside a struct or union
        (``KVM_EXIT_IO_IN`` in ``kvm_run``) or by an included header
        (``KVM_EXIT_HYPERCALL_LONG_MODE`` in ``asm/kvm.h``): not this text's exit reasons.
    :param member_exits: member → the ``KVM_EXIT_*`` names its comment gives
        (``/* KVM_EXIT_HYPERCALL */`` above ``struct { ... } hypercall;``).
    :param run_members: the named members of ``kvm_run``'s exit union, when the text
        defines ``struct kvm_run``.
    :param series: for patch mails, one line per mail read, in order (subject,
        Message-ID, the uapi headers it changes).
    :param patched_members: for a patch, the :attr:`members` with a line it adds
        (context lines only show what the base already had); None for plain C.
    :param patched_defines: for a patch, the ``#define`` names made on lines it adds.
    """

    structs: _Structs
    defines: dict[str, int]
    members: dict[str, Layout] = attrs.field(factory=dict)
    typedefs: dict[str, Layout] = attrs.field(factory=dict)
    errors: dict[str, CParseError] = attrs.field(factory=dict)
    notes: tuple[str, ...] = ()
    patch: bool = False
    scoped_defines: frozenset[str] = frozenset()
    member_exits: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    run_members: tuple[str, ...] = ()
    series: tuple[str, ...] = ()
    patched_members: frozenset[str] | None = None
    patched_defines: frozenset[str] | None = None

    def exit_reasons(self, *, patched: bool = False) -> dict[str, int]:
        """The ``KVM_EXIT_*`` defines this text makes at file scope: its exit reasons.

        :param patched: only those on lines a patch adds (:attr:`patched_defines`).
        """
        keep = self.patched_defines if patched else None
        return {
            k: v
            for k, v in self.defines.items()
            if k.startswith("KVM_EXIT_")
            and k not in self.scoped_defines
            and (keep is None or k in keep)
        }

    def new_members(self) -> dict[str, Layout]:
        """The :attr:`members` a patch adds or changes (all of them for plain C)."""
        keep = self.patched_members
        return {m: lay for m, lay in self.members.items() if keep is None or m in keep}

    def struct(self, name: str) -> Layout:
        """The layout called ``name``: a tag, a typedef, or a member name.

        Looks up ``struct NAME``/``union NAME`` (either spelling), typedefs,
        then :attr:`members`.

        :raises CParseError: nothing by that name, or it could not be laid out.
        """
        if name in self.structs:
            return self.structs[name]
        if name in self.typedefs:
            return self.typedefs[name]
        if name in self.members:
            return self.members[name]
        bare = name.rsplit(maxsplit=1)[-1]
        for key in (name, f"struct {bare}", f"union {bare}", bare):
            if key in self.errors:
                raise self.errors[key]
        known = ", ".join([*self.structs, *self.typedefs, *self.members]) or "none"
        raise CParseError(f"no struct, union or member named {name!r}; found: {known}")

    def names(self) -> list[str]:
        """Every name :meth:`struct` resolves, structs first."""
        return [*self.structs, *self.typedefs, *self.members]


class _Structs(dict[str, Layout]):
    """``{"struct NAME": layout}`` that also resolves a bare ``NAME``."""

    def _key(self, key: str) -> str:
        if not dict.__contains__(self, key):
            for k in (f"struct {key}", f"union {key}"):
                if dict.__contains__(self, k):
                    return k
        return key

    def __getitem__(self, key: str) -> Layout:
        value: Layout = dict.__getitem__(self, self._key(key))
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and dict.__contains__(self, self._key(key))

    def get(self, key: str, default: Layout | None = None) -> Layout | None:  # type: ignore[override]
        """Like :meth:`dict.get`, resolving a bare name."""
        return self.get(key, default)


# -- layout ---------------------------------------------------------------------------


@attrs.frozen
class _AlignedCType(CType):
    """A scalar member declared ``__attribute__((aligned(N)))``: placed at a multiple of N."""

    alignment: int = 1

    @property
    def align(self) -> int:
        """The declared alignment (never less than the natural one)."""
        return max(self.size, self.alignment)


def _aligned(t: CType | Layout, n: int) -> CType | Layout:
    """``t`` as a member declared ``__attribute__((aligned(n)))`` (GCC, Variable Attributes)."""
    if isinstance(t, Layout):
        return attrs.evolve(t, align=n, size=(t.size + n - 1) // n * n)
    return _AlignedCType(t.name, t.size, t.code, t.ctype, n)


class _Layouter:
    def __init__(
        self,
        aggregates: list[Aggregate],
        typedefs: dict[str, TypeRef],
        defines: dict[str, int],
        source: str,
    ) -> None:
        self.by_tag: dict[str, Aggregate] = {}
        for agg in aggregates:
            if agg.tag is not None:
                self.by_tag[c_name(agg.kind, agg.tag)] = agg
        self.typedefs = typedefs
        self.defines = defines
        self.source = source
        self.done: dict[str, Layout] = {}
        self.active: set[str] = set()

    def tagged(self, cname: str, line: int) -> Layout:
        if cname in self.done:
            return self.done[cname]
        agg = self.by_tag.get(cname)
        if agg is None:
            raise CParseError(
                f"unknown type {cname!r} (defined neither in the text nor in a header "
                "it includes that coco found)",
                line,
            )
        if cname in self.active:
            raise CParseError(f"{cname} contains itself", line)
        self.active.add(cname)
        try:
            lay = self.aggregate(agg)
        finally:
            self.active.discard(cname)
        self.done[cname] = lay
        return lay

    def resolve(self, tref: TypeRef) -> CType | Layout:
        if tref.body is not None:
            if tref.body.tag is not None:
                return self.tagged(tref.name, tref.line)
            return self.aggregate(tref.body)
        if tref.name.startswith(("struct ", "union ")):
            return self.tagged(tref.name, tref.line)
        known = _scalar_or_none(tref.name)
        if known is not None:  # coco's fixed-width types win over a header's own typedefs
            return known
        if tref.name in self.typedefs:
            target = self.typedefs[tref.name]
            if target.name == tref.name:
                raise CParseError(f"typedef {tref.name!r} refers to itself", tref.line)
            return self.resolve(target)
        raise CParseError(f"unknown type {tref.name!r}", tref.line)

    def aggregate(self, agg: Aggregate) -> Layout:
        specs: list[MemberSpec] = []
        for d in agg.members:
            mtype = self.resolve(d.type)
            count: int | None = None
            for dim in d.dims:
                if not dim:
                    raise CParseError(
                        f"flexible array member {d.name!r} has no size; coco lays out "
                        "fixed-size structs only",
                        d.line,
                    )
                try:
                    n = evaluate(dim, self.defines)
                except CParseError as exc:
                    raise CParseError(f"array size of {d.name!r}: {exc}", d.line) from None
                count = n if count is None else count * n
            if d.align is not None and d.align > mtype.align:
                mtype = _aligned(mtype, d.align)
            specs.append((d.name, mtype) if count is None else (d.name, mtype, count))
        name = c_name(agg.kind, agg.tag)
        if agg.kind == "struct":
            lay = struct_of(name, specs, packed=agg.packed, source=self.source)
        else:
            lay = union_of(name, specs, source=self.source)
            if agg.packed:
                widest = max((m.size for m in lay.members), default=0)
                lay = attrs.evolve(lay, size=widest, align=1, packed=True)
        if agg.align is not None and agg.align > lay.align:
            size = (lay.size + agg.align - 1) // agg.align * agg.align
            lay = attrs.evolve(lay, align=agg.align, size=size)
        return lay


def parse_c(
    text: str,
    *,
    source: str = "",
    undefined: Collection[str] = ("__KVM_S390",),
    includes: Sequence[tuple[str, str]] = (),
) -> ParsedHeader:
    """Parse C declarations (a header, a fragment, a patch, an excerpt or patch mails).

    :param text: the C text or the patch (:func:`coco_core.review.patches.source_chunks`
        says which lines are read).
    :param source: where the text comes from: recorded on every layout and named by
        every error (``FILE:LINE: ...``).
    :param undefined: macros taken as not defined: ``#ifdef``/``#if`` blocks
        guarded by one of them are dropped. Every other conditional block is kept.
    :param includes: ``(file, text)`` of headers ``text`` includes, read first (their
        types and defines are known to ``text``; their own errors are kept, not raised).
    :raises CParseError: the text is not C coco can read (unbalanced braces, a
        bitfield, a stray token), naming the file and the line.
    """
    src = source_chunks(text)
    units = [(name, [list(enumerate(t.splitlines(), 1))], False, True) for name, t in includes]
    units.append((source, src.chunks, src.patch, False))
    notes: list[str] = list(src.notes)
    aggregates: list[Aggregate] = []
    origin: dict[str, str] = {}  # struct/union tag -> the file it is defined in
    typedefs: dict[str, TypeRef] = {}
    loose: list[Decl] = []
    failed: dict[str, CParseError] = {}
    defines_raw: list[Define] = []
    comments: dict[int, str] = {}
    undef = frozenset(undefined)
    own = 0  # defines_raw[:own] come from the included headers
    for name, chunks, tolerant, included in units:
        if not included:
            own = len(defines_raw)
        for chunk in chunks:
            try:
                code, directives = split_directives(strip_comments(chunk))
                said = [] if included else notes  # an include's conditionals are its own
                toks = tokens(code, directives, undef, said, defines_raw)
                p = Parser(toks, directives, tolerant=tolerant, undefined=undef)
                if tolerant:
                    parse_fragment(p)
                else:
                    p.parse_top()
            except CParseError as exc:
                if included:  # a header coco cannot read: what it declares stays unknown
                    notes.append(f"{exc.located(name)} (included header not read)")
                    continue
                raise exc.located(name) from None
            if not included:
                comments.update(line_comments(chunk))
            failed.update({k: v.located(name) for k, v in p.failed.items()})
            for agg in p.aggregates:
                origin[c_name(agg.kind, agg.tag)] = name
            aggregates.extend(p.aggregates)
            typedefs.update(p.typedefs)
            if not included:
                loose.extend(p.loose)
                notes.extend(p.notes)
    defines: dict[str, int] = {}
    for df in defines_raw:
        if not df.value:
            continue
        try:
            defines[df.name] = evaluate(df.value, defines)
        except CParseError:
            continue
    lay = _Layouter(aggregates, typedefs, defines, source)
    structs = _Structs()
    errors: dict[str, CParseError] = dict(failed)
    for agg in aggregates:
        cname = c_name(agg.kind, agg.tag)
        try:
            structs[cname] = lay.tagged(cname, agg.line)
        except CParseError as exc:
            errors[cname] = exc.located(origin.get(cname, source))
    members: dict[str, Layout] = {}
    tdefs: dict[str, Layout] = {}
    for tname, tref in typedefs.items():
        try:
            t = lay.resolve(tref)
        except CParseError as exc:
            errors[tname] = exc.located(source)
            continue
        if isinstance(t, Layout):
            tdefs[tname] = t
    run = next((a for a in aggregates if a.tag == "kvm_run" and a.kind == "struct"), None)
    union = list(_exit_union(run)) if run is not None else []
    member_exits: dict[str, tuple[str, ...]] = {}
    added = src.added
    patched: set[str] = set()
    for d in (*_named(loose), *union):
        _add_member(lay, d, members, errors, source)
        named = _KVM_EXIT.findall(comments.get(d.type.line - 1, "") + comments.get(d.type.line, ""))
        if d.name is not None and named:
            member_exits.setdefault(d.name, tuple(dict.fromkeys(named)))
        if d.name is not None and added is not None and not added.isdisjoint(_lines(d)):
            patched.add(d.name)
    scoped = frozenset(df.name for df in defines_raw[own:] if df.depth > 0) | frozenset(
        df.name for df in defines_raw[:own]
    )
    return ParsedHeader(
        structs,
        defines,
        members,
        tdefs,
        errors,
        tuple(notes),
        src.patch,
        scoped_defines=scoped,
        member_exits=member_exits,
        run_members=tuple(d.name for d in union if d.name is not None),
        series=src.series,
        patched_members=None if added is None else frozenset(patched),
        patched_defines=None
        if added is None
        else frozenset(df.name for df in defines_raw[own:] if df.line in added),
    )


def _named(decls: Sequence[Decl]) -> Iterator[Decl]:
    """``decls``, with an anonymous ``union { ... };`` replaced by its members.

    A hunk that opens at kvm_run's ``union {`` (its ``struct kvm_run {`` line outside
    the hunk) shows the exit union as an anonymous aggregate: its members are the ones
    the patch touches.
    """
    for d in decls:
        if d.name is None and d.type.body is not None:
            yield from _named(d.type.body.members)
        else:
            yield d


def _lines(d: Decl) -> Iterator[int]:
    """The lines of a declaration: its type, its name, and every member of an inline body."""
    yield d.type.line
    yield d.line
    if d.type.body is not None:
        for m in d.type.body.members:
            yield from _lines(m)


_KVM_EXIT = re.compile(r"\bKVM_EXIT_[A-Z0-9_]+")


def _add_member(
    lay: _Layouter,
    d: Decl,
    members: dict[str, Layout],
    errors: dict[str, CParseError],
    source: str,
) -> None:
    if d.name is None or d.dims:
        return
    try:
        t = lay.resolve(d.type)
    except CParseError as exc:
        errors.setdefault(d.name, exc.located(source))
        return
    if isinstance(t, Layout):
        if not t.anonymous:
            t = attrs.evolve(t)  # the tagged struct, as the union holds it
        members.setdefault(d.name, t)


def _exit_union(run: Aggregate) -> Iterator[Decl]:
    """The members of ``kvm_run``'s first anonymous union (the exit union)."""
    for d in run.members:
        if d.name is None and d.type.body is not None and d.type.body.kind == "union":
            yield from d.type.body.members
            return
