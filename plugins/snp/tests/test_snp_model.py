# SPDX-License-Identifier: Apache-2.0
"""End to end: the kernel model, the dispatcher and the certificate service."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from coco_core.dispatch import Dispatcher
from coco_core.kvm.vm import GuestMemory
from coco_core.model.base import GuestCpu, KvmRunRejected
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.requests import CertificateRequest, MemoryConversion, Termination
from coco_core.status import CoCoStatus, Outcome
from coco_snp import plugin
from coco_snp.certs.store import CertificateStore
from coco_snp.certs.table import CertTableKind, parse_cert_table
from coco_snp.model import REQ_CERTS_ENABLED
from coco_snp.service import CertificateService

TESTDATA = Path(__file__).resolve().parents[3] / "testdata" / "snp"
REG = Registry.from_plugins([plugin])
RAM = 0x40000
CERTS = 0x10000


def _store() -> CertificateStore:
    store = CertificateStore()
    store.load_paths(
        [
            TESTDATA / "reports" / "milan_v2_virtee_vcek.der",
            TESTDATA / "certs" / "ask_milan.pem",
            TESTDATA / "certs" / "ark_milan.pem",
        ]
    )
    return store


def _setup(generation: str, enabled: bool = True) -> tuple[KernelModel, Dispatcher, bytearray]:
    buf = bytearray(RAM)
    mem = GuestMemory.from_buffer(0, buf)
    model = KernelModel(REG, "snp", mem, generation)
    model.ctx.vm_state[REQ_CERTS_ENABLED] = enabled
    d = Dispatcher(REG, "snp", generation)
    d.on(CertificateRequest, CertificateService(mem, _store()))
    return model, d, buf


@pytest.mark.parametrize(
    "generation",
    [
        "linux-7.0",
        "linux-7.2",
        "kvm-exit-coco-v1",
        "kvm-exit-coco-v2",
        "snp-req-certs-v4",
        "snp-req-certs-v6",
        "snp-req-certs-v7",
    ],
)
def test_too_small_then_retry_gets_real_table(generation: str) -> None:
    """A 0-page buffer gets INVALID_LEN with RBX = pages; retrying with that many gets the table."""
    model, d, buf = _setup(generation)
    cpu = GuestCpu(regs={"rax": CERTS, "rbx": 0})
    view = model.call("snp.ext_guest_request", cpu, d)
    assert view.values["sw_exitinfo2"] == 1 << 32
    assert view.values["firmware_called"] == 0
    pages = cpu.regs["rbx"]
    assert pages >= 1
    view = model.call("snp.ext_guest_request", cpu, d)
    assert view.values == {"sw_exitinfo2": 0, "rbx": pages, "firmware_called": 1}
    table = parse_cert_table(bytes(buf[CERTS : CERTS + pages * 4096]))
    assert {e.kind for e in table.entries} == {
        CertTableKind.VCEK,
        CertTableKind.ASK,
        CertTableKind.ARK,
    }
    vcek = (TESTDATA / "reports" / "milan_v2_virtee_vcek.der").read_bytes()
    assert table.get(CertTableKind.VCEK) is not None
    assert table.get(CertTableKind.VCEK).data == vcek  # type: ignore[union-attr]


def test_busy_gives_vmm_busy() -> None:
    """A RETRY answer reaches the guest as SNP_GUEST_VMM_ERR_BUSY without firmware."""
    model, d, _ = _setup("linux-7.2")
    d.on(CertificateRequest, lambda r, c: CoCoStatus.RETRY)
    view = model.call("snp.ext_guest_request", GuestCpu(regs={"rax": CERTS, "rbx": 4}), d)
    assert view.values["sw_exitinfo2"] == 2 << 32
    assert view.values["firmware_called"] == 0


def test_bad_buffer_gives_generic() -> None:
    """A buffer outside guest RAM gets EIO, which the guest sees as GENERIC."""
    model, d, _ = _setup("linux-7.2")
    view = model.call("snp.ext_guest_request", GuestCpu(regs={"rax": RAM - 4096, "rbx": 9}), d)
    assert view.values["sw_exitinfo2"] == 0xFFFFFFFF << 32


def test_invalid_ret_is_rejected_by_kvm() -> None:
    """A handler whose vendor code KVM would refuse makes KVM_RUN fail with EINVAL."""
    model, d, _ = _setup("linux-7.2")

    def bad(request: CertificateRequest, context: object) -> Outcome:
        return Outcome(CoCoStatus.OK)

    d.on(CertificateRequest, bad)
    cpu = GuestCpu(regs={"rax": CERTS, "rbx": 1})
    model.ctx.run[48:56] = b"\0" * 8
    step = model.calls["snp.ext_guest_request"].enter(model.ctx, cpu)
    assert step.exit_reason == 43
    struct.pack_into("<Q", model.ctx.run, 48, 22)  # EINVAL: not in the accepted set
    with pytest.raises(KvmRunRejected):
        model.calls["snp.ext_guest_request"].resume(model.ctx, cpu)  # type: ignore[misc]


def test_lenient_proposal_takes_any_error() -> None:
    """Under v2 an unknown ret is the generic error, not a failed KVM_RUN."""
    model, _, _ = _setup("kvm-exit-coco-v2")
    cpu = GuestCpu(regs={"rax": CERTS, "rbx": 1})
    model.calls["snp.ext_guest_request"].enter(model.ctx, cpu)
    struct.pack_into("<I", model.ctx.run, 40, 22)
    view = model.calls["snp.ext_guest_request"].resume(model.ctx, cpu)  # type: ignore[misc]
    assert view.values["sw_exitinfo2"] == 0xFFFFFFFF << 32  # type: ignore[union-attr]


def test_not_enabled_writes_empty_table() -> None:
    """Without ENABLE_REQ_CERTS KVM writes 24 zero bytes and calls firmware, no exit."""
    model, d, buf = _setup("linux-7.2", enabled=False)
    buf[CERTS : CERTS + 64] = b"\xff" * 64
    seen: list[str] = []
    view = model.call(
        "snp.ext_guest_request",
        GuestCpu(regs={"rax": CERTS, "rbx": 1}),
        d,
        on_exit=lambda n, r: seen.append(n),
    )
    assert seen == []
    assert view.values["firmware_called"] == 1
    assert buf[CERTS : CERTS + 24] == bytes(24)
    assert buf[CERTS + 24] == 0xFF


def test_unaligned_rax_and_other_messages() -> None:
    """An unaligned RAX gets GHCB_ERR_INVALID_INPUT; a non-report message skips certificates."""
    model, d, _ = _setup("linux-7.2")
    view = model.call("snp.ext_guest_request", GuestCpu(regs={"rax": CERTS + 1, "rbx": 1}), d)
    assert (view.values["sw_exitinfo1"], view.values["sw_exitinfo2"]) == (2, 5)
    cpu = GuestCpu(regs={"rax": CERTS, "rbx": 1}, ghcb={"msg_type": 7})
    assert model.call("snp.ext_guest_request", cpu, d).values["firmware_called"] == 1


def _psc_entry(gfn: int, op: int, huge: bool = False, cur_page: int = 0) -> int:
    return cur_page | (gfn << 12) | (op << 52) | (int(huge) << 56)


@pytest.mark.parametrize("generation", ["linux-7.1", "linux-7.2"])
def test_psc_batches_and_per_generation_errors(generation: str) -> None:
    """Adjacent same-op entries make one exit; an error gives PSC GENERIC; 7.2 rejects odd rets."""
    buf = bytearray(RAM)
    mem = GuestMemory.from_buffer(0, buf)
    desc = 0x2000
    entries = [_psc_entry(0x10, 1), _psc_entry(0x11, 1), _psc_entry(0x200, 2, huge=True)]
    struct.pack_into(f"<HHI{len(entries)}Q", buf, desc, 0, len(entries) - 1, 0, *entries)
    model = KernelModel(REG, "snp", mem, generation)
    d = Dispatcher(REG, "snp", generation)
    seen: list[MemoryConversion] = []

    def conv(r: MemoryConversion, c: object) -> CoCoStatus:
        seen.append(r)
        return CoCoStatus.OK

    d.on(MemoryConversion, conv)
    view = model.call("snp.psc", GuestCpu(ghcb={"sw_scratch": desc}), d)
    assert view.values["sw_exitinfo2"] == 0
    assert [(r.gpa, r.to_private) for r in seen] == [(0x10000, True), (0x200000, False)]
    assert struct.unpack_from("<H", buf, desc)[0] == 3
    assert struct.unpack_from("<Q", buf, desc + 8)[0] & 0xFFF == 1
    assert struct.unpack_from("<Q", buf, desc + 24)[0] & 0xFFF == 512
    # error on the first batch
    struct.pack_into(f"<HHI{len(entries)}Q", buf, desc, 0, len(entries) - 1, 0, *entries)
    d.on(MemoryConversion, lambda r, c: CoCoStatus.RETRY)
    view = model.call("snp.psc", GuestCpu(ghcb={"sw_scratch": desc}), d)
    assert view.values["sw_exitinfo2"] == 0x100 << 32
    # a ret KVM 7.2 refuses
    struct.pack_into(f"<HHI{len(entries)}Q", buf, desc, 0, len(entries) - 1, 0, *entries)
    call = model.calls["snp.psc"]
    call.enter(model.ctx, GuestCpu(ghcb={"sw_scratch": desc}))
    struct.pack_into("<Q", model.ctx.run, 88, 99)
    if generation == "linux-7.2":
        with pytest.raises(KvmRunRejected):
            call.resume(model.ctx, GuestCpu())  # type: ignore[misc]
    else:
        assert call.resume(model.ctx, GuestCpu()).values["sw_exitinfo2"] == 0x100 << 32  # type: ignore[misc,union-attr]


def test_psc_msr() -> None:
    """An MSR PSC request is one 4 KiB page; success gives GHCB_MSR_PSC_RESP."""
    model, d, _ = _setup("linux-7.2")
    seen: list[MemoryConversion] = []
    d.on(MemoryConversion, lambda r, c: seen.append(r) or CoCoStatus.OK)
    view = model.call("snp.psc_msr", GuestCpu(ghcb={"msr": 0x014 | (0x33 << 12) | (2 << 52)}), d)
    assert view.values["msr"] == 0x015
    assert seen == [MemoryConversion(0x33000, 1, False, 4096)]
    d.on(MemoryConversion, lambda r, c: CoCoStatus.ERROR)
    view = model.call("snp.psc_msr", GuestCpu(ghcb={"msr": 0x014 | (0x33 << 12) | (1 << 52)}), d)
    assert view.values["msr"] == (1 << 63) | 0x015


def test_termination_both_forms() -> None:
    """Both termination calls reach the Termination handler with the decoded reason."""
    model, d, _buf = _setup("linux-6.16")
    got: list[Termination] = []
    d.on(Termination, lambda r, c: got.append(r) or CoCoStatus.OK)
    model.call("snp.term_msr", GuestCpu(ghcb={"msr": 0x100 | (1 << 16)}), d)
    model.call("snp.term_ghcb", GuestCpu(ghcb={"ghcb_gpa": 0x3000}), d)
    assert got[0].code == 1
    assert "GHCB protocol" in got[0].reason
    assert got[1].gpa == 0x3000
