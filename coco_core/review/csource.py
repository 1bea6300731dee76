# SPDX-License-Identifier: Apache-2.0
"""The text of a header or a patch, as the C parser reads it: lines, comments, directives, tokens.

A patch contributes its new side only (``+`` and context lines); preprocessor
conditionals keep their members (the userspace view) and are noted, except
blocks guarded by a macro the caller names as undefined.
"""

from __future__ import annotations

import re

import attrs

from coco_core.errors import CParseError

__all__ = [
    "Directive",
    "Tok",
    "directive",
    "is_patch",
    "source_lines",
    "split_directives",
    "strip_comments",
    "tokens",
]

# -- source lines ---------------------------------------------------------------------

_DIFF_HEADER = re.compile(r"^(diff --git |index |--- |\+\+\+ |new file mode|deleted file mode)")


def is_patch(lines: list[str]) -> bool:
    return any(ln.startswith("@@ ") for ln in lines) and any(
        ln.startswith(("--- ", "+++ ", "diff --git ")) for ln in lines
    )


def source_lines(text: str) -> tuple[list[tuple[int, str]], bool, list[tuple[int, int]]]:
    """``(line number, text)`` of the lines to read, whether it is a patch, hunk spans."""
    lines = text.splitlines()
    if not is_patch(lines):
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

TOKEN = re.compile(
    r"\s*(?:(?P<id>[A-Za-z_]\w*)|(?P<num>0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*)"
    r"|(?P<op><<|>>|[{}()\[\];,:*+\-/%|&^~=.<>?!])|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'))"
)


@attrs.frozen
class Tok:
    text: str
    line: int


def strip_comments(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
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
class Directive:
    line: int
    text: str


def split_directives(
    lines: list[tuple[int, str]],
) -> tuple[list[tuple[int, str]], list[Directive]]:
    """Separate preprocessor lines (joined over ``\\``) from code, keeping order marks."""
    code: list[tuple[int, str]] = []
    directives: list[Directive] = []
    i = 0
    while i < len(lines):
        no, ln = lines[i]
        if ln.lstrip().startswith("#"):
            text = ln.strip()
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1] + " " + lines[i][1].strip()
            directives.append(Directive(no, text))
            code.append((no, "\x00"))  # a marker: directive number len(directives)-1
        else:
            code.append((no, ln))
        i += 1
    return code, directives


def tokens(
    code: list[tuple[int, str]],
    directives: list[Directive],
    undefined: frozenset[str],
    notes: list[str],
    defines_raw: list[tuple[str, str, int]],
) -> list[Tok]:
    out: list[Tok] = []
    d_index = 0
    dropped: list[bool] = []
    for no, ln in code:
        if ln == "\x00":
            d = directives[d_index]
            d_index += 1
            directive(d, dropped, undefined, notes, defines_raw)
            continue
        if any(dropped):
            continue
        pos = 0
        while pos < len(ln):
            if ln[pos:].strip() == "":
                break
            m = TOKEN.match(ln, pos)
            if m is None:
                raise CParseError(f"unexpected character {ln[pos:].strip()[:1]!r}", no)
            out.append(Tok(m.group(0).strip(), no))
            pos = m.end()
    return out


def directive(
    d: Directive,
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
