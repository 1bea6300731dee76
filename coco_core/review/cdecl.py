# SPDX-License-Identifier: Apache-2.0
"""C declarations from tokens: structs, unions, members, typedefs, attributes.

:class:`Parser` turns the tokens of one chunk into :class:`Aggregate` values
(the declarations as written, before any layout); :mod:`coco_core.review.cparse`
lays them out.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Literal

import attrs

from coco_core.errors import CParseError
from coco_core.review.cexpr import BASE_WORDS, QUALIFIERS, evaluate
from coco_core.review.csource import Directive, Tok

__all__ = ["Aggregate", "Decl", "Parser", "TypeRef", "c_name", "parse_fragment"]

# -- declarations ---------------------------------------------------------------------


@attrs.frozen
class TypeRef:
    """A type as written: a scalar/typedef name or ``struct TAG``, or an inline body."""

    name: str
    line: int
    body: Aggregate | None = None


@attrs.frozen
class Decl:
    type: TypeRef
    name: str | None
    dims: tuple[str, ...]
    line: int
    align: int | None = None  #: ``__attribute__((aligned(N)))`` after the declarator


@attrs.frozen
class Aggregate:
    kind: Literal["struct", "union"]
    tag: str | None
    members: tuple[Decl, ...]
    packed: bool
    align: int | None
    line: int


def c_name(kind: str, tag: str | None) -> str:
    return f"{kind} {tag}" if tag else kind


class Parser:
    def __init__(
        self,
        toks: list[Tok],
        directives: list[Directive],
        *,
        tolerant: bool,
        undefined: Collection[str],
    ) -> None:
        self.toks = toks
        self.i = 0
        self.directives = directives
        self.tolerant = tolerant
        self.undefined = frozenset(undefined)
        self.aggregates: list[Aggregate] = []  # every tagged definition
        self.typedefs: dict[str, TypeRef] = {}
        self.loose: list[Decl] = []
        self.failed: dict[str, CParseError] = {}
        self.notes: list[str] = []
        self.skip_depth = 0
        self.cond: list[bool] = []  # True where the block is dropped

    # token helpers
    def peek(self, k: int = 0) -> Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def line(self) -> int | None:
        t = self.peek()
        if t is not None:
            return t.line
        return self.toks[-1].line if self.toks else None

    def take(self) -> Tok:
        t = self.peek()
        if t is None:
            raise CParseError("unexpected end of input", self.line())
        self.i += 1
        return t

    def expect(self, text: str) -> Tok:
        t = self.take()
        if t.text != text:
            raise CParseError(f"expected {text!r}, found {t.text!r}", t.line)
        return t

    # top level
    def parse_top(self) -> None:
        while self.peek() is not None:
            t = self.peek()
            assert t is not None
            if t.text in ("struct", "union") and self._aggregate_ahead():
                start = self.i
                try:
                    self.parse_top_aggregate()
                except CParseError as exc:
                    if str(exc).find("unbalanced") >= 0:
                        raise
                    self._skip_failed(start, exc)
            elif t.text == "typedef":
                self.parse_typedef()
            elif t.text == "}":
                if not self.tolerant:
                    raise CParseError("unbalanced '}' outside any struct or union", t.line)
                self.take()
                self._skip_to_semicolon()
            else:
                self._skip_statement()

    def _skip_failed(self, start: int, exc: CParseError) -> None:
        """Record why a definition cannot be read and skip past its body."""
        self.i = start
        kind = self.take().text
        nxt = self.peek()
        tag = nxt.text if nxt is not None and nxt.text != "{" else None
        if tag is not None:
            self.failed[f"{kind} {tag}"] = exc
        depth = 0
        while self.peek() is not None:
            t = self.take()
            if t.text == "{":
                depth += 1
            elif t.text == "}":
                depth -= 1
                if depth == 0:
                    break
        self._skip_to_semicolon()

    def _aggregate_ahead(self) -> bool:
        j = 1
        named = False
        depth = 0
        while True:
            t = self.peek(j)
            if t is None:
                return False
            if t.text == "{" and depth == 0:
                return True
            if t.text in ("__attribute__", "__attribute", "__packed", "__aligned"):
                j += 1
                continue
            if t.text in ("(", ")"):
                depth += 1 if t.text == "(" else -1
                j += 1
                continue
            if depth > 0:
                j += 1
                continue
            if re.fullmatch(r"[A-Za-z_]\w*", t.text) and not named:
                named = True
                j += 1
                continue
            return False

    def _skip_statement(self) -> None:
        depth = 0
        while self.peek() is not None:
            t = self.take()
            if t.text == "{":
                depth += 1
            elif t.text == "}":
                if depth == 0:
                    self.i -= 1
                    return
                depth -= 1
            elif t.text == ";" and depth == 0:
                return
            elif t.text in ("struct", "union") and depth == 0 and self._aggregate_ahead_at():
                self.i -= 1
                return

    def _aggregate_ahead_at(self) -> bool:
        self.i -= 1
        ok = self._aggregate_ahead()
        self.i += 1
        return ok

    def _skip_to_semicolon(self) -> None:
        while self.peek() is not None:
            t = self.take()
            if t.text == ";":
                return
            if t.text in ("{", "}"):
                self.i -= 1
                return

    def parse_top_aggregate(self) -> None:
        agg = self.parse_aggregate()
        decls = self.parse_declarators(TypeRef(c_name(agg.kind, agg.tag), agg.line, agg))
        if decls and (self.tolerant or agg.tag is None):
            # a member of a struct whose opening line is outside the hunk
            self.loose.extend(decls)

    def parse_typedef(self) -> None:
        self.expect("typedef")
        t = self.peek()
        if t is not None and t.text in ("struct", "union") and self._aggregate_ahead():
            agg = self.parse_aggregate()
            tref = TypeRef(c_name(agg.kind, agg.tag), agg.line, agg)
        else:
            try:
                tref = self.parse_type()
            except CParseError:
                self._skip_statement()
                return
        for d in self.parse_declarators(tref):
            if d.name is not None and not d.dims:
                self.typedefs[d.name] = d.type

    def parse_attributes(self) -> tuple[bool, int | None]:
        packed = False
        align: int | None = None
        while True:
            t = self.peek()
            if t is None:
                return packed, align
            if t.text == "__packed":
                self.take()
                packed = True
            elif t.text in ("__attribute__", "__attribute"):
                self.take()
                start = self.i
                self.expect("(")
                depth = 1
                words: list[str] = []
                while depth:
                    x = self.take()
                    if x.text == "(":
                        depth += 1
                    elif x.text == ")":
                        depth -= 1
                    words.append(x.text)
                text = " ".join(words)
                if re.search(r"\b_*packed_*\b", text):
                    packed = True
                m = re.search(r"\b_*aligned_*\s*\(\s*(\w+)\s*\)", text)
                if m is not None:
                    align = evaluate(m.group(1), {})
                elif re.search(r"\b_*aligned_*\b", text):
                    align = 16
                del start
            elif t.text in ("__aligned",):
                self.take()
                self.expect("(")
                n = self.take()
                self.expect(")")
                align = evaluate(n.text, {})
            else:
                return packed, align

    def parse_aggregate(self) -> Aggregate:
        kw = self.take()
        kind: Literal["struct", "union"] = "struct" if kw.text == "struct" else "union"
        packed, align = self.parse_attributes()
        tag: str | None = None
        t = self.peek()
        if t is not None and t.text != "{":
            tag = self.take().text
        packed2, align2 = self.parse_attributes()
        open_tok = self.expect("{")
        members: list[Decl] = []
        while True:
            t = self.peek()
            if t is None:
                what = c_name(kind, tag)
                raise CParseError(
                    f"unbalanced braces: {what} opened at line {open_tok.line} is never closed",
                    open_tok.line,
                )
            if t.text == "}":
                self.take()
                break
            if t.text == ";":
                self.take()
                continue
            members.extend(self.parse_member())
        packed3, align3 = self.parse_attributes()
        aligns = [a for a in (align, align2, align3) if a is not None]
        agg = Aggregate(
            kind,
            tag,
            tuple(members),
            packed or packed2 or packed3,
            max(aligns) if aligns else None,
            kw.line,
        )
        if tag is not None:
            self.aggregates.append(agg)
        return agg

    def parse_type(self) -> TypeRef:
        t = self.peek()
        if t is None:
            raise CParseError("expected a type", self.line())
        while t is not None and t.text in QUALIFIERS:
            self.take()
            t = self.peek()
        if t is None:
            raise CParseError("expected a type", self.line())
        line = t.line
        if t.text in ("struct", "union", "enum"):
            if t.text != "enum" and self._aggregate_ahead():
                agg = self.parse_aggregate()
                return TypeRef(c_name(agg.kind, agg.tag), line, agg)
            kw = self.take().text
            name = self.take()
            if kw == "enum":
                return TypeRef("int", line)
            return TypeRef(f"{kw} {name.text}", line)
        if t.text in BASE_WORDS:
            words: list[str] = []
            while (x := self.peek()) is not None and x.text in BASE_WORDS | QUALIFIERS:
                w = self.take().text
                if w not in QUALIFIERS:
                    words.append(w)
            return TypeRef(" ".join(words), line)
        if not re.fullmatch(r"[A-Za-z_]\w*", t.text):
            raise CParseError(f"expected a type, found {t.text!r}", line)
        self.take()
        while (x := self.peek()) is not None and x.text in QUALIFIERS:
            self.take()
        return TypeRef(t.text, line)

    def parse_member(self) -> list[Decl]:
        start = self.peek()
        assert start is not None
        if start.text == "\x00":
            self.take()
            return []
        nxt = self.peek(1)
        if nxt is not None and nxt.text == "(" and re.fullmatch(r"[A-Za-z_]\w*", start.text):
            # a macro that declares a member, e.g. __DECLARE_FLEX_ARRAY(type, name)
            self.take()
            depth = 0
            while True:
                t = self.take()
                depth += {"(": 1, ")": -1}.get(t.text, 0)
                if depth == 0:
                    break
            self.expect(";")
            macro = TypeRef(f"{start.text}(...)", start.line)
            return [Decl(macro, f"<{start.text}>", (), start.line)]
        tref = self.parse_type()
        return self.parse_declarators(tref)

    def parse_declarators(self, tref: TypeRef) -> list[Decl]:
        decls: list[Decl] = []
        self.parse_attributes()
        t = self.peek()
        if t is not None and t.text == ";":
            self.take()
            if tref.body is not None and tref.body.tag is None:
                return [Decl(tref, None, (), tref.line)]
            return []
        while True:
            t = self.take()
            if t.text == "*":
                raise CParseError(
                    f"pointer member in a uapi struct is not supported (at {t.text!r})", t.line
                )
            name = t.text
            if not re.fullmatch(r"[A-Za-z_]\w*", name):
                raise CParseError(f"expected a member name, found {name!r}", t.line)
            nxt = self.peek()
            if nxt is not None and nxt.text == "(":
                # a wrapper macro such as HINT_UNSAFE_IN_KVM(immediate_exit)
                self.take()
                inner = self.take()
                self.expect(")")
                self.notes.append(f"line {t.line}: {name}({inner.text}) read as {inner.text}")
                name = inner.text
            dims: list[str] = []
            while (nxt := self.peek()) is not None and nxt.text == "[":
                self.take()
                parts: list[str] = []
                while (x := self.take()).text != "]":
                    parts.append(x.text)
                dims.append(" ".join(parts))
            nxt = self.peek()
            if nxt is not None and nxt.text == ":":
                raise CParseError(
                    f"bitfield {name!r} is not supported: declare its storage unit "
                    f"(e.g. a {tref.name} flags word) and describe the bits separately",
                    nxt.line,
                )
            _, align = self.parse_attributes()
            decls.append(Decl(tref, name, tuple(dims), t.line, align))
            sep = self.take()
            if sep.text == ";":
                return decls
            if sep.text != ",":
                raise CParseError(
                    f"expected ';' after member {name!r}, found {sep.text!r}", sep.line
                )


def parse_fragment(p: Parser) -> None:
    """Parse one hunk: complete definitions and inline members, skipping the rest.

    A hunk may open inside a struct and end before it closes; anything that
    cannot be read is skipped up to the next ``;`` and parsing resumes, so that
    complete ``struct NAME { ... };`` definitions and ``struct { ... } name;``
    members are still found.
    """
    while p.peek() is not None:
        t = p.peek()
        assert t is not None
        start = p.i
        try:
            if t.text in ("struct", "union") and p._aggregate_ahead():
                p.parse_top_aggregate()
            elif t.text == "typedef":
                p.parse_typedef()
            elif t.text in ("{", "}", ";", "\x00"):
                p.take()
            else:
                try:
                    decls = p.parse_member()
                    p.loose.extend(
                        d for d in decls if d.type.name.startswith(("struct ", "union "))
                    )
                except CParseError:
                    p.i = start
                    p._skip_statement()
                if p.i == start:
                    p.take()
        except CParseError as exc:
            if "bitfield" in str(exc):
                raise
            p.i = start + 1
