# SPDX-License-Identifier: Apache-2.0
"""Reading a reviewer's input: a registered ABI by name, or a C header or patch file."""

from __future__ import annotations

from pathlib import Path

from coco_core.abi import Abi
from coco_core.errors import ConfigurationError
from coco_core.registry import Registry
from coco_core.review.compare import ImportedAbi
from coco_core.review.cparse import parse_c

__all__ = ["import_file", "load_abi_or_file", "read_text"]


def load_abi_or_file(reg: Registry, what: str, struct: str | None = None) -> Abi | ImportedAbi:
    """A registered ABI by name, or a header/patch file imported with cparse."""
    if what in reg.abis:
        return reg.abis[what]
    p = Path(what)
    if not p.exists():
        known = ", ".join(reg.abis) or "none"
        raise ConfigurationError(f"unknown ABI {what!r} and no such file; registered ABIs: {known}")
    return import_file(p, struct)


def read_text(p: Path) -> str:
    """The text of ``p``; an unreadable file is a :class:`ConfigurationError` naming it."""
    try:
        return p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {p}: {exc.strerror or exc}") from None


def import_file(p: Path, struct: str | None) -> ImportedAbi:
    """One struct of a header or patch file as an :class:`ImportedAbi`.

    :param struct: the struct, union or member to take; without it, the file's
        only struct, or the first whose name says ``req_certs`` or ``coco``.
    """
    parsed = parse_c(read_text(p), source=str(p))
    if struct is None:
        names = parsed.names()
        if len(names) == 1:
            struct = names[0]
        else:
            pick = [n for n in names if "req_certs" in n or "coco" in n]
            if not pick:
                found = ", ".join(names) or "none"
                raise ConfigurationError(f"{p}: name the struct with --struct; found: {found}")
            struct = pick[0]
    lay = parsed.struct(struct)
    member = struct.split()[-1]
    exits = {k: v for k, v in parsed.defines.items() if k.startswith("KVM_EXIT_")}
    return ImportedAbi(str(p), str(p), {member: lay}, exits, parsed.notes)
