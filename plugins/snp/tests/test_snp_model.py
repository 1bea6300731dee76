# SPDX-License-Identifier: Apache-2.0
"""End to end: the kernel model, the dispatcher and the certificate service."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from coco_core.dispatch import Dispatcher
from coco_core.kvm.vm import GuestMemory
from coco_core.model.base import GuestCpu, GuestView, KvmRunRejected
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
    assert view.values == {
        "sw_exitinfo1": 0,
        "sw_exitinfo2": 0,
        "rbx": pages,
        "firmware_called": 1,
    }
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


# -- what the kernel source says, item by item (kvm-x86 sev.c @ 1a27afa0, the patch mails) --


def _enter(model: KernelModel, cpu: GuestCpu) -> object:
    return model.calls["snp.ext_guest_request"].enter(model.ctx, cpu)


def _resume(model: KernelModel, cpu: GuestCpu) -> GuestView:
    resume = model.calls["snp.ext_guest_request"].resume
    assert resume is not None
    view = resume(model.ctx, cpu)
    assert isinstance(view, GuestView)
    return view


@pytest.mark.parametrize(("rax", "fails"), [(RAM - 4096, False), (RAM, True)])
def test_empty_table_outside_ram_fails_kvm_run_with_eio(rax: int, fails: bool) -> None:
    """``if (data_npages && kvm_clear_guest(kvm, data_gpa, 24)) return -EIO;``: KVM_RUN fails."""
    model, d, buf = _setup("linux-7.2", enabled=False)
    cpu = GuestCpu(regs={"rax": rax, "rbx": 1})
    if not fails:
        buf[rax : rax + 24] = b"\xff" * 24
        assert model.call("snp.ext_guest_request", cpu, d).values["firmware_called"] == 1
        assert buf[rax : rax + 24] == bytes(24)
        return
    with pytest.raises(KvmRunRejected) as err:
        model.call("snp.ext_guest_request", cpu, d)
    assert err.value.errno == errno.EIO


def test_v1_any_other_ret_is_generic_bit31() -> None:
    """v1 5/5: ``} else { ... SNP_GUEST_ERR(SNP_GUEST_VMM_ERR_GENERIC, 0)``: ret 2 is not BUSY."""
    model, _, _ = _setup("kvm-exit-coco-v1")
    cpu = GuestCpu(regs={"rax": CERTS, "rbx": 1})
    _enter(model, cpu)
    struct.pack_into("<I", model.ctx.run, 52, 2)  # coco.req_certs.ret = 2 (BUSY's GHCB value)
    assert _resume(model, cpu).values["sw_exitinfo2"] == (1 << 31) << 32
    struct.pack_into("<I", model.ctx.run, 52, 1)  # KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN
    struct.pack_into("<I", model.ctx.run, 48, 7)  # npages
    view = _resume(model, cpu)
    assert (view.values["sw_exitinfo2"], view.values["rbx"]) == (1 << 32, 7)


def test_v6_exits_40_with_gfn_and_strict_ret() -> None:
    """``snp_req_certs.gfn = gpa_to_gfn(data_gpa)``, exit 40; ``default: return -EINVAL`` (v6)."""
    model, _, _ = _setup("snp-req-certs-v6")
    cpu = GuestCpu(regs={"rax": CERTS, "rbx": 3})
    step = _enter(model, cpu)
    assert getattr(step, "exit_reason", None) == 40
    assert struct.unpack_from("<QQQ", model.ctx.run, 32) == (CERTS >> 12, 3, 0)
    struct.pack_into("<Q", model.ctx.run, 48, 22)  # EINVAL: not in the switch
    with pytest.raises(KvmRunRejected):
        _resume(model, cpu)
    struct.pack_into("<Q", model.ctx.run, 48, 5)  # EIO
    assert _resume(model, cpu).values["sw_exitinfo2"] == 0xFFFFFFFF << 32


def test_v5_is_lenient_where_v6_is_strict() -> None:
    """v5 1/1: ``} else { ... SNP_GUEST_ERR(SNP_GUEST_VMM_ERR_GENERIC, 0)``: ret 22 is GENERIC."""
    model, _, _ = _setup("snp-req-certs-v5")
    cpu = GuestCpu(regs={"rax": CERTS, "rbx": 3})
    _enter(model, cpu)
    assert struct.unpack_from("<QII", model.ctx.run, 32) == (CERTS >> 12, 3, 0)
    struct.pack_into("<I", model.ctx.run, 44, 22)
    assert _resume(model, cpu).values["sw_exitinfo2"] == 0xFFFFFFFF << 32


@pytest.mark.parametrize("generation", ["linux-7.2", "kvm-exit-coco-v1"])
def test_every_answer_writes_sw_exitinfo1(generation: str) -> None:
    """``svm_vmgexit_success(svm, 0)`` runs before the switch: a stale SW_EXITINFO1 becomes 0."""
    model, d, _ = _setup(generation)
    cpu = GuestCpu(regs={"rax": CERTS, "rbx": 0}, ghcb={"sw_exitinfo1": 2})
    view = model.call("snp.ext_guest_request", cpu, d)
    assert (view.values["sw_exitinfo1"], cpu.ghcb["sw_exitinfo1"]) == (0, 0)


def test_v1_misaligned_rax_is_generic_not_invalid_input() -> None:
    """v1 3/5: ``if (!PAGE_ALIGNED(data_gpa)) goto abort_request;``: SNP_GUEST_VMM_ERR_GENERIC."""
    model, d, _ = _setup("kvm-exit-coco-v1")
    view = model.call("snp.ext_guest_request", GuestCpu(regs={"rax": CERTS + 8, "rbx": 1}), d)
    assert (view.values["sw_exitinfo1"], view.values["sw_exitinfo2"]) == (0, (1 << 31) << 32)


def test_rax_not_marked_valid_is_invalid_input() -> None:
    """``if (!kvm_ghcb_rax_is_valid(svm) || !kvm_ghcb_rbx_is_valid(svm)) goto request_invalid;``."""
    model, d, _ = _setup("linux-7.2")
    view = model.call("snp.ext_guest_request", GuestCpu(regs={"rbx": 1}), d)
    assert (view.values["sw_exitinfo1"], view.values["sw_exitinfo2"]) == (2, 5)


def test_termination_writes_type_ndata_data0_only() -> None:
    """``system_event.type``, ``.ndata = 1``, ``.data[0] = control->ghcb_gpa``: data[1..] stay."""
    model, _, _ = _setup("linux-7.2")
    run = model.ctx.run
    run[32:288] = b"\xab" * 256
    model.calls["snp.term_ghcb"].enter(model.ctx, GuestCpu(ghcb={"ghcb_gpa": 0x3000}))
    assert struct.unpack_from("<IIQ", run, 32) == (6, 1, 0x3000)
    assert bytes(run[48:288]) == b"\xab" * 240


def test_vmmcall_map_gpa_range_ret_reaches_rax_verbatim() -> None:
    """x86.c ``complete_hypercall_exit``: ``kvm_rax_write_raw(vcpu, ret)``, 22 stays 22 on 7.2."""
    model, _, _ = _setup("linux-7.2")
    cpu = GuestCpu(regs={"rax": 12, "rbx": 0x5000, "rcx": 2, "rdx": 0x10})
    call = model.calls["snp.kvm_hypercall"]
    step = call.enter(model.ctx, cpu)
    assert getattr(step, "exit_reason", None) == 3
    assert struct.unpack_from("<4Q", model.ctx.run, 32) == (12, 0x5000, 2, 0x10)
    assert struct.unpack_from("<QQ", model.ctx.run, 88) == (0, 1)  # ret pre-zeroed, LONG_MODE
    struct.pack_into("<Q", model.ctx.run, 88, 22)  # EINVAL, which the PSC path maps to GENERIC
    assert call.resume is not None
    assert call.resume(model.ctx, cpu).values == {"rax": 22}


@pytest.mark.parametrize(
    ("regs", "ghcb", "rax"),
    [
        ({"rax": 12, "rbx": 0x5001, "rcx": 2, "rdx": 0}, {}, (1 << 64) - 22),  # -KVM_EINVAL
        ({"rax": 12, "rbx": 0x5000, "rcx": 0, "rdx": 0}, {}, (1 << 64) - 22),  # !npages
        ({"rax": 12, "rbx": 0x5000, "rcx": 2, "rdx": 0}, {"cpl": 3}, (1 << 64) - 1),  # -KVM_EPERM
        ({"rax": 7, "rbx": 0, "rcx": 0, "rdx": 0}, {}, (1 << 64) - 1000),  # -KVM_ENOSYS
        ({"rax": 1, "rbx": 0, "rcx": 0, "rdx": 0}, {}, 0),  # KVM_HC_VAPIC_POLL_IRQ
    ],
)
def test_vmmcall_answered_in_kernel(regs: dict[str, int], ghcb: dict[str, int], rax: int) -> None:
    """``____kvm_emulate_hypercall``'s in-kernel answers land in RAX through ``hypercall.ret``."""
    model, d, _ = _setup("linux-7.2")
    seen: list[str] = []
    view = model.call(
        "snp.kvm_hypercall", GuestCpu(regs=regs, ghcb=ghcb), d, on_exit=lambda n, r: seen.append(n)
    )
    assert (view.values, seen) == ({"rax": rax}, [])
