# SPDX-License-Identifier: Apache-2.0
"""The CoCo vCPU loop: ``KVM_RUN``, the dispatcher, and work after KVM's completion.

:func:`coco_exit_handler` makes a :class:`~coco_core.kvm.runloop.RunLoop`
callback from a :class:`~coco_core.dispatch.Dispatcher`. Per exit it calls
``dispatcher.dispatch(kvm_run, context)`` once. When a handler's
:class:`~coco_core.status.Outcome` asks for work after the kernel has
completed the exit (the SNP certificate lock, docs/reference/kernel-abi.md §3.2:
"VMM ... sets ``kvm_run.immediate_exit = 1`` and calls ``KVM_RUN``; KVM runs
the completion and returns ``-EINTR`` before entering the guest; the VMM then
drops the lock"), the loop re-enters once with ``immediate_exit = 1``
(:meth:`Vcpu.complete_pending`) and then runs that work. A callback that
raises is logged by :meth:`Outcome.run_after_completion
<coco_core.status.Outcome.run_after_completion>` and the vCPU goes on: the exit
was completed already. A ``KVM_RUN`` that fails on the re-entry still stops
the vCPU (after the callbacks ran), as any ``KVM_RUN`` error does. Exits no
plugin claims go to the VMM's own ``fallback``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from coco_core.dispatch import Dispatcher
from coco_core.kvm.runloop import Action
from coco_core.kvm.vcpu import Vcpu
from coco_core.requests import Unsupported
from coco_core.status import Outcome

__all__ = ["Fallback", "coco_exit_handler"]

log = logging.getLogger("coco_core.kvm.serve")

#: ``fallback(vcpu, unsupported) -> Action`` for exits the dispatcher hands back
Fallback = Callable[[Vcpu, Unsupported], Action]


def _stop(vcpu: Vcpu, unclaimed: Unsupported) -> Action:
    log.info("vCPU %d: exit %d not claimed by any plugin; stopping", vcpu.id, unclaimed.raw_reason)
    return Action.STOP


def coco_exit_handler(
    dispatcher: Dispatcher,
    *,
    fallback: Fallback = _stop,
    context: Callable[[Vcpu], Any] | None = None,
) -> Callable[[Vcpu], Action]:
    """A RunLoop ``on_exit`` callback that answers CoCo exits through ``dispatcher``.

    :param dispatcher: built for the VM's vendor and the kernel's ABI.
    :param fallback: called for exits no plugin claims (HLT, MMIO...); its
        action decides whether the vCPU re-enters. Default: stop.
    :param context: maps the vCPU to the handler context (default: the vCPU).
    """
    dispatch = dispatcher.dispatch
    outcome_type = Outcome

    def on_exit(vcpu: Vcpu) -> Action:
        result = dispatch(vcpu.run_view, vcpu if context is None else context(vcpu))
        if type(result) is outcome_type and result.after_kernel_completion:
            # KVM applies the completion on the next KVM_RUN; do that now without
            # entering the guest, then run the work that had to wait for it.
            try:
                vcpu.complete_pending()
            finally:
                result.run_after_completion()  # never raises: failures are logged
            return Action.CONTINUE
        if isinstance(result, Unsupported):
            return fallback(vcpu, result)
        return Action.CONTINUE

    return on_exit
