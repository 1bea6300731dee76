# SPDX-License-Identifier: Apache-2.0
"""The run loop's error paths with a scripted vCPU (no /dev/kvm needed).

This host's KVM cannot raise ``KVM_EXIT_MEMORY_FAULT`` (docs/reference/kvm-host.md),
so the ``KVM_RUN`` -> EFAULT path is driven by a stand-in vCPU whose ``run()``
returns a scripted sequence, exactly as :class:`coco_core.kvm.vcpu.Vcpu` reports.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import pytest

from coco_core.dispatch import Dispatcher
from coco_core.kvm.runloop import Action, RunLoop, StopReason
from coco_core.kvm.serve import coco_exit_handler
from coco_core.kvm.vcpu import RunOutcome
from coco_core.registry import Registrar, Registry
from coco_core.requests import MemoryFault, MsrAccess, Unsupported
from coco_core.services.memattr import MemoryAttributeTracker
from coco_core.status import CoCoStatus, Outcome


class _ScriptedVcpu:
    """A vCPU whose KVM_RUN results and kvm_run images come from a script."""

    def __init__(self, script: list[tuple[RunOutcome, int, bytes]]) -> None:
        self.id = 0
        self.run_view = memoryview(bytearray(0x3000))
        self._script = script

    @property
    def exit_reason(self) -> int:
        return int(struct.unpack_from("<I", self.run_view, 8)[0])

    @property
    def immediate_exit(self) -> int:
        return self.run_view[1]

    @immediate_exit.setter
    def immediate_exit(self, value: int) -> None:
        self.run_view[1] = value

    def run(self) -> RunOutcome:
        outcome, reason, union = self._script.pop(0)
        struct.pack_into("<I", self.run_view, 8, reason)
        self.run_view[32 : 32 + len(union)] = union
        return outcome

    def complete_pending(self) -> None:
        return None


def _registry() -> Registry:
    from coco_core.hookspecs import hookimpl

    class _Vendor:
        __name__ = "coco_faulttest.plugin"

        @staticmethod
        @hookimpl
        def coco_register_vendor(registrar: Registrar) -> None:
            registrar.add_vendor("faulttest", "fault test")

    return Registry.from_plugins([_Vendor])  # type: ignore[list-item]


def test_memory_fault_with_efault_reaches_the_handler_and_converts() -> None:
    """KVM_RUN failing with EFAULT and exit 39 is handed to the dispatcher, which converts."""
    ram = 1 << 20
    tracker = MemoryAttributeTracker(lambda gpa, size: gpa >= 0 and gpa + size <= ram)
    d = Dispatcher(_registry(), "faulttest")
    d.on(MemoryFault, tracker.on_fault)
    stops: list[int] = []

    def fallback(vcpu: Any, exit_: Unsupported) -> Action:
        stops.append(exit_.raw_reason)
        return Action.STOP

    # memory_fault: flags = PRIVATE (1 << 3), gpa = 0x3000, size = 0x1000
    fault = struct.pack("<QQQ", 1 << 3, 0x3000, 0x1000)
    vcpu = _ScriptedVcpu(
        [
            (RunOutcome.FAULT, 39, fault),  # KVM_EXIT_MEMORY_FAULT with KVM_RUN -1/EFAULT
            (RunOutcome.EXIT, 5, b""),  # KVM_EXIT_HLT: nobody claims it
        ]
    )
    tracker.set_range(0, ram, False)
    (result,) = RunLoop([vcpu], coco_exit_handler(d, fallback=fallback)).run(timeout=5)  # type: ignore[list-item]
    assert result.reason is StopReason.CALLBACK
    assert result.exits == 2
    assert tracker.is_private(0x3000)
    assert not tracker.is_private(0x4000)
    assert stops == [5]


def test_efault_without_memory_fault_is_an_error() -> None:
    """EFAULT with any other exit_reason is a KVM_RUN error, not an exit."""
    d = Dispatcher(_registry(), "faulttest")
    vcpu = _ScriptedVcpu([(RunOutcome.FAULT, 2, b"")])
    (result,) = RunLoop([vcpu], coco_exit_handler(d)).run(timeout=5)  # type: ignore[list-item]
    assert result.reason is StopReason.ERROR
    assert "EFAULT" in str(result.error) or "FAULT" in str(result.error)


def test_failing_after_completion_callback_keeps_the_vcpu_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A raising after-completion callback is logged by name; the next one and the vCPU go on."""
    d = Dispatcher(_registry(), "faulttest")
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("lock file vanished")

    def fine() -> None:
        ran.append("released")

    def on_fault(req: MemoryFault, ctx: Any) -> Outcome:
        return Outcome(CoCoStatus.OK, after_kernel_completion=(broken, fine))

    d.on(MemoryFault, on_fault)
    stops: list[int] = []

    def fallback(vcpu: Any, exit_: Unsupported) -> Action:
        stops.append(exit_.raw_reason)
        return Action.STOP

    fault = struct.pack("<QQQ", 0, 0x3000, 0x1000)
    vcpu = _ScriptedVcpu(
        [
            (RunOutcome.FAULT, 39, fault),
            (RunOutcome.FAULT, 39, fault),
            (RunOutcome.EXIT, 5, b""),  # KVM_EXIT_HLT, handed to the fallback
        ]
    )
    with caplog.at_level(logging.ERROR):
        (result,) = RunLoop([vcpu], coco_exit_handler(d, fallback=fallback)).run(timeout=5)  # type: ignore[list-item]
    assert result.reason is StopReason.CALLBACK, result
    assert result.exits == 3
    assert ran == ["released", "released"]
    assert stops == [5]
    assert "broken" in caplog.text
    assert "lock file vanished" in caplog.text


def test_refused_outcome_still_runs_its_callbacks() -> None:
    """An Outcome refused for a bad vendor code is answered ERROR (#GP) but its callbacks run."""
    d = Dispatcher(_registry(), "faulttest")
    ran: list[str] = []
    d.on(
        MsrAccess,
        lambda r, c: Outcome(
            CoCoStatus.OK, vendor_code=999, after_kernel_completion=(lambda: ran.append("x"),)
        ),
    )
    vcpu = _ScriptedVcpu([(RunOutcome.EXIT, 29, bytes(24)), (RunOutcome.EXIT, 5, b"")])
    RunLoop([vcpu], coco_exit_handler(d)).run(timeout=5)  # type: ignore[list-item]
    assert vcpu.run_view[32] == 1  # msr.error = 1: the generic error (#GP)
    assert ran == ["x"]
