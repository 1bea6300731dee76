# SPDX-License-Identifier: Apache-2.0
"""Registration of the SNP plugin, the RETRY rule, and the service's lock protocol."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from coco_core import kernels
from coco_core.dispatch import Dispatcher
from coco_core.exits import CompletionError
from coco_core.generic.uapi import KVM_RUN_SIZE
from coco_core.kvm.vm import GuestMemory
from coco_core.registry import Registry
from coco_core.requests import CertificateRequest
from coco_core.status import CoCoStatus, Outcome
from coco_snp import plugin
from coco_snp.certs.lock import exclusive_update
from coco_snp.certs.table import CertTableKind, build_cert_table, parse_cert_table
from coco_snp.service import CertificateService

REG = Registry.from_plugins([plugin])


def _req_certs_run(gpa: int = 0x1000, npages: int = 1) -> bytearray:
    run = bytearray(KVM_RUN_SIZE)
    run[8:12] = struct.pack("<I", 43)
    struct.pack_into("<QQQ", run, 32, gpa, npages, 0)
    return run


def test_from_plugins_registers_everything() -> None:
    """from_plugins gives the snp vendor, every ABI, the model and the command."""
    assert "snp" in REG.vendors
    for abi in (*(k.name for k in kernels.released()), *plugin.PROPOSALS):
        assert abi in REG.abis
    assert {a.name for a in REG.abis_of("snp")} >= set(plugin.PROPOSALS)
    assert not REG.abi("kvm-exit-coco-v1").released
    assert REG.abi("linux-7.2").exits["KVM_EXIT_SNP_REQ_CERTS"] == 43
    assert "KVM_EXIT_TDX" not in REG.abi("snp-req-certs-v3").exits
    assert REG.abi("snp-req-certs-v7").exits["KVM_EXIT_SNP_REQ_CERTS"] == 42
    assert "snp" in REG.commands
    assert any(m.vendor == "snp" for m in REG.models)
    assert "snp.req_certs" in REG.spaces
    assert "snp.ghcb_vmm" in REG.spaces


def test_map_gpa_not_reclaimed_on_released() -> None:
    """On released ABIs the MAP_GPA_RANGE decoder stays the core's."""
    table = REG.decoders_for("linux-7.2", "snp")
    assert table[(3, 12)].vendor == "kvm"
    assert table[(43, None)].vendor == "snp"


def test_from_entry_points() -> None:
    """The installed entry point loads the plugin."""
    reg = Registry.from_entry_points(allow={"snp"})
    assert "snp" in reg.vendors
    assert not reg.failures


def test_plugin_import_does_not_load_cryptography() -> None:
    """Importing plugin.py leaves cryptography unloaded, so coco --help stays fast."""
    code = "import sys, coco_snp.plugin; print('cryptography' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_retry_after_hand_on_raises() -> None:
    """Completing with RETRY after hand_on raises CompletionError and writes nothing."""
    run = _req_certs_run()
    ev = Dispatcher(REG, "snp", "linux-7.2").decode(run)
    ev.hand_on()
    with pytest.raises(CompletionError):
        ev.complete(CoCoStatus.RETRY)
    assert struct.unpack_from("<Q", run, 48)[0] == 0


def test_retry_before_hand_on_writes_eagain() -> None:
    """RETRY before anything was handed on writes EAGAIN."""
    run = _req_certs_run()
    assert Dispatcher(REG, "snp", "linux-7.2").decode(run).complete(CoCoStatus.RETRY).raw == 11
    assert struct.unpack_from("<Q", run, 48)[0] == 11


def _blob(tmp_path: Path) -> Path:
    p = tmp_path / "certs.blob"
    p.write_bytes(build_cert_table([(CertTableKind.ARK, b"\x30\x03\x02\x01\x00")]))
    return p


def test_service_blob_holds_lock_until_completion(tmp_path: Path) -> None:
    """With a blob the table is written and the shared lock is released only afterwards."""
    buf = bytearray(0x4000)
    svc = CertificateService(GuestMemory.from_buffer(0, buf), blob=_blob(tmp_path))
    out = svc(CertificateRequest(0x1000, 1), None)
    assert out.status is CoCoStatus.OK
    assert len(out.after_kernel_completion) == 1
    assert parse_cert_table(bytes(buf[0x1000:0x2000])).entries[0].kind is CertTableKind.ARK
    with (
        pytest.raises(Exception, match="lock unavailable"),
        exclusive_update(_blob_path(tmp_path), wait=False),
    ):
        pass
    out.run_after_completion()
    with exclusive_update(_blob_path(tmp_path), wait=False):
        pass


def _blob_path(tmp_path: Path) -> Path:
    return tmp_path / "certs.blob"


def test_service_blob_busy_is_retry_without_write(tmp_path: Path) -> None:
    """An update holding the exclusive lock gives RETRY and leaves guest memory alone."""
    buf = bytearray(0x4000)
    path = _blob(tmp_path)
    svc = CertificateService(GuestMemory.from_buffer(0, buf), blob=path)
    with exclusive_update(path, wait=False):
        out = svc(CertificateRequest(0x1000, 1), None)
    assert out.status is CoCoStatus.RETRY
    assert not any(buf)


def test_service_too_small_releases_lock(tmp_path: Path) -> None:
    """A too-small buffer gives the page count, writes nothing and drops the lock."""
    buf = bytearray(0x4000)
    path = _blob(tmp_path)
    svc = CertificateService(GuestMemory.from_buffer(0, buf), blob=path)
    out = svc(CertificateRequest(0x1000, 0), None)
    assert out == Outcome(CoCoStatus.BUFFER_TOO_SMALL, size_needed=1, detail=out.detail)
    assert not any(buf)
    with exclusive_update(path, wait=False):
        pass


def test_service_rejects_bad_ranges() -> None:
    """Unaligned, wrapping or out-of-RAM buffers get ERROR and no write."""
    buf = bytearray(0x4000)
    svc = CertificateService(GuestMemory.from_buffer(0, buf), bytes(24))
    for gpa, npages in [(0x1001, 1), (0x3000, 2), ((1 << 64) - 4096, 2), (-4096, 1), (0, -1)]:
        assert svc(CertificateRequest(gpa, npages), None).status is CoCoStatus.ERROR
    assert not any(buf)


@pytest.mark.parametrize(
    ("abi", "message_id"),
    [
        ("kvm-exit-coco-v1", "<20240621134041.3170480-5-michael.roth@amd.com>"),
        ("snp-req-certs-v3", "<20241218152226.1113411-1-michael.roth@amd.com>"),
        ("snp-req-certs-v4", "<20250120215818.522175-2-huibo.wang@amd.com>"),
        ("snp-req-certs-v5", "<20250219151505.3538323-2-michael.roth@amd.com>"),
        ("snp-req-certs-v6", "<20250428195113.392303-2-michael.roth@amd.com>"),
        ("snp-req-certs-v7", "<20260109231732.1160759-2-michael.roth@amd.com>"),
    ],
)
def test_proposal_date_is_its_mails(abi: str, message_id: str) -> None:
    """git send-email's Message-ID starts with the UTC date it was sent: the ABI's date is it."""
    proposal = REG.abi(abi)
    stamp = message_id[1:9]
    assert message_id in proposal.source
    assert proposal.order == f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:]}"
