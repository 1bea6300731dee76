# SPDX-License-Identifier: Apache-2.0
"""Reading a reviewer's input: a registered ABI by name, or a C header or patch file.

A header that defines ``struct kvm_run`` (the real ``linux/kvm.h``) is read whole:
its ``#include <...>`` lines are followed under the include root the file sits in
(``ROOT/linux/kvm.h`` → ``ROOT`` and ``ROOT/x86_64-linux-gnu``, Debian's multiarch
``asm/``), so ``kvm_run``'s ``struct kvm_debug_exit_arch`` and ``struct kvm_sync_regs``
(``asm/kvm.h``) are known; every member of the exit union is taken, with the
``KVM_EXIT_*`` names its comment gives, and the file-scope ``KVM_EXIT_*`` defines are
its exit reasons. Any other file gives one struct (``--struct``, or the one it has).
"""

from __future__ import annotations

import re
from pathlib import Path

from coco_core.abi import Abi
from coco_core.errors import ConfigurationError
from coco_core.registry import Registry
from coco_core.review.cparse import ParsedHeader, parse_c
from coco_core.review.imported import ImportedAbi

__all__ = ["import_file", "include_texts", "load_abi_or_file", "read_text"]

_INCLUDE = re.compile(r"^\s*#\s*include\s*<([^>]+)>", re.M)
#: Debian's multiarch include dir for x86-64 (``asm/kvm.h`` lives there)
_MULTIARCH = "x86_64-linux-gnu"
_RUN = ("kvm_run", "struct kvm_run")
#: not read: the fixed-width types it (and what it includes) declares are coco's own
#: (:data:`coco_core.layout.C_SCALARS`), spelled with GCC extensions coco does not parse
_BUILTIN = frozenset({"linux/types.h"})


def load_abi_or_file(reg: Registry, what: str, struct: str | None = None) -> Abi | ImportedAbi:
    """A registered ABI by name, or a header/patch file imported with cparse."""
    if what in reg.abis:
        return reg.abis[what]
    p = Path(what)
    if not p.exists():
        known = ", ".join(reg.abis) or "none"
        raise ConfigurationError(f"unknown ABI {what!r} and no such file; registered ABIs: {known}")
    return import_file(p, struct, whole=struct is None or struct in _RUN)


def read_text(p: Path) -> str:
    """The text of ``p``; an unreadable file is a :class:`ConfigurationError` naming it."""
    try:
        return p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {p}: {exc.strerror or exc}") from None


def include_texts(p: Path, text: str) -> list[tuple[str, str]]:
    """``(name, text)`` of the headers ``text`` includes with ``<...>``, found under ``p``'s root.

    The root is the directory above ``p``'s (``ROOT/linux/kvm.h``); ``ROOT`` and
    ``ROOT/x86_64-linux-gnu`` are searched. Included headers come first, each once, in
    the order a C preprocessor would read them; a header not found is left out (a
    type only it defines stays unknown, and the layout naming it says so), and so is
    ``linux/types.h``, whose types coco knows.
    """
    root = p.resolve().parent.parent
    dirs = (root, root / _MULTIARCH)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()

    def walk(body: str) -> None:
        for name in _INCLUDE.findall(body):
            if name in seen or name in _BUILTIN:
                continue
            seen.add(name)
            found = next((d / name for d in dirs if (d / name).is_file()), None)
            if found is None:
                continue
            inner = read_text(found)
            walk(inner)
            out.append((name, inner))

    walk(text)
    return out


def _parse(p: Path) -> ParsedHeader:
    text = read_text(p)
    return parse_c(text, source=str(p), includes=include_texts(p, text))


def import_file(p: Path, struct: str | None, *, whole: bool = False) -> ImportedAbi:
    """A header or patch file as an :class:`ImportedAbi`.

    :param struct: the struct, union or member to take; without it, every member a
        patch adds to (or changes in) ``kvm_run``'s union, else the file's only struct,
        or the first whose name says ``req_certs`` or ``coco``. A patch's exits are the
        ``KVM_EXIT_*`` it defines on ``+`` lines (its context lines show the base's).
    :param whole: if the file defines ``struct kvm_run``, take every exit-union member
        (``struct`` is then None or ``kvm_run``).
    :raises CParseError: the file is not C coco can read, or the struct taken could not be
        laid out (``FILE:LINE: ...``).
    :raises ConfigurationError: no struct to take.
    """
    parsed = _parse(p)
    if whole and parsed.run_members:
        return _whole(p, parsed)
    exits = parsed.exit_reasons(patched=True)  # a patch's context shows the base's
    added = parsed.new_members()
    if struct is None and added:  # a patch adding members to kvm_run's union
        return ImportedAbi(
            str(p),
            str(p),
            added,
            exits,
            parsed.notes,
            {m: e for m, e in parsed.member_exits.items() if m in added},
            series=parsed.series,
        )
    if struct is None:
        struct = _pick(p, parsed)
    lay = parsed.struct(struct)
    member = struct.split()[-1]
    named = {member: parsed.member_exits[member]} if member in parsed.member_exits else {}
    return ImportedAbi(
        str(p), str(p), {member: lay}, exits, parsed.notes, named, series=parsed.series
    )


def _pick(p: Path, parsed: ParsedHeader) -> str:
    """The struct to take when none is named: the only one, or the req_certs/coco one."""
    names = parsed.names()
    if len(names) == 1:
        return names[0]
    pick = [n for n in names if "req_certs" in n or "coco" in n]
    if pick:
        return pick[0]
    broken = [n for n in parsed.errors if "req_certs" in n or "coco" in n]
    if broken or (not names and parsed.errors):
        raise parsed.errors[(broken or list(parsed.errors))[0]]
    found = ", ".join(names) or "none"
    raise ConfigurationError(f"{p}: name the struct with --struct; found: {found}")


def _whole(p: Path, parsed: ParsedHeader) -> ImportedAbi:
    """Every exit-union member of ``kvm_run`` and every exit reason ``parsed`` has."""
    members = {m: parsed.members[m] for m in parsed.run_members if m in parsed.members}
    errors: dict[str, str] = {}
    for m in parsed.run_members:  # a scalar or array member (``padding``) has no fields
        if m not in members and m in parsed.errors:
            errors[m] = str(parsed.errors[m])
    exits = {m: parsed.member_exits[m] for m in members if m in parsed.member_exits}
    return ImportedAbi(
        str(p),
        str(p),
        members,
        parsed.exit_reasons(),
        parsed.notes,
        exits,
        whole=True,
        errors=errors,
        series=parsed.series,
    )
