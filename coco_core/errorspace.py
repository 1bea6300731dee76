# SPDX-License-Identifier: Apache-2.0
"""Error spaces: how each vendor spells a neutral status, and where it lands.

An :class:`ErrorSpace` belongs to a plugin. It names its raw codes after the C
macros, says how wide they are and where the value lands (kvm_run ``ret``, a
guest register KVM sets, a field in a shared guest buffer, a QGS header), and
holds total encode/decode tables that are checked when the space is built:

* every :class:`~coco_core.status.CoCoStatus` encodes, either to its own
  *primary* code or through a declared *fallback* to another status (so
  "which statuses this space cannot express" is data, not a run-time surprise);
* primary codes are distinct (injective), every named code decodes, and
  ``decode(encode(s))`` gives ``s`` (or its declared fallback);
* every value the space can produce fits its width and, for spaces the kernel
  translates, is one the kernel accepts.

Raw values no table knows decode to :class:`UnknownCode`, which keeps the value;
nothing is guessed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from coco_core.errors import CodeError, RegistrationError
from coco_core.status import CoCoStatus

__all__ = ["CodeError", "ErrorSpace", "Landing", "UnknownCode"]


class Landing(enum.Enum):
    """Where a space's value lands, and who acts on it."""

    #: A field of ``kvm_run`` that KVM reads and translates for the guest.
    KVM_RUN_TRANSLATED = "kvm_run field, translated by KVM"
    #: A field of ``kvm_run`` that KVM copies verbatim into a guest register.
    KVM_RUN_VERBATIM = "kvm_run field, copied verbatim into a guest register"
    #: A guest register or guest-visible field KVM writes (what the guest sees).
    GUEST_REGISTER = "guest register written by KVM"
    #: A field in a buffer shared with the guest, written by the VMM.
    GUEST_BUFFER = "shared guest buffer, written by the VMM"
    #: A header field of a host service's wire protocol.
    SERVICE_WIRE = "host service wire protocol"


@attrs.frozen
class UnknownCode:
    """A raw value that no table of ``space`` knows; kept as it came."""

    space: str
    raw: int

    def __str__(self) -> str:
        return f"{self.space}: unknown code {self.raw:#x}"


@attrs.frozen(eq=False, kw_only=True)
class ErrorSpace:
    """One vendor error space with total, checked encode/decode tables.

    :param id: ``vendor.document``, e.g. ``tdx.tdvmcall``, ``snp.ghcb_vmm``.
    :param title: one line for people.
    :param width: value width in bits.
    :param landing: where the value lands.
    :param names: every raw value the space defines, with its C macro name.
    :param primary: the code each status encodes to, where the space has one.
    :param decodes: what each named raw value means (defaults to the inverse of
        ``primary``; add entries for extra codes such as ``ALIGN_ERROR``).
    :param fallbacks: for statuses with no primary code, the status whose code
        is written instead (declared, so it shows in comparisons).
    :param kernel_accepts: for spaces the kernel checks, every value it
        accepts; any other value makes ``KVM_RUN`` fail. None if unchecked.
    :param source: header path and version or spec section.
    :raises RegistrationError: the tables are not total, injective and
        round-tripping, or a value does not fit.

    .. versionadded:: 0.1
    """

    id: str
    title: str
    width: int
    landing: Landing
    names: Mapping[int, str]
    primary: Mapping[CoCoStatus, int]
    decodes: Mapping[int, CoCoStatus] = attrs.field(factory=dict)
    fallbacks: Mapping[CoCoStatus, CoCoStatus] = attrs.field(factory=dict)
    kernel_accepts: frozenset[int] | None = None
    source: str = ""
    _encode: dict[CoCoStatus, int] = attrs.field(init=False, repr=False)
    _decode: dict[int, CoCoStatus] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        problems = self._check()
        if problems:
            raise RegistrationError(
                f"error space {self.id!r} is inconsistent: " + "; ".join(problems)
            )
        encode = {s: self.primary[s] for s in self.primary}
        for s, target in self.fallbacks.items():
            encode[s] = self.primary[target]
        decode = {raw: s for s, raw in self.primary.items()}
        decode.update(self.decodes)
        object.__setattr__(self, "_encode", encode)
        object.__setattr__(self, "_decode", decode)

    def _check(self) -> list[str]:
        problems: list[str] = []
        limit = 1 << self.width
        for raw, name in self.names.items():
            if not 0 <= raw < limit:
                problems.append(f"{name} = {raw:#x} does not fit in {self.width} bits")
        seen: dict[int, CoCoStatus] = {}
        for s, raw in self.primary.items():
            if raw in seen:
                problems.append(
                    f"{s.name} and {seen[raw].name} share the primary code {raw:#x} (not injective)"
                )
            seen[raw] = s
            if raw not in self.names:
                problems.append(f"primary code {raw:#x} of {s.name} has no name")
        for raw, s in self.decodes.items():
            if raw not in self.names:
                problems.append(f"decoded code {raw:#x} has no name")
            if raw in self.primary.values() and seen[raw] is not s:
                problems.append(
                    f"{self.names.get(raw, hex(raw))} is the primary code of {seen[raw].name} "
                    f"but decodes to {s.name} (no round trip)"
                )
        for s in CoCoStatus:
            if s in self.primary:
                if s in self.fallbacks:
                    problems.append(f"{s.name} has both a primary code and a fallback")
                continue
            target = self.fallbacks.get(s)
            if target is None:
                problems.append(f"{s.name} has neither a primary code nor a fallback (not total)")
            elif target not in self.primary:
                problems.append(f"{s.name} falls back to {target.name}, which has no primary code")
        for raw in self.names:
            if raw not in self.primary.values() and raw not in self.decodes:
                problems.append(f"{self.names[raw]} = {raw:#x} does not decode to any status")
        if self.kernel_accepts is not None:
            for s, raw in self.primary.items():
                if raw not in self.kernel_accepts:
                    problems.append(
                        f"{s.name} encodes to {raw:#x}, which the kernel rejects "
                        f"(accepts {sorted(self.kernel_accepts)})"
                    )
        return problems

    # -- the tables ------------------------------------------------------------------

    def encode(self, status: CoCoStatus) -> int:
        """The raw value written for ``status`` (its primary code or its fallback's)."""
        return self._encode[status]

    def decode(self, raw: int) -> CoCoStatus | UnknownCode:
        """The status ``raw`` means, or :class:`UnknownCode` keeping ``raw``."""
        s = self._decode.get(raw)
        return s if s is not None else UnknownCode(self.id, raw)

    def name_of(self, raw: int) -> str | None:
        """The C macro name of ``raw``, None if the space does not define it."""
        return self.names.get(raw)

    def expresses(self, status: CoCoStatus) -> bool:
        """True if ``status`` has a code of its own (no fallback)."""
        return status in self.primary

    def check_vendor_code(self, raw: int, status: CoCoStatus) -> int:
        """Validate a handler's explicit ``vendor_code`` for ``status``; return it.

        :raises CodeError: the code is unknown to the space or means another status.
        """
        meant = self._decode.get(raw)
        if meant is None:
            raise CodeError(
                self.id, raw, status, f"{self.id}: {raw:#x} is not a code of this space"
            )
        if meant is not status and self.fallbacks.get(status) is not meant:
            raise CodeError(
                self.id,
                raw,
                status,
                f"{self.id}: {self.names[raw]} ({raw:#x}) means {meant.name}, not {status.name}",
            )
        return raw

    def rows(self) -> list[tuple[str, int, str, bool]]:
        """``(status, raw, name, is_fallback)`` for every status, in enum order."""
        return [
            (s.name, self._encode[s], self.names[self._encode[s]], s not in self.primary)
            for s in CoCoStatus
        ]

    def to_json(self) -> dict[str, object]:
        """A JSON-ready description of the space."""
        return {
            "id": self.id,
            "title": self.title,
            "width": self.width,
            "landing": self.landing.value,
            "source": self.source,
            "encode": {
                s.name: {"raw": raw, "name": name, "fallback": fb}
                for (_, raw, name, fb), s in zip(self.rows(), CoCoStatus, strict=True)
            },
            "codes": [
                {"raw": raw, "name": name, "status": self._decode[raw].name}
                for raw, name in sorted(self.names.items())
            ],
            "kernel_accepts": None if self.kernel_accepts is None else sorted(self.kernel_accepts),
        }
