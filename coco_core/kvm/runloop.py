# SPDX-License-Identifier: Apache-2.0
"""Run loops for real vCPUs: one thread per vCPU, a callback per exit, time bounds.

``KVM_RUN`` releases the GIL, so one Python thread per vCPU runs guests in
parallel. A guest that never exits (on the development hosts, any
``vmcall``/``vmmcall`` spins inside ``KVM_RUN``) is bounded by a
:class:`Watchdog`: it sets ``kvm_run.immediate_exit = 1`` and sends
:data:`KICK_SIGNAL` to the vCPU thread with ``signal.pthread_kill``, so
``KVM_RUN`` returns ``EINTR`` (api.rst, "immediate_exit"; the flag closes the
race where the signal lands just before the thread enters ``KVM_RUN``).
The signal needs a handler (a no-op) installed from the main thread:
:func:`install_kick_handler`.
"""

from __future__ import annotations

import contextlib
import enum
import signal
import threading
import time
from collections.abc import Callable, Sequence

import attrs

from coco_core.errors import ConfigurationError, RunDeadlineExceeded
from coco_core.generic.uapi import KvmExitReason
from coco_core.kvm.vcpu import KvmRunError, RunOutcome, Vcpu

__all__ = [
    "KICK_SIGNAL",
    "Action",
    "RunDeadlineExceeded",
    "RunLoop",
    "StopReason",
    "VcpuRunResult",
    "Watchdog",
    "holds_exit",
    "install_kick_handler",
    "run_until",
]

KICK_SIGNAL = signal.SIGUSR1
_KICK_REPEAT_S = 0.02  # re-kick until the thread is out, in case a kick lands between runs


def _noop_handler(signum: int, frame: object) -> None:
    """Do nothing: the signal exists only to make ``KVM_RUN`` return ``EINTR``."""


def install_kick_handler() -> None:
    """Make sure :data:`KICK_SIGNAL` has a handler (so it interrupts, not kills or is lost).

    A Python handler someone else installed is kept (any handler interrupts
    ``KVM_RUN``). ``SIG_DFL`` (would kill the process) and ``SIG_IGN`` (would
    never interrupt) are replaced by a no-op, which only the main thread may do.
    """
    current = signal.getsignal(KICK_SIGNAL)
    if callable(current):
        return
    if threading.current_thread() is not threading.main_thread():
        raise ConfigurationError(
            f"{KICK_SIGNAL.name} has no handler, and only the main thread can install one: "
            "call coco_core.kvm.runloop.install_kick_handler() from the main thread first"
        )
    signal.signal(KICK_SIGNAL, _noop_handler)


class Action(enum.Enum):
    """What an exit callback tells the run loop to do next."""

    CONTINUE = "continue"
    STOP = "stop"


class StopReason(enum.Enum):
    """Why a vCPU's loop ended."""

    CALLBACK = "callback"  # on_exit returned Action.STOP
    STOPPED = "stopped"  # RunLoop.stop() was called
    DEADLINE = "deadline"  # the watchdog fired
    ERROR = "error"  # KVM_RUN failed or the callback raised


class Watchdog:
    """Kick one vCPU out of ``KVM_RUN`` if it is still running after ``deadline`` seconds."""

    def __init__(self, vcpu: Vcpu, thread_ident: int, deadline: float) -> None:
        self.vcpu = vcpu
        self.thread_ident = thread_ident
        self.deadline = deadline
        self.fired = False
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name=f"coco-watchdog-vcpu{vcpu.id}", daemon=True
        )

    def start(self) -> Watchdog:
        """Arm the watchdog."""
        install_kick_handler()
        self._thread.start()
        return self

    def _watch(self) -> None:
        if self._done.wait(self.deadline):
            return
        self.fired = True
        while not self._done.is_set():
            kick(self.vcpu, self.thread_ident)
            self._done.wait(_KICK_REPEAT_S)

    def cancel(self) -> None:
        """Disarm and wait for the watchdog thread (call from the vCPU thread when done)."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()


def kick(vcpu: Vcpu, thread_ident: int) -> None:
    """Set ``immediate_exit`` and signal the thread running ``vcpu``."""
    try:
        vcpu.immediate_exit = 1
    except ValueError:  # kvm_run already unmapped: nothing left to interrupt
        return
    with contextlib.suppress(ProcessLookupError):  # the thread already ended
        signal.pthread_kill(thread_ident, KICK_SIGNAL)


_FAULTS = (RunOutcome.FAULT, RunOutcome.HWPOISON)
_MEMORY_FAULT = int(KvmExitReason.MEMORY_FAULT)


def holds_exit(vcpu: Vcpu, outcome: RunOutcome) -> bool:
    """True if ``kvm_run`` holds an exit to handle after ``KVM_RUN`` returned ``outcome``.

    That is a return of 0, or ``EFAULT``/``EHWPOISON`` with ``exit_reason`` =
    ``KVM_EXIT_MEMORY_FAULT`` (Documentation/virt/kvm/api.rst, "KVM_EXIT_MEMORY_FAULT":
    the exit arrives with ``KVM_RUN`` returning -1). Any other ``EFAULT`` is an error.
    """
    return outcome is RunOutcome.EXIT or (outcome in _FAULTS and vcpu.exit_reason == _MEMORY_FAULT)


def _failed(vcpu: Vcpu, outcome: RunOutcome) -> KvmRunError:
    return KvmRunError(
        f"KVM_RUN on vCPU {vcpu.id} failed with {outcome.name} (exit_reason {vcpu.exit_reason})",
        outcome.value,
    )


def run_until(vcpu: Vcpu, predicate: Callable[[Vcpu], bool], deadline: float = 5.0) -> int:
    """Run ``vcpu`` in this thread until ``predicate(vcpu)`` holds after an exit.

    Exits for which the predicate is false are re-entered as they are.
    Returns the matching ``exit_reason``; raises :class:`RunDeadlineExceeded`
    after ``deadline`` seconds and :class:`KvmRunError` on a ``KVM_RUN`` error.
    """
    wd = Watchdog(vcpu, threading.get_ident(), deadline).start()
    last = None
    try:
        while True:
            outcome = vcpu.run()
            if holds_exit(vcpu, outcome):
                last = vcpu.exit_reason
                if predicate(vcpu):
                    return last
                continue
            if outcome is RunOutcome.INTR:
                if wd.fired:
                    raise RunDeadlineExceeded(
                        f"vCPU {vcpu.id} did not reach the expected exit within {deadline} s "
                        f"(last exit_reason: {last})"
                    )
                vcpu.immediate_exit = 0
                continue
            raise _failed(vcpu, outcome)
    finally:
        wd.cancel()
        vcpu.immediate_exit = 0


@attrs.frozen
class VcpuRunResult:
    """How one vCPU's loop ended."""

    vcpu_id: int
    exits: int
    reason: StopReason
    error: BaseException | None = None
    elapsed: float = 0.0


class RunLoop:
    """One thread per vCPU running ``KVM_RUN`` and calling ``on_exit(vcpu)`` per exit.

    ``on_exit`` runs in the vCPU's thread with ``kvm_run`` holding a valid
    exit (including ``KVM_EXIT_MEMORY_FAULT``, which comes with ``EFAULT``);
    it completes the exit in ``kvm_run`` and returns :attr:`Action.CONTINUE`
    to re-enter or :attr:`Action.STOP` to end that vCPU's loop. An error in
    any vCPU stops all of them. ``deadline`` bounds each vCPU's run.
    """

    def __init__(
        self,
        vcpus: Sequence[Vcpu],
        on_exit: Callable[[Vcpu], Action],
        *,
        deadline: float | None = None,
    ) -> None:
        self.vcpus = tuple(vcpus)
        self.on_exit = on_exit
        self.deadline = deadline
        self._stop = threading.Event()
        self._idents: dict[int, int] = {}
        self._threads: list[threading.Thread] = []
        self._results: dict[int, VcpuRunResult] = {}
        self._lock = threading.Lock()

    def start(self) -> RunLoop:
        """Start one thread per vCPU."""
        if self._threads:
            raise RuntimeError("RunLoop already started")
        install_kick_handler()
        for index, vcpu in enumerate(self.vcpus):
            t = threading.Thread(
                target=self._loop, args=(index, vcpu), name=f"coco-vcpu{vcpu.id}", daemon=True
            )
            self._threads.append(t)
            t.start()
        return self

    def stop(self) -> None:
        """Ask every vCPU loop to end (safe from any thread, including ``on_exit``)."""
        self._stop.set()
        me = threading.get_ident()
        with self._lock:
            targets = [(i, ident) for i, ident in self._idents.items() if ident != me]
        for index, ident in targets:
            kick(self.vcpus[index], ident)

    def join(self, timeout: float | None = None) -> tuple[VcpuRunResult, ...]:
        """Wait for the loops; re-kicks stopped vCPUs that have not noticed yet."""
        end = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            while t.is_alive():
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise RunDeadlineExceeded(f"{t.name} did not finish within {timeout} s")
                t.join(_KICK_REPEAT_S * 5 if left is None else min(left, _KICK_REPEAT_S * 5))
                if self._stop.is_set() and t.is_alive():
                    self.stop()
        return self.results

    def run(self, timeout: float | None = None) -> tuple[VcpuRunResult, ...]:
        """:meth:`start` then :meth:`join`."""
        return self.start().join(timeout)

    @property
    def results(self) -> tuple[VcpuRunResult, ...]:
        """The results of the loops that ended, in vCPU order."""
        return tuple(self._results[i] for i in sorted(self._results))

    def _loop(self, index: int, vcpu: Vcpu) -> None:
        ident = threading.get_ident()
        with self._lock:
            self._idents[index] = ident
        wd = Watchdog(vcpu, ident, self.deadline).start() if self.deadline is not None else None
        run = vcpu.run
        on_exit = self.on_exit
        stop_flag = self._stop
        exit_ok = RunOutcome.EXIT
        intr = RunOutcome.INTR
        cont = Action.CONTINUE
        exits = 0
        error: BaseException | None = None
        reason = StopReason.ERROR
        started = time.monotonic()
        try:
            while True:
                outcome = run()
                # holds_exit() covers EXIT too; testing it first keeps the common case call-free
                if outcome is exit_ok or holds_exit(vcpu, outcome):
                    exits += 1
                    if on_exit(vcpu) is not cont:
                        reason = StopReason.CALLBACK
                        break
                    if stop_flag.is_set():
                        reason = StopReason.STOPPED
                        break
                    continue
                if outcome is intr:
                    if stop_flag.is_set():
                        reason = StopReason.STOPPED
                        break
                    if wd is not None and wd.fired:
                        reason = StopReason.DEADLINE
                        break
                    vcpu.immediate_exit = 0  # a stray signal: carry on
                    continue
                error = _failed(vcpu, outcome)
                break
        except BaseException as exc:  # recorded, re-raised by nobody: the caller reads results
            error = exc
            reason = StopReason.ERROR
        finally:
            if wd is not None:
                wd.cancel()
            with self._lock:
                self._idents.pop(index, None)
                self._results[index] = VcpuRunResult(
                    vcpu.id, exits, reason, error, time.monotonic() - started
                )
            with contextlib.suppress(ValueError):  # kvm_run already unmapped
                vcpu.immediate_exit = 0
        if reason is StopReason.ERROR:
            self.stop()
