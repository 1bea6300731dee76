# SPDX-License-Identifier: Apache-2.0
"""The emulated-TEE doorbell: real guests driving CoCo exit handling over port I/O.

The hosts coco is developed on cannot raise the CoCo exits themselves (no SNP
or TDX hardware; ``vmcall``/``vmmcall`` do not exit). A real guest can still
make a request the way a TDX or SNP guest would, by putting the registers in
place and ringing a *doorbell*: a port I/O exit the VMM turns into the request.

Port map (``out`` with ``DX`` = port, so 16-bit ports work; the ``.equ``
values in ``coco_core/emulated/guest/doorbell.S`` must match):

``0x0CC0`` :data:`DOORBELL_TDVMCALL_PORT`
    "TDVMCALL". The guest sets the registers as ``TDG.VP.VMCALL`` would
    (R10 = 0 for a standard leaf, R11 = leaf, R12..R15 = arguments) and
    executes ``out %al, %dx``. The VMM returns R10 = status and outputs in
    R11..R15 (TDX GHCI, TDG.VP.VMCALL).
``0x0CC1`` :data:`DOORBELL_VMGEXIT_PORT`
    "VMGEXIT" for SNP. Register use is set by the VMM side (RAX carries the
    GHCB MSR protocol value in the lead's handlers).
``0x0CCE`` :data:`CONSOLE_PORT`
    one console byte per ``out``.
``0x0CCF`` :data:`RESULT_PORT`
    the test result (``out`` of 1, 2 or 4 bytes): 0 pass, anything else a
    guest-defined fail code. The guest halts afterwards.
``0x0CD0`` :data:`PINGPONG_PORT`
    the round-trip benchmark guest's port.

VMM side: on an ``OUT`` to a doorbell port, :class:`DoorbellRouter` first
completes the pending I/O in the kernel (:meth:`Vcpu.complete_pending`, so
RIP is past the ``out`` and register state is consistent), reads the
registers with ``KVM_GET_REGS``, calls ``handler(vcpu, regs) -> regs``,
writes the result with ``KVM_SET_REGS`` if it changed, and re-enters. In the
guest framework, ``doorbell``/``tdvmcall``/``vmgexit`` preserve RDX (the
port), so a handler's change to RDX is not seen by the guest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import attrs

from coco_core.emulated.ports import (
    CONSOLE_PORT,
    RESULT_PORT,
)
from coco_core.errors import UnexpectedExit
from coco_core.generic.uapi import KVM_EXIT_IO_OUT, KvmExitReason
from coco_core.kvm.runloop import Action, run_until
from coco_core.kvm.structs import Regs
from coco_core.kvm.vcpu import Vcpu

__all__ = [
    "DoorbellHandler",
    "DoorbellRouter",
    "GuestRun",
]


DoorbellHandler = Callable[[Vcpu, Regs], Regs]


@attrs.frozen
class GuestRun:
    """The outcome of :meth:`DoorbellRouter.run`."""

    #: the code the guest reported on RESULT_PORT (0 = pass)
    result: int
    #: what the guest wrote to CONSOLE_PORT
    console: str
    #: exits handled (including the result exit)
    exits: int

    @property
    def passed(self) -> bool:
        """Whether the guest reported 0."""
        return self.result == 0


class DoorbellRouter:
    """Routes doorbell port exits to handlers; captures console and result.

    :meth:`on_exit` has the :class:`~coco_core.kvm.runloop.RunLoop` callback
    signature. Results and console output are kept per vCPU id.
    """

    def __init__(self, handlers: Mapping[int, DoorbellHandler] | None = None) -> None:
        self.handlers: dict[int, DoorbellHandler] = dict(handlers or {})
        self.results: dict[int, int] = {}
        self.consoles: dict[int, bytearray] = {}
        self.exits: dict[int, int] = {}
        self.unexpected: dict[int, str] = {}
        self._lock = threading.Lock()

    def register(self, port: int, handler: DoorbellHandler) -> None:
        """Route ``OUT`` exits to ``port`` to ``handler``."""
        if port in (CONSOLE_PORT, RESULT_PORT):
            raise ValueError(f"port {port:#06x} is reserved for the console/result")
        self.handlers[port] = handler

    def console(self, vcpu_id: int = 0) -> str:
        """Console output of one vCPU so far."""
        return self.consoles.get(vcpu_id, bytearray()).decode("utf-8", "replace")

    def on_exit(self, vcpu: Vcpu) -> Action:
        """Handle one exit of ``vcpu``; :attr:`Action.STOP` on the result or an unknown exit."""
        vid = vcpu.id
        self.exits[vid] = self.exits.get(vid, 0) + 1
        reason = vcpu.exit_reason
        if reason != KvmExitReason.IO:
            self.unexpected[vid] = f"exit_reason {reason}"
            return Action.STOP
        io = vcpu.io()
        if io.direction != KVM_EXIT_IO_OUT:
            self.unexpected[vid] = f"IN from port {io.port:#06x}"
            return Action.STOP
        if io.port == CONSOLE_PORT:
            with self._lock:
                self.consoles.setdefault(vid, bytearray()).extend(vcpu.io_data())
            return Action.CONTINUE
        if io.port == RESULT_PORT:
            self.results[vid] = int.from_bytes(vcpu.io_data()[: io.size], "little")
            return Action.STOP
        handler = self.handlers.get(io.port)
        if handler is None:
            self.unexpected[vid] = f"OUT to unrouted port {io.port:#06x}"
            return Action.STOP
        vcpu.complete_pending()
        regs = vcpu.get_regs()
        new = handler(vcpu, regs)
        if new != regs:
            vcpu.set_regs(new)
        return Action.CONTINUE

    def run(self, vcpu: Vcpu, deadline: float = 10.0) -> GuestRun:
        """Run ``vcpu`` in this thread until it reports a result (bounded by ``deadline``)."""
        run_until(vcpu, lambda v: self.on_exit(v) is Action.STOP, deadline)
        return self.outcome(vcpu.id)

    def outcome(self, vcpu_id: int = 0) -> GuestRun:
        """The :class:`GuestRun` of a vCPU that has stopped; raises if it never reported."""
        if vcpu_id in self.unexpected:
            raise UnexpectedExit(
                f"vCPU {vcpu_id}: {self.unexpected[vcpu_id]} (console: {self.console(vcpu_id)!r})"
            )
        if vcpu_id not in self.results:
            raise UnexpectedExit(f"vCPU {vcpu_id} stopped without reporting a result")
        return GuestRun(self.results[vcpu_id], self.console(vcpu_id), self.exits.get(vcpu_id, 0))
