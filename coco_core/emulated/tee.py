# SPDX-License-Identifier: Apache-2.0
"""The emulated TEE: a real guest on any KVM raises CoCo requests through a doorbell.

On a host without SNP or TDX (our development and CI machines run a software
KVM, ``docs/reference/kvm-host.md``) the kernel cannot raise the CoCo exits. A real
x86 guest can still ask for what a TD or an SNP guest asks for: it puts the
registers in place as the vendor's guest-hypervisor interface says and rings
the vendor's *doorbell* (an ``out`` to :attr:`ModelPart.doorbell_port
<coco_core.model.base.ModelPart.doorbell_port>`, see
:mod:`coco_core.emulated.doorbell`). :class:`EmulatedTee` then plays the kernel:

1. the vCPU registers become a :class:`~coco_core.model.base.GuestCpu`
   (``Regs`` → dict of lower-case names; the GHCB fields the vendor mirrors
   into registers, :attr:`ModelPart.ghcb_to_regs`, are seeded from them);
2. the vendor's ``route(cpu)`` names the guest call (``tdx.get_quote``...);
3. :meth:`KernelModel.call <coco_core.model.kernel.KernelModel.call>` writes the
   byte-exact ``kvm_run`` KVM would write, the dispatcher answers it (the same
   dispatcher, handlers and services a VMM uses on real hardware), and the model
   applies KVM's completion;
4. the GHCB fields are mirrored into registers and the registers go back to
   the vCPU; the guest checks the answer in its own registers and memory.

What the guest gets when something is wrong (hostile-guest rule, DESIGN.md):

* a call the route does not know, or registers that name no call: the vendor's
  ``<vendor>.unsupported`` call answers (TDX: R10 = ``SUBFUNC_UNSUPPORTED``;
  SNP: ``SW_EXITINFO1`` = 2, ``SW_EXITINFO2`` = ``GHCB_ERR_INVALID_EVENT``), as
  KVM answers an unknown TDVMCALL leaf or VMGEXIT exit code in the kernel;
* a handler that raises: the dispatcher completes with the vendor's generic
  error (:class:`~coco_core.dispatch.Dispatcher`), the VMM keeps running;
* a model failure (a bug, or a call the modelled kernel generation lacks): the
  same ``unsupported`` answer, logged and recorded in :attr:`TeeCall.error`;
* a completion the kernel would refuse (:class:`~coco_core.model.base.KvmRunRejected`):
  that is a **VMM bug**, not a guest error. It is logged at error level,
  recorded (:attr:`EmulatedTee.rejections`) and the vCPU is stopped, as a real
  ``KVM_RUN`` would fail with ``EINVAL``.

A call with no completion (TDX ``ReportFatalError``, SNP termination) stops
the vCPU: the guest does not run again.

Extra guest ports of the emulated TEE (the guest programs in
``coco_core/emulated/guest/`` use them; keep the ``.equ`` values in sync):

``0x0CCD`` :data:`REPORT_PORT`
    the guest reports a value to the VMM: RDI = tag, RSI = value. The demo
    guests report e.g. a checksum of the quote they received, so the VMM can
    compare it with the bytes the service wrote (a real guest would not need
    this: it would hand the quote to a verifier).

:func:`run_guest` boots a guest (:func:`~coco_core.emulated.guestbuild.boot_guest`),
builds the :class:`~coco_core.kvm.vm.GuestMemory` over its RAM (the same object
the services write into), runs it under a watchdog deadline and returns an
:class:`EmulatedRun`.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from coco_core.dispatch import Dispatcher, Result
from coco_core.emulated.doorbell import DoorbellRouter
from coco_core.emulated.ports import REPORT_PORT
from coco_core.errors import ConfigurationError
from coco_core.generic.uapi import EXIT_REASON, KvmExitReason
from coco_core.kvm.closing import Closing
from coco_core.kvm.runloop import Action, RunDeadlineExceeded, run_until
from coco_core.kvm.structs import Regs
from coco_core.model.base import GuestCpu, GuestMemoryLike, KvmRunRejected, ModelPart
from coco_core.model.kernel import KernelModel
from coco_core.registry import DEFAULT_ABI, Registry
from coco_core.requests import Unsupported
from coco_core.status import Outcome

if TYPE_CHECKING:
    from coco_core.emulated.guestbuild import BootedGuest
    from coco_core.kvm.system import Kvm
    from coco_core.kvm.vcpu import Vcpu
    from coco_core.kvm.vm import GuestMemory

__all__ = [
    "REPORT_PORT",
    "EmulatedGuest",
    "EmulatedRun",
    "EmulatedTee",
    "TeeCall",
    "cpu_from_regs",
    "fnv1a32",
    "regs_from_cpu",
    "run_guest",
]

log = logging.getLogger("coco_core.emulated.tee")

#: the guest reports (RDI = tag, RSI = value) to the VMM; see the module docstring

_U64 = (1 << 64) - 1
_REASON = struct.Struct("<I")
_REG_NAMES = tuple(a.name for a in attrs.fields(Regs))
#: registers a call may change; RIP, RFLAGS and RSP stay the vCPU's own
_WRITABLE = frozenset(_REG_NAMES) - {"rip", "rflags", "rsp"}


def cpu_from_regs(regs: Regs, apic_id: int = 0, ghcb_to_regs: Mapping[str, str] = {}) -> GuestCpu:
    """A :class:`GuestCpu` from vCPU registers; GHCB fields seeded from their mirror registers."""
    values = attrs.asdict(regs)
    ghcb = {field: values[reg] for field, reg in ghcb_to_regs.items() if reg in values}
    return GuestCpu(regs=values, ghcb=ghcb, apic_id=apic_id)


def regs_from_cpu(regs: Regs, cpu: GuestCpu, ghcb_to_regs: Mapping[str, str] = {}) -> Regs:
    """``regs`` with the GPRs the call left in ``cpu`` and the GHCB fields mirrored."""
    changes = {k: v & _U64 for k, v in cpu.regs.items() if k in _WRITABLE and isinstance(v, int)}
    for field, reg in ghcb_to_regs.items():
        value = cpu.ghcb.get(field)
        if reg in _WRITABLE and isinstance(value, int):
            changes[reg] = value & _U64
    return regs.replace(**changes)


@attrs.frozen
class TeeCall:
    """One doorbell call as the emulated TEE answered it.

    :param vcpu_id: the vCPU (its APIC id in the model).
    :param name: the guest call run (``tdx.get_quote``), None if none could run.
    :param summary: what the guest saw, one line (``R10=TDVMCALL_STATUS_SUCCESS``).
    :param values: the guest-visible results the model reported.
    :param error: why the guest got the ``unsupported`` answer instead, if it did.
    :param rejected: the kernel would have refused the VMM's completion (a VMM bug).
    :param final: the guest does not run again (fatal error, termination, rejection).
    """

    vcpu_id: int
    name: str | None
    summary: str
    values: Mapping[str, int] = attrs.field(factory=dict)
    error: str | None = None
    rejected: bool = False
    final: bool = False


def _doorbell_part(registry: Registry, vendor: str) -> ModelPart:
    for part in registry.models:
        if part.vendor == vendor and part.doorbell_port is not None and part.route is not None:
            return part
    raise ConfigurationError(
        f"vendor {vendor!r} registered no model part with a doorbell_port and a route: "
        "the emulated TEE cannot route its guest calls"
    )


class EmulatedTee:
    """Turns doorbell exits into the kernel's CoCo exits through the kernel model.

    :param registry: the vendor's model parts and decoders.
    :param vendor: ``snp`` or ``tdx``.
    :param memory: the guest's memory (the services write into the same object).
    :param dispatcher: the VMM's dispatcher for ``vendor``.
    :param generation: the kernel modelled (an ABI name).
    :param context: passed to the handlers (the dispatcher's second argument).
    :param on_call: called with every :class:`TeeCall` (tracing, demo lines).

    Callbacks a handler defers with :attr:`Outcome.after_kernel_completion
    <coco_core.status.Outcome.after_kernel_completion>` (the SNP certificate
    lock) run once the model has applied KVM's completion, as a run loop runs
    them after the ``immediate_exit`` re-entry.
    """

    def __init__(
        self,
        registry: Registry,
        vendor: str,
        memory: GuestMemoryLike,
        dispatcher: Dispatcher,
        *,
        generation: str = DEFAULT_ABI,
        context: Any = None,
        on_call: Callable[[TeeCall], None] | None = None,
    ) -> None:
        self.vendor = vendor
        self.part = _doorbell_part(registry, vendor)
        assert self.part.doorbell_port is not None
        self.port: int = self.part.doorbell_port
        self.model = KernelModel(registry, vendor, memory, generation)
        self.dispatcher = dispatcher
        self.context = context
        self.on_call = on_call
        self.calls: list[TeeCall] = []
        self.rejections: list[TeeCall] = []
        self._stopped: set[int] = set()
        # one kvm_run image per model: serialise calls from several vCPU threads
        self._lock = threading.Lock()
        self._unsupported = f"{vendor}.unsupported"

    # -- the call, without a vCPU (the model backend uses this directly) ------------------

    def route(self, cpu: GuestCpu) -> str | None:
        """The guest call the registers name (the vendor's route; None on a route failure)."""
        assert self.part.route is not None
        try:
            return self.part.route(cpu)
        except Exception:  # a route bug must not take the VMM down
            log.exception("%s route failed on %r", self.vendor, cpu.regs)
            return None

    def answer(self, cpu: GuestCpu) -> TeeCall:
        """Run the call ``cpu``'s registers name; ``cpu`` then holds what the guest sees."""
        with self._lock:
            record = self._answer(cpu)
        self.calls.append(record)
        if record.rejected:
            self.rejections.append(record)
        if self.on_call is not None:
            self.on_call(record)
        return record

    def _answer(self, cpu: GuestCpu) -> TeeCall:
        name = self.route(cpu)
        if name is None or name not in self.model.calls:
            return self._refuse(cpu, f"no guest call for these registers (route gave {name!r})")
        run = self.model.ctx.run
        _REASON.pack_into(run, EXIT_REASON, 0)  # to tell in-kernel answers from exits
        after: list[Outcome] = []

        def on_exit(exit_name: str, result: Result | Unsupported) -> None:
            if isinstance(result, Outcome) and result.after_kernel_completion:
                after.append(result)

        try:
            view = self.model.call(name, cpu, self.dispatcher, self.context, on_exit)
        except KvmRunRejected as exc:
            log.error(
                "%s %s: KVM_RUN would fail with errno %d: %s (a VMM bug; vCPU stopped)",
                self.vendor,
                name,
                exc.errno,
                exc,
            )
            return TeeCall(cpu.apic_id, name, f"KVM_RUN rejected: {exc}", rejected=True, final=True)
        except Exception as exc:  # model bug or missing call: the guest still gets an answer
            log.exception("%s %s: the kernel model failed", self.vendor, name)
            return self._refuse(cpu, f"{name}: {type(exc).__name__}: {exc}")
        finally:
            _run_after(after)
        exited = _REASON.unpack_from(run, EXIT_REASON)[0] != 0
        final = exited and self.model.calls[name].resume is None
        return TeeCall(cpu.apic_id, name, view.summary, dict(view.values), final=final)

    def _refuse(self, cpu: GuestCpu, error: str) -> TeeCall:
        """Answer with the vendor's ``unsupported`` call (in-kernel, never raises)."""
        if self._unsupported in self.model.calls:
            try:
                view = self.model.call(self._unsupported, cpu, self.dispatcher, self.context)
            except Exception:
                log.exception("%s: even %s failed", self.vendor, self._unsupported)
            else:
                return TeeCall(cpu.apic_id, None, view.summary, dict(view.values), error=error)
        return TeeCall(cpu.apic_id, None, "registers unchanged", error=error)

    # -- the doorbell on a real vCPU ----------------------------------------------------

    def handle(self, vcpu: Vcpu, regs: Regs) -> Regs:
        """The :data:`~coco_core.emulated.doorbell.DoorbellHandler` for :attr:`port`."""
        mirror = self.part.ghcb_to_regs
        cpu = cpu_from_regs(regs, vcpu.id, mirror)
        record = self.answer(cpu)
        if record.final:
            self._stopped.add(vcpu.id)
        if record.rejected:
            return regs
        return regs_from_cpu(regs, cpu, mirror)

    def stopped(self, vcpu_id: int) -> bool:
        """Whether a final call (or a rejected completion) ended this vCPU."""
        return vcpu_id in self._stopped

    def attach(self, router: DoorbellRouter) -> None:
        """Route this vendor's doorbell port to :meth:`handle`."""
        router.register(self.port, self.handle)


def _run_after(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        try:
            outcome.run_after_completion()
        except Exception:  # logged: the guest has its answer already
            log.exception("after-completion callbacks failed")


# -- running a guest ----------------------------------------------------------------------


@attrs.frozen
class EmulatedRun:
    """How a guest run on the emulated TEE ended.

    :param result: the code the guest reported on the result port (0 = pass),
        None if it never reported (it ended with a final call, or stopped).
    :param console: what the guest printed.
    :param exits: exits handled.
    :param calls: every doorbell call, in order.
    :param reports: ``(tag, value)`` pairs the guest sent to :data:`REPORT_PORT`.
    :param final: the final call that ended the guest (``tdx.report_fatal_error``).
    :param rejected: the completion KVM would have refused, if one stopped the guest.
    :param unexpected: an exit nothing handles (``exit_reason 5``...), if one stopped it.
    """

    result: int | None
    console: str
    exits: int
    calls: tuple[TeeCall, ...]
    reports: tuple[tuple[int, int], ...]
    final: TeeCall | None = None
    rejected: TeeCall | None = None
    unexpected: str | None = None

    @property
    def passed(self) -> bool:
        """The guest reported 0, or ended with a final call; nothing was rejected."""
        if self.rejected is not None or self.unexpected is not None:
            return False
        return self.result == 0 or (self.result is None and self.final is not None)

    def problem(self, final: str | None = None) -> str:
        """Why the run did not pass, for people; empty if it did.

        :param final: the call the guest must end with (``tdx.report_fatal_error``);
            None if it must report 0 on the result port instead.
        """
        if self.rejected is not None:
            return f"a completion KVM would reject: {self.rejected.summary}"
        if self.unexpected is not None:
            return f"unexpected exit {self.unexpected}"
        ended = (
            self.result == 0
            if final is None
            else (self.final is not None and self.final.name == final)
        )
        return "" if ended else f"guest fail code {self.result}; console {self.console!r}"

    def report(self, tag: int) -> int | None:
        """The last value the guest reported under ``tag``."""
        found = None
        for t, v in self.reports:
            if t == tag:
                found = v
        return found


class EmulatedGuest(Closing):
    """A booted guest with its :class:`EmulatedTee`: memory, dispatcher, run.

    Use :meth:`boot`; register handlers on :attr:`dispatcher` and preload
    :attr:`memory` before :meth:`run`.
    """

    def __init__(self, booted: BootedGuest, tee: EmulatedTee) -> None:
        self.booted = booted
        self.tee = tee
        self.memory: GuestMemory = booted.vm.memory
        self.dispatcher = tee.dispatcher
        self.router = DoorbellRouter()
        self.reports: list[tuple[int, int]] = []
        tee.attach(self.router)
        self.router.register(REPORT_PORT, self._report)

    @classmethod
    def boot(
        cls,
        kvm: Kvm,
        registry: Registry,
        vendor: str,
        guest: str | Path,
        *,
        dispatcher: Dispatcher | None = None,
        generation: str = DEFAULT_ABI,
        context: Any = None,
        on_call: Callable[[TeeCall], None] | None = None,
    ) -> EmulatedGuest:
        """Boot ``guest`` (one vCPU) and put the emulated TEE of ``vendor`` behind it."""
        from coco_core.emulated.guestbuild import boot_guest

        booted = boot_guest(kvm, guest)
        try:
            d = dispatcher or Dispatcher(registry, vendor, generation)
            tee = EmulatedTee(
                registry,
                vendor,
                booted.vm.memory,
                d,
                generation=generation,
                context=context,
                on_call=on_call,
            )
        except BaseException:
            booted.close()
            raise
        return cls(booted, tee)

    def _report(self, vcpu: Vcpu, regs: Regs) -> Regs:
        self.reports.append((regs.rdi, regs.rsi))
        return regs

    def _on_exit(self, vcpu: Vcpu) -> Action:
        action = self.router.on_exit(vcpu)
        if self.tee.stopped(vcpu.id):
            return Action.STOP
        return action

    def run(self, deadline: float = 10.0) -> EmulatedRun:
        """Run vCPU 0 until it reports, ends with a final call or stops (bounded by ``deadline``).

        :raises RunDeadlineExceeded: the guest did not finish in time (the message
            carries its console output).
        """
        vcpu = self.booted.vcpus[0]
        vid = vcpu.id
        try:
            run_until(vcpu, lambda v: self._on_exit(v) is Action.STOP, deadline)
        except RunDeadlineExceeded as exc:
            raise RunDeadlineExceeded(
                f"{exc} (console: {self.router.console(vid)!r}, "
                f"{len(self.tee.calls)} doorbell calls)"
            ) from exc
        calls = tuple(c for c in self.tee.calls if c.vcpu_id == vid)
        rejected = next((c for c in calls if c.rejected), None)
        final = next((c for c in calls if c.final and not c.rejected), None)
        unexpected = self.router.unexpected.get(vid)
        if unexpected is None and vcpu.exit_reason != KvmExitReason.IO:
            unexpected = f"exit_reason {vcpu.exit_reason}"
        return EmulatedRun(
            self.router.results.get(vid),
            self.router.console(vid),
            self.router.exits.get(vid, 0),
            calls,
            tuple(self.reports),
            final,
            rejected,
            unexpected,
        )

    def close(self) -> None:
        """Close the VM."""
        self.booted.close()


def run_guest(
    registry: Registry,
    vendor: str,
    guest: str | Path,
    *,
    handlers: Mapping[type[Any], Callable[[Any, Any], Any]] | None = None,
    prepare: Callable[[EmulatedGuest], None] | None = None,
    dispatcher: Dispatcher | None = None,
    generation: str = DEFAULT_ABI,
    context: Any = None,
    on_call: Callable[[TeeCall], None] | None = None,
    deadline: float = 10.0,
    kvm: Kvm | None = None,
) -> EmulatedRun:
    """Boot ``guest`` on real KVM behind the emulated TEE of ``vendor`` and run it.

    :param handlers: ``{request type: handler}`` registered on the dispatcher.
    :param prepare: called with the booted :class:`EmulatedGuest` before it runs
        (services that need :attr:`EmulatedGuest.memory`, preloaded buffers).
    :param deadline: seconds the guest may run (watchdog).
    :param kvm: an open ``/dev/kvm`` (opened and closed here by default).
    :raises RunDeadlineExceeded: the guest did not finish within ``deadline``.
    :raises ConfigurationError: no usable ``/dev/kvm``, no doorbell model part...
    """
    from coco_core.kvm.system import Kvm

    own = kvm is None
    handle = Kvm.open() if kvm is None else kvm
    try:
        with EmulatedGuest.boot(
            handle,
            registry,
            vendor,
            guest,
            dispatcher=dispatcher,
            generation=generation,
            context=context,
            on_call=on_call,
        ) as booted:
            for request_type, handler in (handlers or {}).items():
                booted.dispatcher.on(request_type, handler)
            if prepare is not None:
                prepare(booted)
            return booted.run(deadline)
    finally:
        if own:
            handle.close()


def fnv1a32(data: bytes) -> int:
    """32-bit FNV-1a, as the emulated guests compute it (``fnv1a32`` in emulated.S).

    The demo guests report this checksum of what they received so the VMM can
    compare it with what it wrote; a real guest would not need it.
    """
    h = 0x811C9DC5  # FNV offset basis (32-bit)
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF  # FNV prime (32-bit)
    return h
