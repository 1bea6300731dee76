# SPDX-License-Identifier: Apache-2.0
"""Write sets: which ``kvm_run`` bytes a decoder's completion may change, and naming the rest.

A decoder's write set (:attr:`~coco_core.abi.ExitDecoder.write_set`) is the
list of fields its completion may write: declared with ``writes=``, or derived
from its :class:`~coco_core.abi.StatusField` (nothing at all for an exit
without a ``write``). :func:`write_problems` diffs a completion and names
every changed byte outside the set by offset and by the ``kvm_run`` field it
belongs to, so a completion that writes inside the exit union but outside its
own fields (or at a hand-coded wrong offset) is caught without a golden.
"""

from __future__ import annotations

import attrs

from coco_core.abi import Abi, ExitDecoder
from coco_core.layout import Layout

__all__ = ["Field", "member_of", "name_byte", "scalar_fields", "write_problems", "write_ranges"]


@attrs.frozen
class Field:
    """One scalar of ``kvm_run``: an access path (array elements named ``[i]``), offset, size.

    .. versionadded:: 0.2
    """

    path: str
    offset: int
    size: int


#: id(abi) -> (abi, its kvm_run layout, its scalars); the abi is kept so its id stays its own
_CACHE: dict[int, tuple[Abi, Layout, tuple[Field, ...]]] = {}


def _layout(abi: Abi) -> Layout:
    return _cached(abi)[1]


def _leaves(abi: Abi) -> tuple[Field, ...]:
    return _cached(abi)[2]


def _cached(abi: Abi) -> tuple[Abi, Layout, tuple[Field, ...]]:
    hit = _CACHE.get(id(abi))
    if hit is not None and hit[0] is abi:
        return hit
    lay = abi.kvm_run_layout()
    entry = (abi, lay, _scalars(lay))
    _CACHE[id(abi)] = entry
    return entry


def _scalars(lay: Layout) -> tuple[Field, ...]:
    """Every scalar of ``lay`` as ``kvm_run`` paths, array elements one by one."""
    out: list[Field] = []
    for path, off, size, ctype in lay.flatten("kvm_run"):
        if "[" not in ctype:
            out.append(Field(path, off, size))
            continue
        count = int(ctype[ctype.index("[") + 1 : -1])
        elem = size // count
        out.extend(Field(f"{path}[{i}]", off + i * elem, elem) for i in range(count))
    return tuple(out)


def member_of(dec: ExitDecoder, abi: Abi) -> str | None:
    """The union member ``dec``'s exit lives in, from the paths it names; None if it names none.

    .. versionadded:: 0.2
    """
    disc = abi.discriminators.get(dec.reason)
    paths = [*dec.write_set, *(disc.fields if disc is not None else ())]
    if dec.status_field is not None:
        paths.append(dec.status_field.field)
    for path in paths:
        parts = path.split(".")
        if len(parts) > 2:
            return parts[1].split("[", 1)[0]
    return None


def scalar_fields(abi: Abi, member: str | None) -> list[Field]:
    """The scalars of union member ``member`` (every member's if None), one per place.

    Byte arrays longer than 16 (``padding``, message buffers) are left out:
    random bytes cover them.

    .. versionadded:: 0.2
    """
    frame = abi.frame
    assert frame is not None
    lo, hi = frame.union_offset, frame.union_offset + frame.union_size
    prefix = None if member is None else f"kvm_run.{member}."
    seen: set[tuple[int, int]] = set()
    out: list[Field] = []
    for f in _leaves(abi):
        if not lo <= f.offset < hi or (prefix is not None and not f.path.startswith(prefix)):
            continue
        if f.size == 1 and "[" in f.path and int(f.path.rsplit("[", 1)[1][:-1]) >= 16:
            continue
        if (f.offset, f.size) not in seen:
            seen.add((f.offset, f.size))
            out.append(f)
    return out


def write_ranges(abi: Abi, dec: ExitDecoder) -> list[tuple[int, int, str]]:
    """``(start, end, path)`` of every field in ``dec``'s write set under ``abi``.

    .. versionadded:: 0.2
    """
    lay = _layout(abi)
    out = []
    for path in dec.write_set:
        off, size, _ = lay.locate(path, "kvm_run")
        out.append((off, off + size, path))
    return out


def name_byte(abi: Abi, offset: int, prefer: str | None = None) -> str:
    """The ``kvm_run`` field byte ``offset`` belongs to (one of ``prefer``'s member first).

    .. versionadded:: 0.2
    """
    hits = [f.path for f in _leaves(abi) if f.offset <= offset < f.offset + f.size]
    hits = [h for h in hits if not h.startswith("kvm_run.padding")] or hits
    if prefer is not None:
        mine = [h for h in hits if h.startswith(f"kvm_run.{prefer}.")]
        if mine:
            return mine[0]
    return " / ".join(hits[:3]) if hits else "no field"


def write_problems(abi: Abi, dec: ExitDecoder, before: bytes, after: bytes, what: str) -> list[str]:
    """One line per field outside ``dec``'s write set whose bytes ``after`` changed.

    :param what: how the completion came about, for the message ("answering RETRY").

    .. versionadded:: 0.2
    """
    if before == after:
        return []
    frame = abi.frame
    assert frame is not None
    start, end = frame.union_offset, frame.union_offset + frame.union_size
    allowed = write_ranges(abi, dec)
    member = member_of(dec, abi)
    changed: dict[str, list[int]] = {}
    for i in range(start, end):  # outside the union is the caller's check
        if before[i] != after[i] and not any(lo <= i < hi for lo, hi, _ in allowed):
            changed.setdefault(name_byte(abi, i, member), []).append(i)
    if not changed:
        return []
    may = ", ".join(f"{p} ({lo:#x}..{hi:#x})" for lo, hi, p in allowed) or "nothing"
    out = []
    for field, offsets in changed.items():
        first = offsets[0]
        out.append(
            f"{abi.name} {dec.name} {what}: wrote byte {first:#06x} ({field}: "
            f"{before[first]:02x} -> {after[first]:02x}"
            + (f", {len(offsets)} bytes" if len(offsets) > 1 else "")
            + f"), outside its write set; it may write {may} "
            "(declare more with ExitDecoder(writes=...))"
        )
    return out
