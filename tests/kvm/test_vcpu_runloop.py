# SPDX-License-Identifier: Apache-2.0
"""Real guests on real KVM: I/O and MSR exits, immediate_exit, watchdogs, two vCPU threads."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from coco_core.emulated.guestbuild import GUEST_LOAD_GPA, GUEST_STACK_TOP, BootedGuest, boot_guest
from coco_core.emulated.ports import PINGPONG_PORT, RESULT_PORT
from coco_core.generic.uapi import KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT, KvmExitReason, MsrExitReason
from coco_core.kvm.runloop import (
    KICK_SIGNAL,
    Action,
    RunDeadlineExceeded,
    RunLoop,
    StopReason,
    run_until,
)
from coco_core.kvm.structs import Regs
from coco_core.kvm.system import Kvm
from coco_core.kvm.vcpu import EFER_LMA, RunOutcome, Vcpu

pytestmark = pytest.mark.requires_kvm

GHCB_MSR = 0xC0010130  # MSR_AMD64_SEV_ES_GHCB (AMD APM vol. 2, 15.35.5)


def _pingpong(kvm: Kvm, n: int, nr_vcpus: int = 1) -> BootedGuest:
    guest = boot_guest(kvm, "pingpong", nr_vcpus=nr_vcpus)
    for v in guest.vcpus:
        v.set_regs(v.get_regs().replace(rdi=n, rsi=PINGPONG_PORT))
    return guest


def test_long_mode_setup(kvm: Kvm) -> None:
    """setup_long_mode leaves the vCPU in 64-bit mode at the entry with the given stack."""
    with boot_guest(kvm, "pingpong") as g:
        v = g.vcpus[0]
        sregs = v.get_sregs()
        assert sregs.efer & EFER_LMA
        assert sregs.cs.l == 1
        assert sregs.cr0 == 0x80050033
        regs = v.get_regs()
        assert (regs.rip, regs.rsp) == (GUEST_LOAD_GPA, GUEST_STACK_TOP)


def test_regs_round_trip(kvm: Kvm) -> None:
    """KVM_SET_REGS then KVM_GET_REGS returns the registers written."""
    with boot_guest(kvm, "pingpong") as g:
        v = g.vcpus[0]
        regs = v.get_regs().replace(rax=1, r10=0x1234, r15=2**64 - 1)
        v.set_regs(regs)
        assert v.get_regs() == regs


def test_io_exits_in_and_out(kvm: Kvm) -> None:
    """The pingpong guest makes IN/OUT exits; IN data written by the VMM reaches the guest."""
    with _pingpong(kvm, 3) as g:
        v = g.vcpus[0]
        seen = []
        for i in range(3):
            assert v.run() is RunOutcome.EXIT
            assert v.exit_reason == KvmExitReason.IO
            io = v.io()
            assert (io.direction, io.port, io.size, io.count) == (
                KVM_EXIT_IO_IN,
                PINGPONG_PORT,
                1,
                1,
            )
            v.io_data()[0] = 0x40 + i
            assert v.run() is RunOutcome.EXIT
            io = v.io()
            assert (io.direction, io.port) == (KVM_EXIT_IO_OUT, PINGPONG_PORT)
            seen.append(bytes(v.io_data()))
        assert seen == [b"\x40", b"\x41", b"\x42"]
        assert v.run() is RunOutcome.EXIT
        assert v.io().port == RESULT_PORT
        assert int.from_bytes(v.io_data(), "little") == 0


def test_immediate_exit_returns_eintr(kvm: Kvm) -> None:
    """With immediate_exit = 1 KVM_RUN returns EINTR before running the guest."""
    with _pingpong(kvm, 1) as g:
        v = g.vcpus[0]
        v.immediate_exit = 1
        assert v.immediate_exit == 1
        assert v.run() is RunOutcome.INTR
        assert v.get_regs().rip == GUEST_LOAD_GPA
        v.immediate_exit = 0
        assert v.run() is RunOutcome.EXIT


def test_complete_pending_finishes_the_io(kvm: Kvm) -> None:
    """complete_pending() completes a pending OUT (RIP moves past it) without running on."""
    with _pingpong(kvm, 1) as g:
        v = g.vcpus[0]
        assert v.run() is RunOutcome.EXIT  # IN
        v.io_data()[0] = 0x5A
        v.complete_pending()
        assert v.get_regs().rax & 0xFF == 0x5A  # the IN completed into AL
        assert v.immediate_exit == 0
        assert v.run() is RunOutcome.EXIT
        assert bytes(v.io_data()) == b"\x5a"


def test_msr_exits_with_user_space_msr(kvm: Kvm) -> None:
    """With KVM_CAP_X86_USER_SPACE_MSR an unknown MSR exits; RDMSR data reaches EDX:EAX."""
    with boot_guest(kvm, "msr") as g:
        g.vm.enable_user_space_msr(MsrExitReason.UNKNOWN)
        v = g.vcpus[0]
        assert run_until(v, lambda v: True, 10) == KvmExitReason.X86_RDMSR
        msr = v.msr()
        assert (msr.index, msr.reason) == (GHCB_MSR, MsrExitReason.UNKNOWN)
        v.complete_msr(0x1122334455667788)
        assert run_until(v, lambda v: True, 10) == KvmExitReason.X86_WRMSR
        msr = v.msr()
        assert (msr.index, msr.data) == (GHCB_MSR, 0x1122334455667789)
        v.complete_msr()
        assert run_until(v, lambda v: v.io().port == RESULT_PORT, 10) == KvmExitReason.IO
        assert bytes(v.io_data()) == bytes(4)


def test_msr_error_injects_gp(kvm: Kvm) -> None:
    """msr.error = 1 injects #GP, which with no IDT ends in a triple fault (SHUTDOWN)."""
    with boot_guest(kvm, "msr") as g:
        g.vm.enable_user_space_msr(MsrExitReason.UNKNOWN)
        v = g.vcpus[0]
        assert run_until(v, lambda v: True, 10) == KvmExitReason.X86_RDMSR
        v.complete_msr(error=True)
        assert run_until(v, lambda v: True, 10) == KvmExitReason.SHUTDOWN


def test_run_until_deadline_bounds_a_spinning_guest(kvm: Kvm) -> None:
    """A guest spinning in KVM_RUN (vmcall) is interrupted at the deadline."""
    with boot_guest(kvm, "spin") as g:
        v = g.vcpus[0]
        start = time.monotonic()
        with pytest.raises(RunDeadlineExceeded, match=r"within 0\.3 s"):
            run_until(v, lambda v: True, 0.3)
        assert time.monotonic() - start < 5
        assert v.immediate_exit == 0


def test_runloop_deadline_on_a_thread(kvm: Kvm) -> None:
    """A RunLoop vCPU thread stuck in KVM_RUN ends with StopReason.DEADLINE."""
    with boot_guest(kvm, "spin") as g:
        loop = RunLoop(g.vcpus, lambda v: Action.CONTINUE, deadline=0.3)
        (result,) = loop.run(timeout=10)
        assert result.reason is StopReason.DEADLINE
        assert result.error is None
        assert result.exits == 0


def test_runloop_stop_from_another_thread(kvm: Kvm) -> None:
    """RunLoop.stop() interrupts spinning vCPU threads, which end with STOPPED."""
    with boot_guest(kvm, "spin", nr_vcpus=2) as g:
        loop = RunLoop(g.vcpus, lambda v: Action.CONTINUE).start()
        time.sleep(0.2)
        loop.stop()
        results = loop.join(timeout=10)
        assert [r.reason for r in results] == [StopReason.STOPPED, StopReason.STOPPED]


def _echo(v: Vcpu) -> Action:
    io = v.io()
    if io.port == RESULT_PORT:
        return Action.STOP
    if io.direction == KVM_EXIT_IO_IN:
        v.io_data()[0] = v.id + 1
    return Action.CONTINUE


def test_two_vcpu_threads(kvm: Kvm) -> None:
    """Two vCPUs of one VM run the pingpong guest on two threads to completion."""
    n = 500
    with _pingpong(kvm, n, nr_vcpus=2) as g:
        seen: dict[int, set[int]] = {0: set(), 1: set()}

        def on_exit(v: Vcpu) -> Action:
            io = v.io()
            if io.direction == KVM_EXIT_IO_OUT and io.port == PINGPONG_PORT:
                seen[v.id].add(v.io_data()[0])
            return _echo(v)

        results = RunLoop(g.vcpus, on_exit, deadline=30).run(timeout=60)
        assert [r.reason for r in results] == [StopReason.CALLBACK, StopReason.CALLBACK]
        assert [r.exits for r in results] == [2 * n + 1, 2 * n + 1]
        assert seen == {0: {1}, 1: {2}}


def test_callback_error_stops_all_vcpus(kvm: Kvm) -> None:
    """An exception in one vCPU's callback is recorded and stops the other vCPU too."""
    with _pingpong(kvm, 100000, nr_vcpus=2) as g:

        def on_exit(v: Vcpu) -> Action:
            if v.id == 0:
                raise RuntimeError("boom")
            return _echo(v)

        results = RunLoop(g.vcpus, on_exit, deadline=30).run(timeout=60)
        assert results[0].reason is StopReason.ERROR
        assert isinstance(results[0].error, RuntimeError)
        assert results[1].reason is StopReason.STOPPED


def test_stray_signal_does_not_stop_the_loop(kvm: Kvm) -> None:
    """A kick signal that is not a stop request is absorbed and the run continues."""
    with _pingpong(kvm, 20000) as g:
        loop = RunLoop(g.vcpus, _echo, deadline=60)
        loop.start()
        time.sleep(0.05)
        for t in threading.enumerate():
            if t.name == "coco-vcpu0" and t.ident is not None:
                signal.pthread_kill(t.ident, KICK_SIGNAL)
        (result,) = loop.join(timeout=60)
        assert result.reason is StopReason.CALLBACK
        assert result.exits == 2 * 20000 + 1


def test_regs_value_type() -> None:
    """Regs defaults to zero GPRs with the reserved RFLAGS bit 1 set."""
    assert Regs().rflags == 2
    assert Regs().rax == 0
