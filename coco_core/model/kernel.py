# SPDX-License-Identifier: Apache-2.0
"""Running guest-level calls through the kernel model and a dispatcher."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coco_core.dispatch import Dispatcher, Result
from coco_core.errors import ConfigurationError
from coco_core.kernels import DEFAULT_ABI
from coco_core.model.base import (
    GuestCall,
    GuestCpu,
    GuestMemoryLike,
    GuestView,
    KernelContext,
    generation_key,
)
from coco_core.registry import Registry
from coco_core.requests import Unsupported

__all__ = ["KernelModel", "StepHook"]

#: ``hook(exit name, dispatcher result)`` after each exit the model raised
StepHook = Callable[[str, "Result | Unsupported"], None]


class KernelModel:
    """KVM's side of one vendor's CoCo exits, for one VM, one kernel generation.

    :param registry: where the vendor's :class:`~coco_core.model.base.ModelPart` is.
    :param vendor: ``snp``, ``tdx``...
    :param memory: the guest's memory.
    :param generation: the kernel modelled, as an ABI name (``linux-7.2``).
    :param run: the ``kvm_run`` buffer to write exits into (a fresh one by default).
    """

    def __init__(
        self,
        registry: Registry,
        vendor: str,
        memory: GuestMemoryLike,
        generation: str = DEFAULT_ABI,
        run: bytearray | memoryview | None = None,
    ) -> None:
        self.vendor = vendor
        self.calls: dict[str, GuestCall] = {
            c.name: c for part in registry.models if part.vendor == vendor for c in part.calls
        }
        if not self.calls:
            raise ConfigurationError(f"no kernel model registered for vendor {vendor!r}")
        if run is None:
            frame = registry.abi(generation).frame
            if frame is None:
                raise ConfigurationError(f"ABI {generation!r} declares no run structure")
            run = bytearray(frame.size)
        self.ctx = KernelContext(generation, run, memory)

    def call(
        self,
        name: str,
        cpu: GuestCpu,
        dispatcher: Dispatcher,
        context: Any = None,
        on_exit: StepHook | None = None,
    ) -> GuestView:
        """Run guest call ``name`` to its end: every exit goes through ``dispatcher``.

        :raises KvmRunRejected: a completion the kernel would refuse.
        :raises ConfigurationError: unknown call, or one this generation lacks.
        """
        try:
            gc = self.calls[name]
        except KeyError:
            known = ", ".join(sorted(self.calls))
            raise ConfigurationError(f"unknown guest call {name!r}; known: {known}") from None
        if generation_key(self.ctx.generation) < generation_key(gc.since):
            raise ConfigurationError(
                f"{name} does not exit to userspace before {gc.since} "
                f"(model runs {self.ctx.generation})"
            )
        step = gc.enter(self.ctx, cpu)
        while not isinstance(step, GuestView):
            result = dispatcher.dispatch(self.ctx.run, context)
            if on_exit is not None:
                on_exit(step.name, result)
            if gc.resume is None:
                return GuestView({}, "no completion: the guest does not run again")
            step = gc.resume(self.ctx, cpu)
        return step
