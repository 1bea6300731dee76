# SPDX-License-Identifier: Apache-2.0
"""Decoders and write-backs of every SNP ABI, and the SEV_TERM decoding."""

from __future__ import annotations

import struct

import pytest

from coco_core.dispatch import Dispatcher
from coco_core.generic.uapi import KVM_RUN_SIZE
from coco_core.kvm.vm import GuestMemory
from coco_core.registry import Registry
from coco_core.requests import CertificateRequest, Termination, Unsupported
from coco_core.status import CoCoStatus, Outcome
from coco_snp import complete, plugin

REG = Registry.from_plugins([plugin])


def _run(reason: int, union: bytes) -> bytearray:
    run = bytearray(b"\xa5" * KVM_RUN_SIZE)  # noise outside the union shows stray writes
    run[8:12] = struct.pack("<I", reason)
    run[32:288] = union.ljust(256, b"\0")
    return run


def _outside(run: bytearray) -> bytes:
    return bytes(run[:32] + run[288:])


CASES = [
    # abi, reason, union image, expected request, (ret offset, fmt), (npages offset, fmt)
    ("linux-7.2", 43, struct.pack("<QQQ", 0x5000, 2, 0), (0x5000, 2), (48, "<Q"), (40, "<Q")),
    ("linux-7.0", 43, struct.pack("<QQQ", 0x5000, 2, 0), (0x5000, 2), (48, "<Q"), (40, "<Q")),
    (
        "snp-req-certs-v7",
        42,
        struct.pack("<QQQ", 0x5000, 2, 0),
        (0x5000, 2),
        (48, "<Q"),
        (40, "<Q"),
    ),
    (
        "snp-req-certs-v6",
        40,
        struct.pack("<QQQ", 5, 2, 0),  # [PATCH v6 1/2]: __u64 gfn
        (0x5000, 2),
        (48, "<Q"),
        (40, "<Q"),
    ),
    ("snp-req-certs-v3", 40, struct.pack("<QII", 5, 2, 0), (0x5000, 2), (44, "<I"), (40, "<I")),
    ("snp-req-certs-v5", 40, struct.pack("<QII", 5, 2, 0), (0x5000, 2), (44, "<I"), (40, "<I")),
    (
        "kvm-exit-coco-v1",
        40,
        struct.pack("<B7xQII", 0, 5, 2, 0),
        (0x5000, 2),
        (52, "<I"),
        (48, "<I"),
    ),
    (
        "kvm-exit-coco-v2",
        40,
        struct.pack("<B7xIIQI", 0, 0, 0, 5, 2),
        (0x5000, 2),
        (40, "<I"),
        (56, "<I"),
    ),
]


@pytest.mark.parametrize(("abi", "reason", "union", "req", "ret", "npages"), CASES)
def test_decode_each_abi(
    abi: str,
    reason: int,
    union: bytes,
    req: tuple[int, int],
    ret: tuple[int, str],
    npages: tuple[int, str],
) -> None:
    """Every ABI's certificate exit decodes to the same CertificateRequest."""
    ev = Dispatcher(REG, "snp", abi).decode(_run(reason, union))
    assert ev.request == CertificateRequest(*req)


@pytest.mark.parametrize(("abi", "reason", "union", "req", "ret", "npages"), CASES)
def test_buffer_too_small_writes_ret_and_npages(
    abi: str,
    reason: int,
    union: bytes,
    req: tuple[int, int],
    ret: tuple[int, str],
    npages: tuple[int, str],
) -> None:
    """BUFFER_TOO_SMALL writes the ABI's code and the pages needed, nothing outside the union."""
    run = _run(reason, union)
    before = _outside(run)
    ev = Dispatcher(REG, "snp", abi).decode(run)
    done = ev.complete(Outcome(CoCoStatus.BUFFER_TOO_SMALL, size_needed=7))
    assert struct.unpack_from(npages[1], run, npages[0])[0] == 7
    assert struct.unpack_from(ret[1], run, ret[0])[0] == done.raw
    assert done.raw == (1 if abi == "kvm-exit-coco-v1" else 28)
    assert _outside(run) == before


@pytest.mark.parametrize(("abi", "reason", "union", "req", "ret", "npages"), CASES)
def test_retry_and_error_codes(
    abi: str,
    reason: int,
    union: bytes,
    req: tuple[int, int],
    ret: tuple[int, str],
    npages: tuple[int, str],
) -> None:
    """RETRY and ERROR write the ABI's codes into ret and leave npages alone."""
    d = Dispatcher(REG, "snp", abi)
    for status in (CoCoStatus.RETRY, CoCoStatus.ERROR):
        run = _run(reason, union)
        done = d.decode(run).complete(status)
        assert struct.unpack_from(ret[1], run, ret[0])[0] == done.raw
        assert struct.unpack_from(npages[1], run, npages[0])[0] == 2
    v1 = abi == "kvm-exit-coco-v1"
    run = _run(reason, union)
    assert d.decode(run).complete(CoCoStatus.RETRY).raw == ((1 << 31) if v1 else 11)


def test_huge_size_needed_is_clamped() -> None:
    """A size_needed beyond the field is clamped to its maximum, not an exception."""
    run = _run(40, struct.pack("<QII", 5, 2, 0))
    Dispatcher(REG, "snp", "snp-req-certs-v3").decode(run).complete(
        Outcome(CoCoStatus.BUFFER_TOO_SMALL, size_needed=1 << 40)
    )
    assert struct.unpack_from("<I", run, 40)[0] == 0xFFFFFFFF


def test_unknown_coco_nr_is_unsupported() -> None:
    """A v1 KVM_EXIT_COCO with an unknown nr comes back as Unsupported."""
    ev = Dispatcher(REG, "snp", "kvm-exit-coco-v1").decode(_run(40, b"\x07"))
    assert isinstance(ev.request, Unsupported)
    assert ev.request.discriminator == 7


def test_sev_term_msr_form() -> None:
    """An MSR-protocol termination decodes reason set and code with readable text."""
    value = 0x100 | (0 << 12) | (2 << 16)
    ev = Dispatcher(REG, "snp", "linux-7.2").decode(_run(24, struct.pack("<IIQ", 6, 1, value)))
    assert isinstance(ev.request, Termination)
    assert ev.request.code == 2
    assert "SEV-SNP features not supported" in ev.request.reason
    t = complete.decode_sev_term(0x100 | (1 << 12) | (1 << 16))
    assert complete.split_term_code(t.code or 0) == (1, 1)
    assert "page state change" in t.reason


def test_sev_term_ghcb_form_and_page_read() -> None:
    """A page-aligned data[0] is the GHCB GPA; the reason comes from its SW_EXITINFO1."""
    t = complete.decode_sev_term(0x3000)
    assert t.gpa == 0x3000
    assert t.code is None
    assert "SW_EXITINFO1" in t.reason
    buf = bytearray(0x8000)
    struct.pack_into("<Q", buf, 0x3000 + 0x398, 0 | (1 << 4))
    mem = GuestMemory.from_buffer(0, buf)
    got = complete.termination_from_ghcb(mem, 0x3000)
    assert got.code == 1
    assert "GHCB protocol" in got.reason
    assert "outside" in complete.termination_from_ghcb(mem, 0x8000).reason
    assert "not page aligned" in complete.termination_from_ghcb(mem, 0x3001).reason


def test_sev_term_other_info_is_kvm_termination() -> None:
    """A data[0] with other low bits is reported as a termination by KVM."""
    t = complete.decode_sev_term(0x014)
    assert "terminated by KVM" in t.reason
    assert t.code == 0x14


def test_sev_term_without_handler_is_handed_back() -> None:
    """With no Termination handler the exit comes back untouched as Unsupported."""
    run = _run(24, struct.pack("<IIQ", 6, 1, 0x100))
    before = bytes(run)
    result = Dispatcher(REG, "snp", "linux-7.2").dispatch(run)
    assert isinstance(result, Unsupported)
    assert bytes(run) == before
