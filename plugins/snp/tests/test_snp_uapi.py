# SPDX-License-Identifier: Apache-2.0
"""Layouts of the SNP exits, released and proposed, with golden kvm_run images."""

from __future__ import annotations

import pytest

from coco_core.generic.uapi import KVM_RUN_SIZE
from coco_core.model.base import GuestCpu, KernelContext
from coco_core.registry import Registry
from coco_snp import plugin, uapi
from coco_snp.model import MODEL, REQ_CERTS_ENABLED


def _golden(dump: str) -> bytes:
    """Hex dump lines ``offset: bytes  # comment`` → bytes (offsets checked)."""
    out = bytearray()
    for line in dump.strip().splitlines():
        text = line.split("#")[0].strip()
        off, hexes = text.split(":")
        assert int(off, 16) == len(out)
        out += bytes.fromhex(hexes)
    return bytes(out)


def _image(generation: str) -> bytearray:
    class Mem:
        def read(self, gpa: int, size: int) -> bytes:
            return bytes(size)

        def write(self, gpa: int, data: bytes) -> None:
            raise AssertionError("no write expected")

        def contains(self, gpa: int, size: int) -> bool:
            return True

    ctx = KernelContext(generation, bytearray(KVM_RUN_SIZE), Mem(), {REQ_CERTS_ENABLED: True})
    call = next(c for c in MODEL.calls if c.name == "snp.ext_guest_request")
    call.enter(ctx, GuestCpu(regs={"rax": 0x12345000, "rbx": 3}))
    return bytearray(ctx.run)


def test_released_struct_matches_header() -> None:
    """struct kvm_exit_snp_req_certs is 24 bytes with gpa, npages, ret at 0, 8, 16."""
    lay = uapi.KvmExitSnpReqCerts.c_layout()
    assert lay.size == 24
    assert [(m.name, m.offset) for m in lay.members] == [("gpa", 0), ("npages", 8), ("ret", 16)]


def test_proposal_structs_match_kernel_abi() -> None:
    """The v1, v2 and v3 layouts have the sizes and offsets of kernel-abi.md §5."""
    assert uapi.KvmExitCocoV1.c_size() == 24
    assert uapi.KvmExitCocoV2.c_size() == 32
    assert uapi.KvmExitSnpReqCertsV3.c_size() == 16
    assert uapi.KvmSevCmd.c_size() == 24


@pytest.mark.parametrize(
    ("abi", "expected"),
    [
        ("linux-7.2", {"kvm_run.snp_req_certs.gpa": (32, 8), "kvm_run.snp_req_certs.ret": (48, 8)}),
        (
            "kvm-exit-coco-v1",
            {
                "kvm_run.coco.nr": (32, 1),
                "kvm_run.coco.req_certs.gfn": (40, 8),
                "kvm_run.coco.req_certs.npages": (48, 4),
                "kvm_run.coco.req_certs.ret": (52, 4),
            },
        ),
        (
            "kvm-exit-coco-v2",
            {
                "kvm_run.coco.ret": (40, 4),
                "kvm_run.coco.req_certs.gfn": (48, 8),
                "kvm_run.coco.req_certs.npages": (56, 4),
            },
        ),
        (
            "snp-req-certs-v4",
            {"kvm_run.snp_req_certs.npages": (40, 4), "kvm_run.snp_req_certs.ret": (44, 4)},
        ),
    ],
)
def test_kvm_run_offsets_per_abi(abi: str, expected: dict[str, tuple[int, int]]) -> None:
    """The merged kvm_run layout of each ABI puts the SNP members where the header does."""
    offsets = Registry.from_plugins([plugin]).abi(abi).kvm_run_layout().offsets("kvm_run")
    for path, where in expected.items():
        assert offsets[path] == where


def test_golden_released_image() -> None:
    """The model's KVM_EXIT_SNP_REQ_CERTS image matches the hand-written dump."""
    run = _image("linux-7.2")
    assert run[8:12] == bytes.fromhex("2b000000")  # exit_reason 43
    assert bytes(run[32:56]) == _golden(
        """
        00: 0050341200000000  # gpa = 0x12345000
        08: 0300000000000000  # npages = 3
        10: 0000000000000000  # ret = 0
        """
    )
    assert not any(run[56:288])


def test_golden_coco_v1_image() -> None:
    """The v1 KVM_EXIT_COCO image carries nr 0, gfn and a u32 npages."""
    run = _image("kvm-exit-coco-v1")
    assert run[8:12] == bytes.fromhex("28000000")  # exit_reason 40
    assert bytes(run[32:56]) == _golden(
        """
        00: 0000000000000000  # nr = 0 (REQ_CERTS), pad0[7]
        08: 4523010000000000  # req_certs.gfn = 0x12345
        10: 03000000          # req_certs.npages = 3
        14: 00000000          # req_certs.ret = 0
        """
    )


def test_golden_coco_v2_image() -> None:
    """The v2 image has ret in the header and the request after it."""
    run = _image("kvm-exit-coco-v2")
    assert bytes(run[32:64]) == _golden(
        """
        00: 0000000000000000  # nr = 0, pad0[7]
        08: 00000000          # ret = 0
        0c: 00000000          # pad1
        10: 4523010000000000  # req_certs.gfn = 0x12345
        18: 0300000000000000  # req_certs.npages = 3, tail padding
        """
    )


def test_golden_v3_and_v7_images() -> None:
    """v3 exits with 40 and a gfn; v7 with 42 and the u64 layout."""
    v3 = _image("snp-req-certs-v3")
    assert v3[8:12] == bytes.fromhex("28000000")
    assert bytes(v3[32:48]) == bytes.fromhex("45230100000000000300000000000000")
    v7 = _image("snp-req-certs-v7")
    assert v7[8:12] == bytes.fromhex("2a000000")
    assert bytes(v7[32:40]) == bytes.fromhex("0050341200000000")


def test_constants() -> None:
    """Enable-step and message constants carry the kernel's values."""
    assert (uapi.KVM_X86_GRP_SEV, uapi.KVM_X86_SEV_SNP_REQ_CERTS) == (1, 2)
    assert uapi.KVM_SEV_SNP_ENABLE_REQ_CERTS == 103
    assert uapi.SNP_MSG_REPORT_REQ == 5
    assert uapi.SvmVmgexit.EXT_GUEST_REQUEST == 0x80000012
    assert uapi.GHCB_MSR_PSC_RESP_ERROR == (1 << 63) | 0x15


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (5, "CPUID failure during hypervisor fallback"),
        (6, "secrets page failure"),
        (7, "SVSM is not advertised in the secrets page"),
        (8, "SVSM is present but has set VMPL to 0"),
        (9, "SVSM is present but CAA is not page aligned"),
    ],
)
def test_linux_termination_reasons_past_5(code: int, text: str) -> None:
    """sev-common.h ``#define GHCB_TERM_SVSM_CAA 9 /* SVSM is present but CAA is not ... */``."""
    from coco_snp.complete import decode_sev_term

    msr = 0x100 | (1 << 12) | (code << 16)  # GHCB_MSR_TERM_REQ, reason set 1 (Linux), code
    assert decode_sev_term(msr).reason.endswith(f"code {code}: {text}")
