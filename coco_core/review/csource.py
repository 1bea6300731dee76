# SPDX-License-Identifier: Apache-2.0
"""The text of a header or a patch, as the C parser reads it: lines, comments, directives, tokens.

Which lines of a patch, an excerpt or a series of mails are read is
:mod:`coco_core.review.patches`' business; this module takes those lines.
Preprocessor conditionals keep their members (the userspace view) and are noted,
except blocks guarded by a macro the caller names as undefined. Each ``#define``
is recorded with the brace depth it appears at, so a caller can tell the file-scope
``KVM_EXIT_*`` exit reasons from the sub-values a struct defines inside itself
(``KVM_EXIT_IO_IN`` in ``kvm_run``); comments are kept per line, so a member of
``kvm_run``'s exit union can be found by its ``/* KVM_EXIT_* */`` comment.
"""

from __future__ import annotations

import re

import attrs

from coco_core.errors import CParseError

__all__ = [
    "Define",
    "Directive",
    "Tok",
    "directive",
    "line_comments",
    "split_directives",
    "strip_comments",
    "tokens",
]

# -- tokens ---------------------------------------------------------------------------

TOKEN = re.compile(
    r"\s*(?:(?P<id>[A-Za-z_]\w*)|(?P<num>0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*)"
    r"|(?P<op><<|>>|[{}()\[\];,:*+\-/%|&^~=.<>?!])|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'))"
)


@attrs.frozen
class Tok:
    text: str
    line: int


@attrs.frozen
class Define:
    """A ``#define NAME value``: where it is and how deep in braces (0: file scope)."""

    name: str
    value: str
    line: int
    depth: int


def line_comments(lines: list[tuple[int, str]]) -> dict[int, str]:
    """The text of the comments that end on each line (``/* ... */`` and ``//``)."""
    out: dict[int, str] = {}
    open_text: list[str] | None = None
    for no, ln in lines:
        i = 0
        while i < len(ln):
            if open_text is not None:
                end = ln.find("*/", i)
                open_text.append(ln[i : len(ln) if end < 0 else end])
                if end < 0:
                    break
                out[no] = (out.get(no, "") + " " + " ".join(open_text)).strip()
                open_text = None
                i = end + 2
            elif ln.startswith("/*", i):
                open_text = []
                i += 2
            elif ln.startswith("//", i):
                out[no] = (out.get(no, "") + " " + ln[i + 2 :]).strip()
                break
            else:
                i += 1
    return out


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
    defines_raw: list[Define],
) -> list[Tok]:
    out: list[Tok] = []
    d_index = 0
    dropped: list[bool] = []
    depth = 0
    for no, ln in code:
        if ln == "\x00":
            d = directives[d_index]
            d_index += 1
            directive(d, dropped, undefined, notes, defines_raw, depth=depth)
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
            tok = Tok(m.group(0).strip(), no)
            depth += {"{": 1, "}": -1}.get(tok.text, 0)
            out.append(tok)
            pos = m.end()
    return out


def directive(
    d: Directive,
    dropped: list[bool],
    undefined: frozenset[str],
    notes: list[str],
    defines_raw: list[Define],
    *,
    depth: int = 0,
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
            defines_raw.append(Define(dm.group(1), dm.group(3).strip(), d.line, max(depth, 0)))
