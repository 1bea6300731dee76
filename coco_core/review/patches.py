# SPDX-License-Identifier: Apache-2.0
"""What a reviewer hands coco: C text, a diff, a ``+``-line excerpt, or patch mails.

:func:`source_chunks` turns the text into the chunks the C parser reads, each a list
of ``(line in the input, text)``:

* **C text** (a header): one chunk, every line.
* **A unified diff** (``@@ -a,b +c,d @@`` hunks): the new side of each hunk.
* **A ``+``-line excerpt** (every non-blank line starts with ``+``, ``-`` or a space,
  as a mail quotes the lines a patch adds, without ``@@`` or file headers): the ``+``
  and context lines, as one chunk.
* **Patch mails**: one ``git format-patch`` mail, several concatenated, or an mbox
  (lore's ``t.mbox``; ``From `` separator lines, mboxrd ``>From`` unescaped; quoted-
  printable or base64 bodies decoded by :mod:`email`). The hunks of every uapi header
  the series touches (a path under ``include/uapi/``, e.g. ``include/uapi/linux/kvm.h``)
  are applied **in order** (by the ``N/M`` of ``[PATCH vK N/M]``; replies and the cover
  letter are left out), patch after patch, to a sparse copy of each file: a later
  patch that rewrites lines an earlier one added replaces them, and the chunks are the
  runs of lines the series leaves known. A series that touches no uapi header is read
  hunk by hunk from every file.

Applying without the base file: a hunk is placed at its ``+c`` line (where it sits in
the file as the previous hunks left it) and replaces the ``b`` old lines there; lines
the series never showed are unknown and end a chunk. A hunk whose context disagrees
with what an earlier patch left is still applied, and noted.

Line numbers point into the input, so a parse error names the line a reviewer can
open; in a quoted-printable body they are those of the decoded body.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import re
from collections.abc import Iterator
from email.message import Message

import attrs

__all__ = ["Chunk", "FilePatch", "Hunk", "Patch", "Source", "read_patches", "source_chunks"]

#: ``(line in the input, text)`` runs the C parser reads
Chunk = list[tuple[int, str]]

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_MBOX_FROM = re.compile(r"^From \S+ +\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}\s*$")
_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:( |$)")
_UAPI = "include/uapi/"
_EXCERPT = "excerpt: read the '+' and context lines"
_NUMBERED = re.compile(r"\[[^\]]*?\b(\d+)/\d+\s*\]")
_REPLY = re.compile(r"^\s*(re|aw|sv)\s*:", re.I)


@attrs.frozen
class Hunk:
    """One ``@@ -a,b +c,d @@`` hunk: ``lines`` are ``(tag, text, input line)``.

    The tag is ``"+"``, ``"-"`` or ``" "`` (context).
    """

    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: tuple[tuple[str, str, int], ...]


@attrs.frozen
class FilePatch:
    """The hunks a patch has for one file (``path`` as ``+++ b/PATH`` names it)."""

    path: str
    hunks: tuple[Hunk, ...]


@attrs.frozen
class Patch:
    """One mail (or one bare diff): its subject, Message-ID and date, and its file diffs."""

    subject: str
    message_id: str
    date: str
    files: tuple[FilePatch, ...]


@attrs.frozen
class Source:
    """What :func:`source_chunks` found: the chunks, the kind of input, and notes for people."""

    chunks: list[Chunk]
    kind: str  #: "c", "diff", "excerpt" or "mail"
    notes: tuple[str, ...] = ()
    #: one line per patch mail read, in order: subject, Message-ID, the uapi files it changes
    series: tuple[str, ...] = ()
    #: the input lines a patch adds (``+`` lines); None for plain C, where every line counts
    added: frozenset[int] | None = None

    @property
    def patch(self) -> bool:
        """True unless the text was plain C (then hunks may open inside a struct)."""
        return self.kind != "c"


# -- mails -----------------------------------------------------------------------------


def _messages(lines: list[str]) -> list[tuple[int, str]] | None:
    """``(first input line, text)`` of each mail, or None if the text is no mail."""
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        return None
    if _MBOX_FROM.match(lines[first]):
        starts = [i for i, ln in enumerate(lines) if _MBOX_FROM.match(ln)]
        bounds = [*starts, len(lines)]
        return [
            (s + 2, "\n".join(lines[s + 1 : e]))  # the message after its separator line
            for s, e in itertools.pairwise(bounds)
        ]
    head = []
    for ln in lines[first:]:
        if not ln.strip():
            break
        head.append(ln)
    if not head or not _HEADER.match(head[0]):
        return None
    if not any(ln.lower().startswith("subject:") for ln in head):
        return None
    return [(first + 1, "\n".join(lines[first:]))]


def _body(msg: Message) -> str:
    """The decoded text of a mail (its text/plain parts, in order)."""
    parts = msg.walk() if msg.is_multipart() else iter([msg])
    texts = []
    for part in parts:
        if part.get_content_maintype() == "text" and not part.is_multipart():
            payload = part.get_payload(decode=True)
            charset = part.get_content_charset() or "utf-8"
            if isinstance(payload, bytes):
                texts.append(payload.decode(charset, errors="replace"))
    return "\n".join(texts)


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def _mail_patch(start: int, text: str) -> Patch:
    msg = email.message_from_bytes(
        text.encode("utf-8", "surrogateescape"), policy=email.policy.compat32
    )
    head_lines = text.split("\n\n", 1)[0].count("\n") + 2  # headers, then the blank line
    body = [re.sub(r"^>(>*From )", r"\1", ln) for ln in _body(msg).splitlines()]
    numbered = [(start + head_lines + i, ln) for i, ln in enumerate(body)]
    files = tuple(_diff(numbered))
    return Patch(_header(msg, "Subject"), _header(msg, "Message-ID"), _header(msg, "Date"), files)


# -- diffs ---------------------------------------------------------------------------


def _diff(lines: list[tuple[int, str]]) -> Iterator[FilePatch]:
    """The file diffs of a unified diff: hunks read by their line counts."""
    path = ""
    hunks: list[Hunk] = []
    i = 0
    while i < len(lines):
        no, ln = lines[i]
        i += 1
        m = _HUNK.match(ln)
        if ln.startswith(("diff --git ", "+++ ")):  # outside a hunk: names the next file
            new = _path(ln)
            if new is not None and new != path:
                if hunks:
                    yield FilePatch(path, tuple(hunks))
                path, hunks = new, []
            continue
        if m is None:
            continue
        old_len = int(m.group(2) or 1)
        new_len = int(m.group(4) or 1)
        body: list[tuple[str, str, int]] = []
        left_old, left_new = old_len, new_len
        while (left_old > 0 or left_new > 0) and i < len(lines):
            no, ln = lines[i]
            tag = ln[:1] if ln else " "  # a mailer may strip the space of an empty context line
            if tag == "\\":  # "\ No newline at end of file"
                i += 1
                continue
            if tag not in " +-":
                break
            i += 1
            body.append((tag, ln[1:], no))
            left_old -= tag in " -"
            left_new -= tag in " +"
        hunks.append(Hunk(int(m.group(1)), old_len, int(m.group(3)), new_len, tuple(body)))
    if hunks:
        yield FilePatch(path, tuple(hunks))


def _path(line: str) -> str | None:
    if line.startswith("diff --git "):
        parts = line.split()
        return parts[-1][2:] if parts[-1].startswith("b/") else parts[-1]
    target = line[4:].split("\t", maxsplit=1)[0].strip()
    if target == "/dev/null":
        return None
    return target[2:] if target.startswith("b/") else target


# -- applying a series -----------------------------------------------------------------


def _apply(known: dict[int, tuple[int, str]], hunk: Hunk) -> bool:
    """Apply ``hunk`` to the sparse file ``known`` (position -> (input line, text)).

    A context line the file already holds keeps its entry (the line of the patch that
    wrote it, so a member an earlier patch added still reads as added); ``+`` lines,
    and context lines no earlier patch showed, come from this hunk.

    :returns: whether the lines it replaces agree with what ``known`` held.
    """
    pos = max(hunk.new_start, 1)
    old = [text for tag, text, _ in hunk.lines if tag in " -"]
    new: list[tuple[int, str]] = []
    at = pos  # the line of the file this hunk line stands on
    for tag, text, src in hunk.lines:
        if tag == " ":
            new.append(known.get(at, (src, text)))
        elif tag == "+":
            new.append((src, text))
        at += tag in " -"
    clean = all(known[pos + k][1] == text for k, text in enumerate(old) if pos + k in known)
    delta = len(new) - len(old)
    moved: dict[int, tuple[int, str]] = {}
    for p, line in known.items():
        if p < pos:
            moved[p] = line
        elif p >= pos + len(old):
            moved[p + delta] = line
    for k, line in enumerate(new):
        moved[pos + k] = line
    known.clear()
    known.update(moved)
    return clean


def _runs(known: dict[int, tuple[int, str]]) -> list[Chunk]:
    chunks: list[Chunk] = []
    last = None
    for p in sorted(known):
        if last is None or p != last + 1:
            chunks.append([])
        chunks[-1].append(known[p])
        last = p
    return chunks


def _number(p: Patch) -> int:
    """N of ``[PATCH vK N/M]``; 0 when the subject numbers nothing."""
    m = _NUMBERED.search(p.subject)
    return int(m.group(1)) if m is not None else 0


def read_patches(text: str) -> list[Patch] | None:
    """The patches in ``text`` (mails, or one bare diff), in series order; None if no hunk.

    Mails are taken by their ``N/M`` number (a thread's mbox lists them by date, replies
    in between); replies (``Re:``) and mails without a diff (the cover letter) are left out.
    """
    lines = text.splitlines()
    mails = _messages(lines)
    if mails is not None:
        patches = [_mail_patch(start, body) for start, body in mails]
        patches = [p for p in patches if p.files and not _REPLY.match(p.subject)]
        patches.sort(key=_number)  # stable: unnumbered mails keep their order
        return patches or None
    if not any(_HUNK.match(ln) for ln in lines):
        return None
    files = tuple(_diff(list(enumerate(lines, 1))))
    return [Patch("", "", "", files)] if files else None


def _series_chunks(patches: list[Patch]) -> tuple[list[Chunk], list[str], list[str]]:
    """The chunks, the notes, and one line per mail."""
    touched = {f.path for p in patches for f in p.files}
    uapi = {path for path in touched if _UAPI in path}
    notes: list[str] = []
    series: list[str] = []
    if not uapi:  # no uapi header: every hunk on its own, as a fragment
        chunks = [
            [(src, text) for tag, text, src in h.lines if tag in " +"]
            for p in patches
            for f in p.files
            for h in f.hunks
        ]
        return chunks, notes, series
    files: dict[str, dict[int, tuple[int, str]]] = {}
    for p in patches:
        read = []
        for f in p.files:
            if f.path not in uapi:
                continue
            known = files.setdefault(f.path, {})
            for h in f.hunks:
                if not _apply(known, h):
                    notes.append(
                        f"{p.subject or 'patch'}: a hunk of {f.path} at line {h.new_start} "
                        "does not match what the earlier patches left; applied anyway"
                    )
            read.append(f"{f.path} ({len(f.hunks)} hunk{'s' * (len(f.hunks) != 1)})")
        if p.subject or p.message_id:
            what = ", ".join(read) or "no uapi header"
            series.append(f"{p.subject} {p.message_id}".strip() + f": {what}")
    chunks = [chunk for path in files for chunk in _runs(files[path])]
    return chunks, notes, series


def source_chunks(text: str) -> Source:
    """Classify ``text`` and return the chunks to parse (see the module notes)."""
    patches = read_patches(text)
    if patches is not None:
        chunks, notes, series = _series_chunks(patches)
        kind = "mail" if any(p.subject or p.message_id for p in patches) else "diff"
        if kind == "mail":
            notes.insert(0, f"{len(patches)} patch mail(s), uapi hunks applied in order")
        else:
            notes.insert(0, "patch: read the new side ('+' and context lines)")
        added = frozenset(
            no
            for p in patches
            for f in p.files
            for h in f.hunks
            for tag, _, no in h.lines
            if tag == "+"
        )
        return Source(chunks, kind, tuple(notes), tuple(series), added)
    numbered = list(enumerate(text.splitlines(), 1))
    body = [(no, ln) for no, ln in numbered if ln.strip()]
    if body and all(ln[0] in "+- " for _, ln in body) and any(ln[0] == "+" for _, ln in body):
        chunk = [(no, ln[1:]) for no, ln in numbered if ln[:1] in ("+", " ")]
        added = frozenset(no for no, ln in numbered if ln[:1] == "+")
        return Source([chunk], "excerpt", (_EXCERPT,), added=added)
    return Source([numbered], "c")
