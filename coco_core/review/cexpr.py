# SPDX-License-Identifier: Apache-2.0
"""C integer constant expressions, as ``#define`` values and array sizes write them.

:func:`evaluate` computes one with the defines seen so far in scope; the word
lists are the C base types and qualifiers the declaration parser shares.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from coco_core.errors import CParseError
from coco_core.layout import C_SCALARS

__all__ = ["BASE_WORDS", "CAST_WORDS", "QUALIFIERS", "evaluate"]


BASE_WORDS = frozenset({"unsigned", "signed", "char", "short", "int", "long"})
QUALIFIERS = frozenset({"const", "volatile", "__volatile__", "__user", "__iomem", "__rcu"})


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

CAST_WORDS = BASE_WORDS | frozenset(C_SCALARS)


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
            while j < len(self.toks) and self.toks[j] in CAST_WORDS:
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
