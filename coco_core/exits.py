# SPDX-License-Identifier: Apache-2.0
"""The vendor-neutral CoCo exit.

A :class:`CoCoExit` is one decoded exit: which vendor and ABI, the neutral
request, and a view of the raw ``kvm_run`` it came from. It is what
:meth:`~coco_core.dispatch.Dispatcher.decode` returns for a VMM that wants to
answer by hand, and what traces carry. Completing it is one-shot: a second
completion, or a ``RETRY`` after the request was handed on, raises
:class:`~coco_core.errors.CompletionError` instead of writing something the
guest would misread.

Its identity (vendor, ABI, name, reason, request, view) is fixed; what happened
to it is kept in two declared fields, :attr:`CoCoExit.completed` and
:attr:`CoCoExit.handed_on`, which only :meth:`~CoCoExit.complete` and
:meth:`~CoCoExit.hand_on` change. A traced exit is built with both already
set.
"""

from __future__ import annotations

import attrs

from coco_core.completion import Completed, Completion, Result
from coco_core.errors import CompletionError
from coco_core.errorspace import UnknownCode
from coco_core.requests import NeutralRequest
from coco_core.status import CoCoStatus

__all__ = ["CoCoExit", "Completed"]

_fixed = attrs.setters.frozen


@attrs.define
class CoCoExit:
    """One decoded CoCo exit.

    :param vendor: ``snp``, ``tdx``, ... (the dispatcher's vendor).
    :param abi: the ABI it was decoded under.
    :param name: the exit's name as the header spells it (with its sub-call).
    :param exit_reason: ``kvm_run.exit_reason``.
    :param request: the neutral request.
    :param raw: a view of the ``kvm_run`` buffer the exit lives in.
    :param completion: how the exit is completed (None: nobody decodes it).
    :param completed: the completion, once written.
    :param handed_on: True once the request was passed on (to firmware, a
        QGS...) or completed with OK: RETRY is then illegal.
    """

    vendor: str = attrs.field(on_setattr=_fixed)
    abi: str = attrs.field(on_setattr=_fixed)
    name: str = attrs.field(on_setattr=_fixed)
    exit_reason: int = attrs.field(on_setattr=_fixed)
    request: NeutralRequest = attrs.field(on_setattr=_fixed)
    raw: memoryview = attrs.field(eq=False, repr=False, on_setattr=_fixed)
    completion: Completion | None = attrs.field(
        default=None, eq=False, repr=False, on_setattr=_fixed
    )
    completed: Completed | None = attrs.field(default=None, eq=False)
    handed_on: bool = attrs.field(default=False, eq=False)

    def hand_on(self) -> None:
        """Mark the request as passed on (to firmware, a QGS...): RETRY is now illegal."""
        self.handed_on = True

    def complete(self, result: Result) -> Completed:
        """Encode ``result`` in the exit's error space and write it into ``kvm_run``.

        :raises CompletionError: already completed, or RETRY after hand-on.
        :raises CodeError: an explicit ``vendor_code`` the space does not allow.
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
        if self.completion is None:
            done = Completed(status, None, None, None if isinstance(result, CoCoStatus) else result)
        else:
            done = self.completion.write(self.raw, self.request, result)
        self.completed = done
        if status is CoCoStatus.OK:
            self.handed_on = True
        return done

    def describe_raw(self) -> str:
        """The written raw value with its name, for traces."""
        done = self.completed
        if done is None or done.raw is None:
            return "-"
        return f"{done.raw:#x} ({done.raw_name or UnknownCode('?', done.raw)})"
