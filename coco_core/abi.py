# SPDX-License-Identifier: Apache-2.0
"""Named, versioned exit ABIs and the decoders plugins contribute to them.

An ABI is what one kernel (``linux-7.2``) or one patch revision
(``kvm-exit-coco-v1``) defines: exit numbers, the members of the ``kvm_run``
exit union, error spaces, and the completion duties KVM has. Several plugins
contribute to the same ABI: the core brings the generic exits, the SNP and TDX
plugins their own. Each contribution is an :class:`AbiPart`; the registry
merges parts by name into one :class:`Abi` and rejects contradictions.

An :class:`ExitDecoder` turns one ``(exit reason, discriminator)`` into a
neutral request and writes the completion back; it is what the dispatcher's
table holds. A :class:`RunFrame` says where the exit reason and the exit union
sit in the shared run structure; the core's generic plugin declares the one
for ``struct kvm_run`` (:data:`coco_core.generic.uapi.KVM_RUN_FRAME`), and the
core itself assumes no offset.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Mapping

import attrs

from coco_core.errors import ConfigurationError
from coco_core.errorspace import ErrorSpace
from coco_core.layout import Layout
from coco_core.requests import NeutralRequest
from coco_core.status import CoCoStatus, Outcome

__all__ = [
    "Abi",
    "AbiPart",
    "CompletionDuty",
    "Discriminator",
    "ExitDecoder",
    "RunFrame",
    "StatusField",
    "SubCall",
    "WriteBack",
]

#: ``write(run, request, raw, outcome)``: put ``raw`` (and what ``outcome``
#: adds, such as a page count) into the exit union of ``run``.
WriteBack = Callable[[memoryview, NeutralRequest, int, Outcome | None], None]

#: One item of a key format: an optional count, then a pad byte or an unsigned integer.
_KEY_ITEM = re.compile(r"(\d*)([xBHIQ])")
_KEY_SIZES = {"x": 1, "B": 1, "H": 2, "I": 4, "Q": 8}

#: A sub-call key: one number (TDX ``nr``), or a tuple for a compound key (.. versionadded:: 0.2).
SubCall = int | tuple[int, ...]


def _key_positions(fmt: str) -> tuple[tuple[int, int], ...]:
    """``(offset from the format's start, size)`` of each number a key format reads.

    :raises ValueError: not ``"<"`` followed by pad bytes (``x``) and unsigned
        integers (``B``, ``H``, ``I``, ``Q``), each with an optional count.
    """
    body = fmt[1:] if fmt.startswith("<") else None
    if not body or _KEY_ITEM.sub("", body):
        raise ValueError(
            f"key format {fmt!r} is not '<' followed by x/B/H/I/Q items (e.g. '<Q', '<Q4xI')"
        )
    out: list[tuple[int, int]] = []
    pos = 0
    for count, code in _KEY_ITEM.findall(body):
        n = int(count) if count else 1
        size = _KEY_SIZES[code]
        if code == "x":
            pos += n
            continue
        for _ in range(n):
            out.append((pos, size))
            pos += size
    if not out:
        raise ValueError(f"key format {fmt!r} reads no number")
    return tuple(out)


@attrs.frozen(kw_only=True)
class Discriminator:
    """Where an exit keeps its sub-call key: one number or several, read with one unpack.

    A key is one number (TDX ``nr``, hypercall ``nr``: ``fmt="<Q"``) or, for a
    compound key, several numbers read by one :mod:`struct` format (RISC-V SBI
    extension and function id: ``fmt="<QQ"``, ``field="kvm_run.riscv_sbi.extension_id"``,
    ``more=("kvm_run.riscv_sbi.function_id",)``; pad bytes ``x`` skip what lies
    between). A decoder of a compound key names its sub-call as a tuple in the
    same order.

    :param reason: the exit reason.
    :param offset: offset of the first number from the start of ``kvm_run``.
    :param fmt: :mod:`struct` format: ``"<"`` then pad bytes (``x``) and unsigned
        integers (``B``, ``H``, ``I``, ``Q``).
    :param field: the C access path of the (first) number.
    :param more: the paths of a compound key's further numbers, in format order
        (``.. versionadded:: 0.2``). The registry checks every path against the
        ABI's layout.

    .. versionchanged:: 0.2 compound keys.
    """

    reason: int
    offset: int
    fmt: str
    field: str
    more: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        try:
            positions = _key_positions(self.fmt)
        except ValueError as exc:
            raise ValueError(f"Discriminator of exit {self.reason}: {exc}") from None
        if len(positions) != len(self.fields):
            raise ValueError(
                f"Discriminator of exit {self.reason}: format {self.fmt!r} reads "
                f"{len(positions)} number(s) but field names {len(self.fields)}"
            )

    @property
    def fields(self) -> tuple[str, ...]:
        """The C access path of every number of the key, in format order."""
        return (self.field, *self.more)

    @property
    def compound(self) -> bool:
        """True for a key of several numbers."""
        return len(self.fields) > 1

    @property
    def positions(self) -> tuple[tuple[int, int], ...]:
        """``(kvm_run offset, size)`` of each number of the key."""
        return tuple((self.offset + at, size) for at, size in _key_positions(self.fmt))

    @property
    def reader(self) -> struct.Struct:
        """A precompiled reader: ``reader.unpack_from(run, offset)`` is the key tuple."""
        return struct.Struct(self.fmt)

    def key(self, sub_call: SubCall) -> tuple[int, ...]:
        """``sub_call`` as the tuple :attr:`reader` reads (``(nr,)`` for one number).

        :raises ValueError: a compound key of the wrong length, or an int for one.
        """
        key = sub_call if isinstance(sub_call, tuple) else (sub_call,)
        if len(key) != len(self.fields):
            raise ValueError(
                f"sub-call {sub_call!r} of exit {self.reason} has {len(key)} number(s); the "
                f"discriminator {', '.join(self.fields)} reads {len(self.fields)}"
            )
        return tuple(int(k) for k in key)

    def pack_into(self, run: bytearray | memoryview, sub_call: SubCall) -> None:
        """Write ``sub_call`` into ``run`` where the exit keeps it (for tests and goldens)."""
        self.reader.pack_into(run, self.offset, *self.key(sub_call))


_STATUS_FORMATS = {"<B": 1, "<H": 2, "<I": 4, "<Q": 8}


@attrs.frozen(kw_only=True)
class StatusField:
    """The one ``kvm_run`` field a plain status completion writes.

    Declared by a decoder whose :attr:`ExitDecoder.write`, given a
    :class:`~coco_core.status.CoCoStatus` (no :class:`~coco_core.status.Outcome`),
    writes exactly the encoded value into this field and nothing else. The
    dispatcher then packs the value itself instead of calling ``write``; the
    conformance kit checks both give the same bytes for every status.

    :param offset: offset of the field from the start of ``kvm_run``.
    :param fmt: :mod:`struct` format of the field: ``"<B"``, ``"<H"``, ``"<I"`` or ``"<Q"``.
    :param field: its C access path (``"kvm_run.tdx.get_quote.ret"``); an array
        element is written ``name[i]`` (``"kvm_run.riscv_sbi.ret[0]"``).

    The registry checks that the field is a member of the ABI's layout at that
    offset and size, inside the exit union.

    .. versionadded:: 0.1
    """

    offset: int
    fmt: str
    field: str

    def __attrs_post_init__(self) -> None:
        if self.fmt not in _STATUS_FORMATS:
            known = ", ".join(_STATUS_FORMATS)
            raise ValueError(
                f"{self.field}: status field format {self.fmt!r} is not one of {known}"
            )
        if self.offset < 0:
            raise ValueError(f"{self.field}: status field offset {self.offset} is negative")

    @property
    def size(self) -> int:
        """The field's size in bytes."""
        return _STATUS_FORMATS[self.fmt]

    @property
    def writer(self) -> Callable[[memoryview | bytearray, int, int], None]:
        """A precompiled ``pack_into(buffer, offset, value)`` for the field."""
        return struct.Struct(self.fmt).pack_into


@attrs.frozen(kw_only=True)
class ExitDecoder:
    """How one ``(exit reason, discriminator)`` becomes a request, and is completed.

    :param name: the exit's name as the header spells it, with the sub-call
        (``"KVM_EXIT_TDX/GET_QUOTE"``).
    :param reason: ``kvm_run.exit_reason``.
    :param discriminator: the sub-call number, a tuple for a compound key (see
        :class:`Discriminator`), None for an exit without one.
    :param vendor: ``"snp"``, ``"tdx"``, or ``"kvm"`` for a vendor-neutral exit.
    :param request_type: the neutral request class :attr:`decode` returns.
    :param decode: ``decode(run) -> request``; one ``unpack_from`` on ``run``.
        Must not raise for any bytes. Returning ``Unsupported(reason)``
        declines the exit: it goes back to the VMM untouched
        (:attr:`~coco_core.requests.NotHandled.DECLINED`), not to a handler.
    :param write: puts the completion into the exit union; None for exits
        without a completion (termination).
    :param error_space: the space completion values come from.
    :param default_status: the answer when the VMM has no handler for the
        request; None leaves the exit untouched and hands it back to the VMM.
    :param fallback: True for the decoder of sub-calls nobody else claims.
    :param status_field: where a plain status lands, if ``write`` writes that
        one field and nothing else for a :class:`CoCoStatus`; the dispatcher
        then writes it without calling ``write`` (see :class:`StatusField`).
    :param writes: the C access paths of every field a completion may write
        (``("kvm_run.snp_req_certs.ret", "kvm_run.snp_req_certs.npages")``);
        None: the status field's alone, or nothing for an exit without a
        ``write``. The registry checks each path against the layout, and the
        conformance kit fails a completion that changes any other byte
        (``.. versionadded:: 0.2``).
    """

    name: str
    reason: int
    discriminator: SubCall | None
    vendor: str
    request_type: type[NeutralRequest]
    decode: Callable[[memoryview], NeutralRequest]
    write: WriteBack | None
    error_space: ErrorSpace | None
    default_status: CoCoStatus | None = CoCoStatus.UNSUPPORTED
    fallback: bool = False
    status_field: StatusField | None = None
    writes: tuple[str, ...] | None = None

    @property
    def key(self) -> tuple[int, SubCall | None]:
        """The dispatch key: ``(reason, discriminator)``."""
        return (self.reason, self.discriminator)

    @property
    def write_set(self) -> tuple[str, ...]:
        """The fields a completion may write: :attr:`writes`, or what it is derived from.

        .. versionadded:: 0.2
        """
        if self.writes is not None:
            return self.writes
        if self.write is None or self.status_field is None:
            return ()
        return (self.status_field.field,)


@attrs.frozen(kw_only=True)
class CompletionDuty:
    """What KVM does with userspace's answer on re-entry, under one ABI.

    :param exit_name: the exit's name (``KVM_EXIT_TDX/*``).
    :param field: the ``kvm_run`` field userspace writes.
    :param kernel_action: what KVM does with it (registers or fields it sets).
    :param rejects: what KVM refuses, and how (``KVM_RUN`` fails with EINVAL).
    """

    exit_name: str
    field: str
    kernel_action: str
    rejects: str = ""


@attrs.frozen(kw_only=True)
class RunFrame:
    """Where the run structure keeps the exit reason and the exit union.

    Every exit is decoded inside one frame: the dispatcher reads the ``__u32``
    exit reason at :attr:`exit_reason`, hands back an unclaimed exit with a copy
    of the union, and the registry checks every status field against it.

    :param name: the C struct (``"struct kvm_run"``).
    :param size: its ``sizeof``.
    :param exit_reason: offset of the ``__u32`` exit reason.
    :param immediate_exit: offset of the ``__u8`` immediate-exit flag.
    :param union_offset: offset of the exit union.
    :param union_size: its size.
    :param generic_members: the union members the frame itself declares.
    :param build: ``build(extra members) -> Layout``: the whole struct with
        the generic members and ``extra`` in its union.

    .. versionadded:: 0.2
    """

    name: str
    size: int
    exit_reason: int
    immediate_exit: int
    union_offset: int
    union_size: int
    generic_members: frozenset[str]
    build: Callable[[Mapping[str, Layout]], Layout] = attrs.field(eq=False, repr=False)

    @property
    def union(self) -> slice:
        """The exit union as a slice of the run buffer."""
        return slice(self.union_offset, self.union_offset + self.union_size)


@attrs.frozen(kw_only=True)
class AbiPart:
    """One plugin's contribution to a named ABI.

    :param abi: the ABI name (``linux-7.2``, ``kvm-exit-coco-v1``...).
    :param vendor: who contributes (``kvm``, ``snp``, ``tdx``).
    :param source: kernel version or patch revision, with its date and where it
        was read.
    :param released: True for a released kernel, False for a proposal.
    :param exits: exit name → number for every exit this part defines.
    :param union_members: ``kvm_run`` union member name → layout.
    :param error_spaces: the spaces this part's exits use.
    :param duties: the completion duties KVM has under this ABI.
    :param decoders: the decoders the dispatcher uses for this ABI.
    :param discriminators: where exits with sub-calls keep the number.
    :param notes: anything a reviewer should know (unverified facts...).
    :param order: sort key for listings (kernel version or patch date).
    :param frame: the run structure this ABI's exits live in; the core's
        generic part declares it for every released kernel.
    :param renumbers: why this ABI gives exit numbers other meanings than
        another ABI does (a proposal posted before its numbers were allocated);
        empty for an ABI whose numbers agree with every other's. The registry
        rejects a number or an exit name that means something else in another
        ABI unless one of the two says it renumbers (``.. versionadded:: 0.2``).
    """

    abi: str
    vendor: str
    source: str
    released: bool
    exits: Mapping[str, int] = attrs.field(factory=dict)
    union_members: Mapping[str, Layout] = attrs.field(factory=dict)
    error_spaces: tuple[ErrorSpace, ...] = ()
    duties: tuple[CompletionDuty, ...] = ()
    decoders: tuple[ExitDecoder, ...] = ()
    discriminators: tuple[Discriminator, ...] = ()
    notes: tuple[str, ...] = ()
    order: str = ""
    frame: RunFrame | None = None
    renumbers: str = ""


@attrs.frozen
class Abi:
    """A named ABI, merged from every plugin's :class:`AbiPart`."""

    name: str
    parts: tuple[AbiPart, ...]

    @property
    def vendors(self) -> tuple[str, ...]:
        """Contributing vendors other than the core's ``kvm``, sorted."""
        return tuple(sorted({p.vendor for p in self.parts if p.vendor != "kvm"}))

    @property
    def released(self) -> bool:
        """True if every part describes a released kernel."""
        return all(p.released for p in self.parts)

    @property
    def source(self) -> str:
        """The sources of the parts, one per vendor."""
        return "; ".join(f"{p.vendor}: {p.source}" for p in self.parts)

    @property
    def order(self) -> str:
        """Sort key: the largest of the parts' keys."""
        return max((p.order for p in self.parts), default="")

    @property
    def exits(self) -> dict[str, int]:
        """Exit name → number, merged."""
        out: dict[str, int] = {}
        for p in self.parts:
            out.update(p.exits)
        return dict(sorted(out.items(), key=lambda kv: (kv[1], kv[0])))

    @property
    def union_members(self) -> dict[str, Layout]:
        """Union member name → layout, merged."""
        out: dict[str, Layout] = {}
        for p in self.parts:
            out.update(p.union_members)
        return out

    @property
    def error_spaces(self) -> tuple[ErrorSpace, ...]:
        """Every space any part uses, in registration order."""
        seen: dict[str, ErrorSpace] = {}
        for p in self.parts:
            for s in p.error_spaces:
                seen.setdefault(s.id, s)
        return tuple(seen.values())

    @property
    def duties(self) -> tuple[CompletionDuty, ...]:
        """Every part's completion duties."""
        return tuple(d for p in self.parts for d in p.duties)

    @property
    def decoders(self) -> tuple[ExitDecoder, ...]:
        """Every part's decoders."""
        return tuple(d for p in self.parts for d in p.decoders)

    @property
    def discriminators(self) -> dict[int, Discriminator]:
        """Exit reason → where its sub-call number is."""
        return {d.reason: d for p in self.parts for d in p.discriminators}

    @property
    def notes(self) -> tuple[str, ...]:
        """Every part's notes."""
        return tuple(n for p in self.parts for n in p.notes)

    @property
    def renumbers(self) -> str:
        """Why the ABI renumbers exits (its parts' reasons), or empty.

        .. versionadded:: 0.2
        """
        return "; ".join(p.renumbers for p in self.parts if p.renumbers)

    @property
    def frame(self) -> RunFrame | None:
        """The run structure its parts declare (the registry checks they agree)."""
        return next((p.frame for p in self.parts if p.frame is not None), None)

    def kvm_run_layout(self) -> Layout:
        """``struct kvm_run`` as this ABI defines it.

        :raises ConfigurationError: no part declares the run structure.
        """
        frame = self.frame
        if frame is None:
            raise ConfigurationError(f"ABI {self.name!r}: no part declares its run structure")
        extra = {k: v for k, v in self.union_members.items() if k not in frame.generic_members}
        return frame.build(extra)
