# SPDX-License-Identifier: Apache-2.0
"""The doorbell convention: guest framework, router, console/result capture, guest builds."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from coco_core.emulated import guestbuild, ports
from coco_core.emulated.doorbell import DoorbellRouter
from coco_core.emulated.guestbuild import boot_guest, build_guest
from coco_core.emulated.ports import DOORBELL_TDVMCALL_PORT, DOORBELL_VMGEXIT_PORT, RESULT_PORT
from coco_core.errors import GuestBuildError, UnexpectedExit
from coco_core.kvm.runloop import RunLoop, StopReason
from coco_core.kvm.structs import Regs
from coco_core.kvm.system import Kvm
from coco_core.kvm.vcpu import Vcpu

U64_MASK = 2**64 - 1


def _tdvmcall(vcpu: Vcpu, regs: Regs) -> Regs:
    return regs.replace(r10=regs.r10 + 1, r11=regs.r12 + regs.r13, rdx=0)


def _vmgexit(vcpu: Vcpu, regs: Regs) -> Regs:
    return regs.replace(rax=regs.rax ^ U64_MASK)


def _router() -> DoorbellRouter:
    return DoorbellRouter({DOORBELL_TDVMCALL_PORT: _tdvmcall, DOORBELL_VMGEXIT_PORT: _vmgexit})


def test_equ_values_match_python() -> None:
    """The .equ port numbers in doorbell.S equal the constants in ports.py."""
    text = (guestbuild.GUEST_DIR / "doorbell.S").read_text()
    equs = {m[1]: int(m[2], 0) for m in re.finditer(r"\.equ\s+(\w+),\s*(\w+)", text)}
    assert equs
    for name, value in equs.items():
        assert getattr(ports, name) == value, name


@pytest.mark.requires_kvm
def test_selftest_guest_passes(kvm: Kvm) -> None:
    """The guest sees the registers the handlers returned and reports pass with console text."""
    with boot_guest(kvm, "doorbell_selftest") as g:
        run = _router().run(g.vcpus[0], deadline=10)
        assert run.passed
        assert run.console == "doorbell selftest\n"
        assert run.exits > 2


@pytest.mark.requires_kvm
def test_wrong_handler_is_reported_as_fail_code(kvm: Kvm) -> None:
    """A handler that does not add 1 to R10 makes the guest report fail code 1."""
    router = DoorbellRouter({DOORBELL_TDVMCALL_PORT: lambda v, regs: regs})
    with boot_guest(kvm, "doorbell_selftest") as g:
        run = router.run(g.vcpus[0], deadline=10)
        assert (run.passed, run.result) == (False, 1)


@pytest.mark.requires_kvm
def test_unrouted_doorbell_raises(kvm: Kvm) -> None:
    """An OUT to a doorbell port without a handler ends the run with UnexpectedExit."""
    with (
        boot_guest(kvm, "doorbell_selftest") as g,
        pytest.raises(UnexpectedExit, match="unrouted port 0x0cc0"),
    ):
        DoorbellRouter().run(g.vcpus[0], deadline=10)


@pytest.mark.requires_kvm
def test_router_in_runloop_two_vcpus(kvm: Kvm) -> None:
    """One router serves two vCPU threads, keeping results and consoles per vCPU."""
    router = _router()
    with boot_guest(kvm, "doorbell_selftest", nr_vcpus=2) as g:
        results = RunLoop(g.vcpus, router.on_exit, deadline=30).run(timeout=60)
        assert [r.reason for r in results] == [StopReason.CALLBACK] * 2
        assert router.outcome(0).passed
        assert router.outcome(1).passed
        assert router.console(1) == "doorbell selftest\n"


def test_console_and_result_ports_are_reserved() -> None:
    """Handlers cannot be registered on the console or result port."""
    with pytest.raises(ValueError, match="reserved"):
        DoorbellRouter().register(RESULT_PORT, _vmgexit)


def test_outcome_without_result_raises() -> None:
    """Asking for the outcome of a vCPU that never reported raises UnexpectedExit."""
    with pytest.raises(UnexpectedExit, match="without reporting"):
        DoorbellRouter().outcome(3)


def test_build_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second build of the same source comes from the cache with identical bytes."""
    if shutil.which("as") is None:
        pytest.skip("binutils 'as' not installed")
    monkeypatch.setenv("COCO_GUEST_CACHE", str(tmp_path))
    first = build_guest("pingpong")
    assert len(list(tmp_path.glob("pingpong-*.bin"))) == 1
    assert build_guest("pingpong") == first
    assert first[-3:] == bytes.fromhex("f4ebfd")  # hlt; jmp .-1


def test_missing_assembler_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `as` on PATH, build_guest says which tool is missing and how to get it."""
    monkeypatch.setenv("COCO_GUEST_CACHE", str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(GuestBuildError, match=r"'as'.*binutils"):
        build_guest("pingpong")


@pytest.mark.parametrize("name", ["nosuchguest", "../etc/passwd"])
def test_unknown_guest_name(name: str) -> None:
    """An unknown or path-like guest name is refused."""
    with pytest.raises(GuestBuildError):
        build_guest(name)


def test_bad_source_reports_assembler_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An assembler error is raised with the assembler's message."""
    if shutil.which("as") is None:
        pytest.skip("binutils 'as' not installed")
    (tmp_path / "broken.S").write_text("    notaninstruction %rax\n")
    monkeypatch.setattr(guestbuild, "GUEST_DIR", tmp_path)
    monkeypatch.setenv("COCO_GUEST_CACHE", str(tmp_path / "cache"))
    with pytest.raises(GuestBuildError, match=r"assembling broken\.S failed"):
        build_guest("broken")
