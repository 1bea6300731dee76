# SPDX-License-Identifier: Apache-2.0
"""Tests for the CoCo vCPU loop on real KVM."""

from __future__ import annotations

import threading

import pytest

from coco_core.dispatch import Dispatcher
from coco_core.emulated.guestbuild import boot_guest
from coco_core.emulated.ports import PINGPONG_PORT, RESULT_PORT
from coco_core.kvm.runloop import Action, RunLoop, StopReason
from coco_core.kvm.serve import coco_exit_handler
from coco_core.kvm.system import Kvm
from coco_core.kvm.vcpu import Vcpu
from coco_core.registry import Registrar, Registry
from coco_core.requests import PortIo, Unsupported
from coco_core.status import CoCoStatus, Outcome

pytestmark = pytest.mark.requires_kvm


class _VendorOnly:
    """A plugin that only declares a vendor, so a dispatcher can be built."""

    __name__ = "coco_servetest.plugin"

    @staticmethod
    def coco_register_vendor(registrar: Registrar) -> None:
        registrar.add_vendor("servetest", "serve test vendor")


def _registry() -> Registry:
    from coco_core.hookspecs import hookimpl

    hookimpl(_VendorOnly.coco_register_vendor)
    return Registry.from_plugins([_VendorOnly])  # type: ignore[list-item]


def test_after_completion_work_runs_once_kvm_completed(kvm: Kvm) -> None:
    """Work an Outcome defers runs after an immediate_exit re-entry, then the guest goes on."""
    reg = _registry()
    d = Dispatcher(reg, "servetest")
    events: list[str] = []
    lock = threading.Lock()

    def on_io(req: PortIo, vcpu: Vcpu) -> CoCoStatus | Outcome:
        if req.port == RESULT_PORT:
            return CoCoStatus.OK
        if not req.out:
            vcpu.run_view[req.data_offset] = 0x5A
            return CoCoStatus.OK
        with lock:
            events.append("handled")
        return Outcome(CoCoStatus.OK, after_kernel_completion=(lambda: events.append("released"),))

    d.on(PortIo, on_io)
    stops: list[int] = []

    def fallback(vcpu: Vcpu, exit_: Unsupported) -> Action:
        stops.append(exit_.raw_reason)
        return Action.STOP

    with boot_guest(kvm, "pingpong") as guest:
        vcpu = guest.vcpus[0]
        vcpu.set_regs(vcpu.get_regs().replace(rdi=3, rsi=PINGPONG_PORT))
        handler = coco_exit_handler(d, fallback=fallback)

        def on_exit(v: Vcpu) -> Action:
            io = v.io()
            if io.port == RESULT_PORT:
                return Action.STOP
            return handler(v)

        (result,) = RunLoop([vcpu], on_exit, deadline=10.0).run(timeout=20.0)
    assert result.reason is StopReason.CALLBACK, result
    assert events == ["handled", "released"] * 3
    assert stops == []
