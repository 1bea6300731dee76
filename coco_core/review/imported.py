# SPDX-License-Identifier: Apache-2.0
"""What a reviewer's file declares, in the shape :mod:`coco_core.review.compare` reads.

:class:`ImportedAbi` is built by :mod:`coco_core.review.files` from a header or a patch:
union members and exit numbers, no decoders, error spaces or duties.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from coco_core.abi import CompletionDuty, ExitDecoder
from coco_core.errorspace import ErrorSpace
from coco_core.layout import Layout

__all__ = ["ImportedAbi"]


@attrs.frozen
class ImportedAbi:
    """A layout read from a C header or a patch, to compare against an ABI.

    :param union_members: the members read (one struct, or every member of
        ``kvm_run``'s exit union when the file defines ``struct kvm_run``).
    :param exits: the ``KVM_EXIT_*`` exit reasons the file defines at file scope.
    :param notes: what a reader should know about how the file was read.
    :param member_exits: member → the ``KVM_EXIT_*`` names its ``/* KVM_EXIT_* */``
        comment gives (``hypercall`` → ``("KVM_EXIT_HYPERCALL",)``).
    :param whole: True if the file defines ``struct kvm_run``: every exit-union member
        and every exit reason is there, so what it lacks is a difference.
    :param errors: member → ``FILE:LINE: message`` for the exit-union members that could
        not be laid out (a type defined in a header the file includes but coco could not read).
    :param series: patch mails: one line per mail read, in order.
    """

    name: str
    source: str
    union_members: Mapping[str, Layout]
    exits: Mapping[str, int] = attrs.field(factory=dict)
    notes: tuple[str, ...] = ()
    member_exits: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    whole: bool = False
    errors: Mapping[str, str] = attrs.field(factory=dict)
    series: tuple[str, ...] = ()

    @property
    def decoders(self) -> tuple[ExitDecoder, ...]:
        """Always empty: a header carries no decoders."""
        return ()

    @property
    def error_spaces(self) -> tuple[ErrorSpace, ...]:
        """Always empty."""
        return ()

    @property
    def duties(self) -> tuple[CompletionDuty, ...]:
        """Always empty."""
        return ()

    @property
    def discriminators(self) -> dict[int, Any]:
        """Always empty."""
        return {}
