# SPDX-License-Identifier: Apache-2.0
"""The vendor-neutral CoCo exit.

A :class:`CoCoExit` is one decoded exit: which vendor and ABI, the neutral
request, and a view of the raw ``kvm_run`` it came from. It is what
:meth:`~coco_core.dispatch.Dispatcher.decode` returns for a VMM that wants to
answer by hand, and what traces carry. Completing it is one-shot: a second
completion, or a ``RETRY`` after the request was handed on, raises
:class:`CompletionError` instead of writing something the guest would
misread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from coco_core.errors import CoCoError
from coco_core.errorspace import UnknownCode
from coco_core.requests import NeutralRequest
from coco_core.status import CoCoStatus, Outcome

if TYPE_CHECKING:
    from coco_core.abi import ExitDecoder

__all__ = ["CoCoExit", "Completed", "CompletionError"]


class CompletionError(CoCoError):
    """An exit was completed twice, or with RETRY after it was handed on."""


@attrs.frozen
class Completed:
    """What a completion wrote: the status, the raw value and its name.

    ``raw`` is None when the exit has no completion (termination) or was left
    untouched for the VMM.
    """

    status: CoCoStatus | None
    raw: int | None
    raw_name: str | None
    outcome: Outcome | None = None


@attrs.frozen
class CoCoExit:
    """One decoded CoCo exit.

    :param vendor: ``snp``, ``tdx``, ... (the dispatcher's vendor).
    :param abi: the ABI it was decoded under.
    :param name: the exit's name as the header spells it (with its sub-call).
    :param exit_reason: ``kvm_run.exit_reason``.
    :param request: the neutral request.
    :param raw: a view of the ``kvm_run`` buffer the exit lives in.
    """

    vendor: str
    abi: str
    name: str
    exit_reason: int
    request: NeutralRequest
    raw: memoryview = attrs.field(eq=False, repr=False)
    _decoder: ExitDecoder | None = attrs.field(eq=False, repr=False, default=None)
    _state: list[Completed | bool] = attrs.field(eq=False, repr=False, factory=list)

    @property
    def completed(self) -> Completed | None:
        """The completion, once written."""
        for s in self._state:
            if isinstance(s, Completed):
                return s
        return None

    @property
    def handed_on(self) -> bool:
        """True once :meth:`hand_on` was called or the exit was completed with OK."""
        return True in self._state

    def hand_on(self) -> None:
        """Mark the request as passed on (to firmware, a QGS...): RETRY is now illegal."""
        self._state.append(True)

    def complete(self, result: CoCoStatus | Outcome) -> Completed:
        """Encode ``result`` in the exit's error space and write it into ``kvm_run``.

        :raises CompletionError: already completed, or RETRY after hand-on.
        """
        status = result if isinstance(result, CoCoStatus) else result.status
        if self.completed is not None:
            raise CompletionError(
                f"{self.name}: already completed with {self.completed.status}; "
                f"cannot complete again with {status.name}"
            )
        if status is CoCoStatus.RETRY and self.handed_on:
            raise CompletionError(
                f"{self.name}: RETRY after the request was handed on would make the guest "
                "resend a request that was already consumed"
            )
        from coco_core.dispatch import write_completion

        done = write_completion(self._decoder, self.raw, self.request, result)
        self._state.append(done)
        if status is CoCoStatus.OK:
            self._state.append(True)
        return done

    def describe_raw(self) -> str:
        """The written raw value with its name, for traces."""
        done = self.completed
        if done is None or done.raw is None:
            return "-"
        return f"{done.raw:#x} ({done.raw_name or UnknownCode('?', done.raw)})"
