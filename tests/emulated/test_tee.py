# SPDX-License-Identifier: Apache-2.0
"""The emulated TEE on real KVM: demo guests, hostile registers, rejected completions."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import pytest

import coco_snp.doorbell
import coco_snp.plugin
import coco_tdx.doorbell
import coco_tdx.plugin
from coco_core.demo.env import DemoEnv, ExitLine, default_testdata
from coco_core.dispatch import Dispatcher
from coco_core.emulated import guestbuild
from coco_core.emulated import tee as emulated
from coco_core.emulated.tee import EmulatedGuest, run_guest
from coco_core.generic.hypercall import PV_HYPERCALL_ERRORS
from coco_core.generic.uapi import EXIT_UNION_OFFSET, KvmExitReason
from coco_core.kvm.system import Kvm
from coco_core.registry import Registry
from coco_core.requests import CertificateRequest, MemoryConversion, TdvmcallInfoQuery
from coco_core.status import CoCoStatus
from coco_snp import demo as snp_demo
from coco_tdx import demo as tdx_demo
from coco_tdx.ghci import TdvmcallStatus

_DEADLINE = 30.0


def _registry() -> Registry:
    """The SNP and TDX plugins (each registers its kernel model and its doorbell part)."""
    return Registry.from_plugins([coco_snp.plugin, coco_tdx.plugin])


def _env(backend: str = "kvm") -> DemoEnv:
    lines: list[ExitLine] = []
    return DemoEnv(_registry(), backend, lines.append, default_testdata())


def test_report_port_matches_guest_equ() -> None:
    """The REPORT_PORT .equ in emulated.S equals coco_core.emulated.tee.REPORT_PORT."""
    text = (guestbuild.GUEST_DIR / "emulated.S").read_text()
    match = re.search(r"\.equ\s+REPORT_PORT,\s*(\w+)", text)
    assert match is not None
    assert int(match[1], 0) == emulated.REPORT_PORT


@pytest.mark.requires_kvm
@pytest.mark.parametrize("vendor", ["tdx", "snp"])
def test_demo_guest_passes_on_real_kvm(vendor: str) -> None:
    """The vendor's demo guest runs to its final call and every guest-visible check holds."""
    env = _env()
    assert env.testdata is not None, "testdata/ is part of the repository"
    (tdx_demo if vendor == "tdx" else snp_demo).scenario(env)
    assert env.failures == []
    assert env.checks >= 10


@pytest.mark.requires_kvm
@pytest.mark.parametrize(("vendor", "flag"), [("tdx", 0), ("snp", 1)])
def test_garbage_guest_gets_errors_and_vmm_keeps_running(kvm: Kvm, vendor: str, flag: int) -> None:
    """Random doorbell registers get documented errors, no rejection, and the guest reports 0."""

    def boom(request: object, context: object) -> CoCoStatus:
        raise RuntimeError("test: a handler that fails")

    def prepare(guest: EmulatedGuest) -> None:
        guest.dispatcher.on(MemoryConversion, lambda r, c: CoCoStatus.INVALID)
        guest.dispatcher.on(TdvmcallInfoQuery, boom)
        guest.dispatcher.on(CertificateRequest, boom)
        guest.tee.model.ctx.vm_state["snp.req_certs"] = True
        vcpu = guest.booted.vcpus[0]
        vcpu.set_regs(vcpu.get_regs().replace(rdi=flag))

    run = run_guest(
        _registry(), vendor, "doorbell_garbage", prepare=prepare, deadline=_DEADLINE, kvm=kvm
    )
    assert (run.result, run.console) == (0, "garbage guest: start\n")
    assert run.rejected is None
    assert run.unexpected is None
    assert len(run.calls) == 1 + 16
    assert not any(c.final for c in run.calls)
    if vendor == "tdx":  # a TDVMCALL status, or KVM's refusal of a PV hypercall (R10 != 0)
        codes = {c.values.get("r10") for c in run.calls[1:] if c.name != "tdx.kvm_hypercall"}
        assert codes <= {int(s) for s in TdvmcallStatus}
        pv = {c.values.get("r10") for c in run.calls[1:] if c.name == "tdx.kvm_hypercall"}
        assert pv <= PV_HYPERCALL_ERRORS


class _BuggyVmm(Dispatcher):
    """A dispatcher that, like a buggy VMM, writes hypercall.ret = EIO (7.2 refuses it)."""

    def dispatch(self, run: memoryview | bytearray, context: Any = None) -> Any:
        result = super().dispatch(run, context)
        if struct.unpack_from("<I", run, 8)[0] == KvmExitReason.HYPERCALL:
            struct.pack_into("<Q", run, EXIT_UNION_OFFSET + 0x38, 5)
        return result


def test_rejected_completion_is_recorded_and_final() -> None:
    """A MAP_GPA_RANGE ret the 7.2 kernel refuses is recorded as rejected and ends the vCPU."""
    from coco_core.emulated.tee import EmulatedTee
    from coco_core.kvm.vm import GuestMemory
    from coco_core.model.base import GuestCpu

    reg = _registry()
    memory = GuestMemory.from_buffer(0, bytearray(0x400000))
    vmm = _BuggyVmm(reg, "tdx")
    vmm.on(MemoryConversion, lambda r, c: CoCoStatus.OK)
    tee = EmulatedTee(reg, "tdx", memory, vmm)
    cpu = GuestCpu(regs={"r10": 0, "r11": 0x10001, "r12": 0x3F0000 | 1 << 47, "r13": 0x2000})
    record = tee.answer(cpu)
    assert (record.name, record.rejected, record.final) == ("tdx.map_gpa", True, True)
    assert tee.rejections == [record]


def test_tdx_unknown_leaf_gets_subfunc_unsupported() -> None:
    """Registers naming no TDVMCALL leaf get R10 = SUBFUNC_UNSUPPORTED from the emulated TEE."""
    from coco_core.emulated.tee import EmulatedTee
    from coco_core.kvm.vm import GuestMemory
    from coco_core.model.base import GuestCpu

    reg = _registry()
    memory = GuestMemory.from_buffer(0, bytearray(0x10000))
    tee = EmulatedTee(reg, "tdx", memory, Dispatcher(reg, "tdx"))
    cpu = GuestCpu(regs={"r10": 0, "r11": 0x1234})
    record = tee.answer(cpu)
    assert cpu.regs["r10"] == TdvmcallStatus.SUBFUNC_UNSUPPORTED
    assert (record.name, record.final, record.rejected) == ("tdx.unsupported", False, False)


def test_snp_unknown_exit_code_gets_invalid_event() -> None:
    """An unknown SW_EXITCODE gets SW_EXITINFO1 = 2 and SW_EXITINFO2 = GHCB_ERR_INVALID_EVENT."""
    from coco_core.emulated.tee import EmulatedTee
    from coco_core.kvm.vm import GuestMemory
    from coco_core.model.base import GuestCpu

    reg = _registry()
    memory = GuestMemory.from_buffer(0, bytearray(0x10000))
    tee = EmulatedTee(reg, "snp", memory, Dispatcher(reg, "snp"))
    cpu = GuestCpu(regs={"r12": 0xDEAD})
    tee.answer(cpu)
    assert cpu.ghcb == {"sw_exitinfo1": 2, "sw_exitinfo2": coco_snp.doorbell.GHCB_ERR_INVALID_EVENT}


def test_testdata_present() -> None:
    """The demo's real test data is where default_testdata() looks."""
    data = default_testdata()
    assert data is not None
    assert isinstance(data, Path)
    assert (data / "tdx" / "quotes").is_dir()
