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

import ctypes
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Literal

import attrs

from coco_core.errors import CParseError
from coco_core.layout import CType, Layout, MemberSpec, struct_of, union_of

__all__ = ["CParseError", "ParsedHeader", "c_scalar", "evaluate", "parse_c"]


# -- scalar types (x86-64 LP64) -------------------------------------------------------


def _t(name: str, size: int, code: str, ct: object) -> CType:
    return CType(name, size, code, ct)


_U8 = (1, "B", ctypes.c_uint8)
_S8 = (1, "b", ctypes.c_int8)
_U16 = (2, "H", ctypes.c_uint16)
_S16 = (2, "h", ctypes.c_int16)
_U32 = (4, "I", ctypes.c_uint32)
_S32 = (4, "i", ctypes.c_int32)
_U64 = (8, "Q", ctypes.c_uint64)
_S64 = (8, "q", ctypes.c_int64)

_SCALAR_SPECS: dict[str, tuple[int, str, object]] = {
    "__u8": _U8,
    "__s8": _S8,
    "__u16": _U16,
    "__s16": _S16,
    "__u32": _U32,
    "__s32": _S32,
    "__u64": _U64,
    "__s64": _S64,
    "__le16": _U16,
    "__le32": _U32,
    "__le64": _U64,
    "__be16": _U16,
    "__be32": _U32,
    "__be64": _U64,
    "__aligned_u64": _U64,
    "__aligned_le64": _U64,
    "__aligned_be64": _U64,
    "u8": _U8,
    "u16": _U16,
    "u32": _U32,
    "u64": _U64,
    "s8": _S8,
    "s16": _S16,
    "s32": _S32,
    "s64": _S64,
    "uint8_t": _U8,
    "uint16_t": _U16,
    "uint32_t": _U32,
    "uint64_t": _U64,
    "int8_t": _S8,
    "int16_t": _S16,
    "int32_t": _S32,
    "int64_t": _S64,
    "char": (1, "b", ctypes.c_char),
    "signed char": _S8,
    "unsigned char": _U8,
    "short": _S16,
    "unsigned short": _U16,
    "int": _S32,
    "unsigned int": _U32,
    "long": _S64,
    "unsigned long": _U64,
    "long long": _S64,
    "unsigned long long": _U64,
    "_Bool": (1, "?", ctypes.c_bool),
    "bool": (1, "?", ctypes.c_bool),
}

# Spellings that mean the same type ("unsigned" alone, "long int", ...).
_CANON = {
    "unsigned": "unsigned int",
    "signed": "int",
    "signed int": "int",
    "short int": "short",
    "signed short": "short",
    "unsigned short int": "unsigned short",
    "long int": "long",
    "signed long": "long",
    "unsigned long int": "unsigned long",
    "long long int": "long long",
    "signed long long": "long long",
    "unsigned long long int": "unsigned long long",
}

_BASE_WORDS = frozenset({"unsigned", "signed", "char", "short", "int", "long"})
_QUALIFIERS = frozenset({"const", "volatile", "__volatile__", "__user", "__iomem", "__rcu"})


def c_scalar(name: str) -> CType:
    """The :class:`CType` of a scalar C type name (``__u64``, ``unsigned int``...).

    :raises CParseError: the name is not a scalar coco knows.
    """
    canon = _CANON.get(name, name)
    spec = _SCALAR_SPECS.get(canon)
    if spec is None:
        raise CParseError(f"unknown C type {name!r}")
    size, code, ct = spec
    return _t(canon, size, code, ct)


# -- constant expressions -------------------------------------------------------------

_NUM = re.compile(r"(0[xX][0-9a-fA-F]+|\d+)([uUlL]*)")
_EXPR_TOKEN = re.compile(
    r"\s*(?:(0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*)|([A-Za-z_]\w*)|(<<|>>|\|\||&&|[-+*/%()~|&^!,]))"
)

_FUNCS: dict[str, Callable[[int], int]] = {
    "_BITULL": lambda a: 1 << a,
    "_BITUL": lambda a: 1 << a,
    "BIT": lambda a: 1 << a,
    "BIT_ULL": lambda a: 1 << a,
    "_UL": lambda a: a,
    "_ULL": lambda a: a,
    "UL": lambda a: a,
    "ULL": lambda a: a,
}

_CAST_WORDS = _BASE_WORDS | frozenset(_SCALAR_SPECS) | {"__u64", "__u32"}


class _ExprError(Exception):
    pass


def evaluate(expr: str, defines: Mapping[str, int]) -> int:
    """Evaluate a C integer constant expression with ``defines`` in scope.

    Supports decimal, hex and octal literals with ``U``/``L`` suffixes,
    ``_BITULL(n)``, ``BIT(n)``, ``_AC(x, ULL)``, casts to integer types, and the
    operators ``+ - * / % << >> | & ^ ~`` with C precedence.

    :raises CParseError: the expression is not an integer constant expression.
    """
    toks: list[str] = []
    pos = 0
    text = expr.strip()
    while pos < len(text):
        m = _EXPR_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise CParseError(f"cannot evaluate {expr!r}: unexpected {text[pos:]!r}")
        toks.append(m.group(0).strip())
        pos = m.end()
    if not toks:
        raise CParseError(f"cannot evaluate {expr!r}: empty")
    p = _ExprParser(toks, defines)
    try:
        value = p.parse(0)
        if p.i != len(toks):
            raise _ExprError(f"unexpected {toks[p.i]!r}")
    except _ExprError as exc:
        raise CParseError(f"cannot evaluate {expr!r}: {exc}") from None
    return value


_BINARY = {
    "||": 1,
    "&&": 2,
    "|": 3,
    "^": 4,
    "&": 5,
    "<<": 7,
    ">>": 7,
    "+": 8,
    "-": 8,
    "*": 9,
    "/": 9,
    "%": 9,
}


class _ExprParser:
    def __init__(self, toks: list[str], defines: Mapping[str, int]) -> None:
        self.toks = toks
        self.i = 0
        self.defines = defines

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str:
        t = self.peek()
        if t is None:
            raise _ExprError("unexpected end")
        self.i += 1
        return t

    def expect(self, t: str) -> None:
        if self.take() != t:
            raise _ExprError(f"expected {t!r}")

    def parse(self, min_prec: int) -> int:
        left = self.unary()
        while True:
            op = self.peek()
            prec = _BINARY.get(op or "")
            if op is None or prec is None or prec < min_prec:
                return left
            self.i += 1
            right = self.parse(prec + 1)
            left = _apply(op, left, right)

    def unary(self) -> int:
        t = self.take()
        if t == "-":
            return -self.unary()
        if t == "+":
            return self.unary()
        if t == "~":
            return ~self.unary() & ((1 << 64) - 1)
        if t == "!":
            return int(not self.unary())
        if t == "(":
            # a cast such as (__u64) or (unsigned long long)
            j = self.i
            words: list[str] = []
            while j < len(self.toks) and self.toks[j] in _CAST_WORDS:
                words.append(self.toks[j])
                j += 1
            if words and j < len(self.toks) and self.toks[j] == ")":
                self.i = j + 1
                return self.unary()
            v = self.parse(0)
            self.expect(")")
            return v
        m = _NUM.fullmatch(t)
        if m is not None:
            digits = m.group(1)
            if digits.startswith(("0x", "0X")):
                return int(digits, 16)
            if len(digits) > 1 and digits.startswith("0"):
                return int(digits, 8)
            return int(digits)
        if t in _FUNCS or t == "_AC":
            self.expect("(")
            arg = self.parse(0)
            if t == "_AC":
                self.expect(",")
                self.take()  # the suffix: UL, ULL
                self.expect(")")
                return arg
            self.expect(")")
            return _FUNCS[t](arg)
        if t in self.defines:
            return self.defines[t]
        raise _ExprError(f"unknown name {t!r}")


def _apply(op: str, a: int, b: int) -> int:
    if op in ("/", "%") and b == 0:
        raise _ExprError("division by zero")
    ops = {
        "||": lambda: int(bool(a) or bool(b)),
        "&&": lambda: int(bool(a) and bool(b)),
        "|": lambda: a | b,
        "^": lambda: a ^ b,
        "&": lambda: a & b,
        "<<": lambda: a << b,
        ">>": lambda: a >> b,
        "+": lambda: a + b,
        "-": lambda: a - b,
        "*": lambda: a * b,
        "/": lambda: a // b,
        "%": lambda: a % b,
    }
    return ops[op]()


# -- source lines ---------------------------------------------------------------------

_DIFF_HEADER = re.compile(r"^(diff --git |index |--- |\+\+\+ |new file mode|deleted file mode)")


def _is_patch(lines: list[str]) -> bool:
    return any(ln.startswith("@@ ") for ln in lines) and any(
        ln.startswith(("--- ", "+++ ", "diff --git ")) for ln in lines
    )


def _source_lines(text: str) -> tuple[list[tuple[int, str]], bool, list[tuple[int, int]]]:
    """``(line number, text)`` of the lines to read, whether it is a patch, hunk spans."""
    lines = text.splitlines()
    if not _is_patch(lines):
        return list(enumerate(lines, 1)), False, []
    out: list[tuple[int, str]] = []
    hunks: list[tuple[int, int]] = []
    in_hunk = False
    for no, ln in enumerate(lines, 1):
        if ln.startswith("@@ "):
            in_hunk = True
            hunks.append((len(out), len(out)))
            continue
        if not in_hunk:
            continue
        if _DIFF_HEADER.match(ln) or (ln.startswith("-- ") and ln.strip() == "--"):
            in_hunk = False
            continue
        if ln.startswith(("+", " ")):
            out.append((no, ln[1:]))
        elif ln == "":
            out.append((no, ""))
        elif ln.startswith(("-", "\\")):
            continue
        else:
            in_hunk = False
            continue
        start, _ = hunks[-1]
        hunks[-1] = (start, len(out))
    return out, True, hunks


# -- tokens ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<id>[A-Za-z_]\w*)|(?P<num>0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*)"
    r"|(?P<op><<|>>|[{}()\[\];,:*+\-/%|&^~=.<>?!])|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'))"
)


@attrs.frozen
class _Tok:
    text: str
    line: int


def _strip_comments(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    in_block = False
    for no, ln in lines:
        res = []
        i = 0
        while i < len(ln):
            if in_block:
                end = ln.find("*/", i)
                if end < 0:
                    i = len(ln)
                else:
                    in_block = False
                    i = end + 2
                    res.append(" ")
                continue
            if ln.startswith("/*", i):
                in_block = True
                i += 2
                continue
            if ln.startswith("//", i):
                break
            if ln[i] == '"':
                j = i + 1
                while j < len(ln) and ln[j] != '"':
                    j += 2 if ln[j] == "\\" else 1
                res.append(ln[i : j + 1])
                i = j + 1
                continue
            res.append(ln[i])
            i += 1
        out.append((no, "".join(res)))
    return out


@attrs.frozen
class _Directive:
    line: int
    text: str


def _split_directives(
    lines: list[tuple[int, str]],
) -> tuple[list[tuple[int, str]], list[_Directive]]:
    """Separate preprocessor lines (joined over ``\\``) from code, keeping order marks."""
    code: list[tuple[int, str]] = []
    directives: list[_Directive] = []
    i = 0
    while i < len(lines):
        no, ln = lines[i]
        if ln.lstrip().startswith("#"):
            text = ln.strip()
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1] + " " + lines[i][1].strip()
            directives.append(_Directive(no, text))
            code.append((no, "\x00"))  # a marker: directive number len(directives)-1
        else:
            code.append((no, ln))
        i += 1
    return code, directives


# -- declarations ---------------------------------------------------------------------


@attrs.frozen
class _TypeRef:
    """A type as written: a scalar/typedef name or ``struct TAG``, or an inline body."""

    name: str
    line: int
    body: _Aggregate | None = None


@attrs.frozen
class _Decl:
    type: _TypeRef
    name: str | None
    dims: tuple[str, ...]
    line: int


@attrs.frozen
class _Aggregate:
    kind: Literal["struct", "union"]
    tag: str | None
    members: tuple[_Decl, ...]
    packed: bool
    align: int | None
    line: int


def _c_name(kind: str, tag: str | None) -> str:
    return f"{kind} {tag}" if tag else kind


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
    """

    structs: _Structs
    defines: dict[str, int]
    members: dict[str, Layout] = attrs.field(factory=dict)
    typedefs: dict[str, Layout] = attrs.field(factory=dict)
    errors: dict[str, CParseError] = attrs.field(factory=dict)
    notes: tuple[str, ...] = ()
    patch: bool = False

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


class _Parser:
    def __init__(
        self,
        toks: list[_Tok],
        directives: list[_Directive],
        *,
        tolerant: bool,
        undefined: Collection[str],
    ) -> None:
        self.toks = toks
        self.i = 0
        self.directives = directives
        self.tolerant = tolerant
        self.undefined = frozenset(undefined)
        self.aggregates: list[_Aggregate] = []  # every tagged definition
        self.typedefs: dict[str, _TypeRef] = {}
        self.loose: list[_Decl] = []
        self.failed: dict[str, CParseError] = {}
        self.notes: list[str] = []
        self.skip_depth = 0
        self.cond: list[bool] = []  # True where the block is dropped

    # token helpers
    def peek(self, k: int = 0) -> _Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def line(self) -> int | None:
        t = self.peek()
        if t is not None:
            return t.line
        return self.toks[-1].line if self.toks else None

    def take(self) -> _Tok:
        t = self.peek()
        if t is None:
            raise CParseError("unexpected end of input", self.line())
        self.i += 1
        return t

    def expect(self, text: str) -> _Tok:
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
        decls = self.parse_declarators(_TypeRef(_c_name(agg.kind, agg.tag), agg.line, agg))
        if decls and (self.tolerant or agg.tag is None):
            # a member of a struct whose opening line is outside the hunk
            self.loose.extend(decls)

    def parse_typedef(self) -> None:
        self.expect("typedef")
        t = self.peek()
        if t is not None and t.text in ("struct", "union") and self._aggregate_ahead():
            agg = self.parse_aggregate()
            tref = _TypeRef(_c_name(agg.kind, agg.tag), agg.line, agg)
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

    def parse_aggregate(self) -> _Aggregate:
        kw = self.take()
        kind: Literal["struct", "union"] = "struct" if kw.text == "struct" else "union"
        packed, align = self.parse_attributes()
        tag: str | None = None
        t = self.peek()
        if t is not None and t.text != "{":
            tag = self.take().text
        packed2, align2 = self.parse_attributes()
        open_tok = self.expect("{")
        members: list[_Decl] = []
        while True:
            t = self.peek()
            if t is None:
                what = _c_name(kind, tag)
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
        agg = _Aggregate(
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

    def parse_type(self) -> _TypeRef:
        t = self.peek()
        if t is None:
            raise CParseError("expected a type", self.line())
        while t is not None and t.text in _QUALIFIERS:
            self.take()
            t = self.peek()
        if t is None:
            raise CParseError("expected a type", self.line())
        line = t.line
        if t.text in ("struct", "union", "enum"):
            if t.text != "enum" and self._aggregate_ahead():
                agg = self.parse_aggregate()
                return _TypeRef(_c_name(agg.kind, agg.tag), line, agg)
            kw = self.take().text
            name = self.take()
            if kw == "enum":
                return _TypeRef("int", line)
            return _TypeRef(f"{kw} {name.text}", line)
        if t.text in _BASE_WORDS:
            words: list[str] = []
            while (x := self.peek()) is not None and x.text in _BASE_WORDS | _QUALIFIERS:
                w = self.take().text
                if w not in _QUALIFIERS:
                    words.append(w)
            return _TypeRef(" ".join(words), line)
        if not re.fullmatch(r"[A-Za-z_]\w*", t.text):
            raise CParseError(f"expected a type, found {t.text!r}", line)
        self.take()
        while (x := self.peek()) is not None and x.text in _QUALIFIERS:
            self.take()
        return _TypeRef(t.text, line)

    def parse_member(self) -> list[_Decl]:
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
            macro = _TypeRef(f"{start.text}(...)", start.line)
            return [_Decl(macro, f"<{start.text}>", (), start.line)]
        tref = self.parse_type()
        return self.parse_declarators(tref)

    def parse_declarators(self, tref: _TypeRef) -> list[_Decl]:
        decls: list[_Decl] = []
        self.parse_attributes()
        t = self.peek()
        if t is not None and t.text == ";":
            self.take()
            if tref.body is not None and tref.body.tag is None:
                return [_Decl(tref, None, (), tref.line)]
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
            self.parse_attributes()
            decls.append(_Decl(tref, name, tuple(dims), t.line))
            sep = self.take()
            if sep.text == ";":
                return decls
            if sep.text != ",":
                raise CParseError(
                    f"expected ';' after member {name!r}, found {sep.text!r}", sep.line
                )


# -- layout ---------------------------------------------------------------------------


class _Layouter:
    def __init__(
        self,
        aggregates: list[_Aggregate],
        typedefs: dict[str, _TypeRef],
        defines: dict[str, int],
        source: str,
    ) -> None:
        self.by_tag: dict[str, _Aggregate] = {}
        for agg in aggregates:
            if agg.tag is not None:
                self.by_tag[_c_name(agg.kind, agg.tag)] = agg
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
            raise CParseError(f"unknown type {cname!r} (not defined in this text)", line)
        if cname in self.active:
            raise CParseError(f"{cname} contains itself", line)
        self.active.add(cname)
        try:
            lay = self.aggregate(agg)
        finally:
            self.active.discard(cname)
        self.done[cname] = lay
        return lay

    def resolve(self, tref: _TypeRef) -> CType | Layout:
        if tref.body is not None:
            if tref.body.tag is not None:
                return self.tagged(tref.name, tref.line)
            return self.aggregate(tref.body)
        if tref.name.startswith(("struct ", "union ")):
            return self.tagged(tref.name, tref.line)
        if tref.name in self.typedefs:
            target = self.typedefs[tref.name]
            if target.name == tref.name:
                raise CParseError(f"typedef {tref.name!r} refers to itself", tref.line)
            return self.resolve(target)
        try:
            return c_scalar(tref.name)
        except CParseError:
            raise CParseError(f"unknown type {tref.name!r}", tref.line) from None

    def aggregate(self, agg: _Aggregate) -> Layout:
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
            specs.append((d.name, mtype) if count is None else (d.name, mtype, count))
        name = _c_name(agg.kind, agg.tag)
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


def _tokens(
    code: list[tuple[int, str]],
    directives: list[_Directive],
    undefined: frozenset[str],
    notes: list[str],
    defines_raw: list[tuple[str, str, int]],
) -> list[_Tok]:
    out: list[_Tok] = []
    d_index = 0
    dropped: list[bool] = []
    for no, ln in code:
        if ln == "\x00":
            d = directives[d_index]
            d_index += 1
            _directive(d, dropped, undefined, notes, defines_raw)
            continue
        if any(dropped):
            continue
        pos = 0
        while pos < len(ln):
            if ln[pos:].strip() == "":
                break
            m = _TOKEN.match(ln, pos)
            if m is None:
                raise CParseError(f"unexpected character {ln[pos:].strip()[:1]!r}", no)
            out.append(_Tok(m.group(0).strip(), no))
            pos = m.end()
    return out


def _directive(
    d: _Directive,
    dropped: list[bool],
    undefined: frozenset[str],
    notes: list[str],
    defines_raw: list[tuple[str, str, int]],
) -> None:
    m = re.match(r"#\s*(\w+)\s*(.*)$", d.text)
    if m is None:
        return
    word, rest = m.group(1), m.group(2).strip()
    if word in ("ifdef", "ifndef", "if"):
        names = re.findall(r"[A-Za-z_]\w*", rest)
        guard = [n for n in names if n in undefined]
        drop = bool(guard) and word != "ifndef" and "!" not in rest
        dropped.append(drop)
        how = "dropped" if drop else "members kept"
        notes.append(f"line {d.line}: #{word} {rest} ({how})")
    elif word in ("else", "elif"):
        if dropped:
            dropped[-1] = not dropped[-1] if word == "else" else False
        notes.append(f"line {d.line}: #{word} {rest}".rstrip() + " (members kept)")
    elif word == "endif":
        if dropped:
            dropped.pop()
    elif word == "define" and not any(dropped):
        dm = re.match(r"([A-Za-z_]\w*)(\(?)\s*(.*)$", rest)
        if dm is not None and not dm.group(2):
            defines_raw.append((dm.group(1), dm.group(3).strip(), d.line))


def parse_c(
    text: str,
    *,
    source: str = "",
    undefined: Collection[str] = ("__KVM_S390",),
) -> ParsedHeader:
    """Parse C declarations (a header, a fragment, or a patch's new side).

    :param text: the C text or the patch.
    :param source: where the text comes from, recorded on every layout.
    :param undefined: macros taken as not defined: ``#ifdef``/``#if`` blocks
        guarded by one of them are dropped. Every other conditional block is kept.
    :raises CParseError: the text is not C coco can read (unbalanced braces, a
        bitfield, a stray token), with the line number.
    """
    lines, patch, hunks = _source_lines(text)
    chunks = [lines[a:b] for a, b in hunks] if patch else [lines]
    notes: list[str] = []
    if patch:
        notes.append("patch: read the new side ('+' and context lines)")
    aggregates: list[_Aggregate] = []
    typedefs: dict[str, _TypeRef] = {}
    loose: list[_Decl] = []
    failed: dict[str, CParseError] = {}
    defines_raw: list[tuple[str, str, int]] = []
    undef = frozenset(undefined)
    for chunk in chunks:
        code, directives = _split_directives(_strip_comments(chunk))
        toks = _tokens(code, directives, undef, notes, defines_raw)
        p = _Parser(toks, directives, tolerant=patch, undefined=undef)
        if patch:
            _parse_fragment(p)
        else:
            p.parse_top()
        failed.update(p.failed)
        aggregates.extend(p.aggregates)
        typedefs.update(p.typedefs)
        loose.extend(p.loose)
        notes.extend(p.notes)
    defines: dict[str, int] = {}
    for name, value, _line in defines_raw:
        if not value:
            continue
        try:
            defines[name] = evaluate(value, defines)
        except CParseError:
            continue
    lay = _Layouter(aggregates, typedefs, defines, source)
    structs = _Structs()
    errors: dict[str, CParseError] = dict(failed)
    for agg in aggregates:
        cname = _c_name(agg.kind, agg.tag)
        try:
            structs[cname] = lay.tagged(cname, agg.line)
        except CParseError as exc:
            errors[cname] = exc
    members: dict[str, Layout] = {}
    tdefs: dict[str, Layout] = {}
    for tname, tref in typedefs.items():
        try:
            t = lay.resolve(tref)
        except CParseError as exc:
            errors[tname] = exc
            continue
        if isinstance(t, Layout):
            tdefs[tname] = t
    for d in loose:
        _add_member(lay, d, members, errors)
    run = next((a for a in aggregates if a.tag == "kvm_run" and a.kind == "struct"), None)
    if run is not None:
        for d in _exit_union(run):
            _add_member(lay, d, members, errors)
    return ParsedHeader(structs, defines, members, tdefs, errors, tuple(notes), patch)


def _add_member(
    lay: _Layouter, d: _Decl, members: dict[str, Layout], errors: dict[str, CParseError]
) -> None:
    if d.name is None or d.dims:
        return
    try:
        t = lay.resolve(d.type)
    except CParseError as exc:
        errors.setdefault(d.name, exc)
        return
    if isinstance(t, Layout):
        if not t.anonymous:
            t = attrs.evolve(t)  # the tagged struct, as the union holds it
        members.setdefault(d.name, t)


def _exit_union(run: _Aggregate) -> Iterator[_Decl]:
    """The members of ``kvm_run``'s first anonymous union (the exit union)."""
    for d in run.members:
        if d.name is None and d.type.body is not None and d.type.body.kind == "union":
            yield from d.type.body.members
            return


def _parse_fragment(p: _Parser) -> None:
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
