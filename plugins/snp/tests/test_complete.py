# SPDX-License-Identifier: Apache-2.0
"""Decoders and write-backs of every SNP ABI, and the SEV_TERM decoding."""

from __future__ import annotations

import struct
from typing import NamedTuple

import pytest

from coco_core.dispatch import Dispatcher
from coco_core.errors import CodeError
from coco_core.generic.uapi import KVM_RUN_SIZE
from coco_core.kvm.vm import GuestMemory
from coco_core.model.base import GuestCpu
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.requests import CertificateRequest, Termination, Unsupported
from coco_core.status import CoCoStatus, Outcome
from coco_snp import complete, plugin
from coco_snp.model import REQ_CERTS_ENABLED

REG = Registry.from_plugins([plugin])


def _run(reason: int, union: bytes) -> bytearray:
    run = bytearray(b"\xa5" * KVM_RUN_SIZE)  # noise outside the union shows stray writes
    run[8:12] = struct.pack("<I", reason)
    run[32:288] = union.ljust(256, b"\0")
    return run


def _outside(run: bytearray) -> bytes:
    return bytes(run[:32] + run[288:])


class Case(NamedTuple):
    """One ABI's certificate exit: the image, the request it decodes to, where ret/npages are."""

    abi: str
    reason: int
    union: bytes
    req: tuple[int, int]
    ret: tuple[int, str]  # offset, struct format
    npages: tuple[int, str]


_CASES = [
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
CASES = [Case(*c) for c in _CASES]
IDS = [c.abi for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_decode_each_abi(case: Case) -> None:
    """Every ABI's certificate exit decodes to the same CertificateRequest."""
    abi, reason, union, req, _ret, _npages = case
    ev = Dispatcher(REG, "snp", abi).decode(_run(reason, union))
    assert ev.request == CertificateRequest(*req)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_buffer_too_small_writes_ret_and_npages(case: Case) -> None:
    """BUFFER_TOO_SMALL writes the ABI's code and the pages needed, nothing outside the union."""
    abi, reason, union, _req, ret, npages = case
    run = _run(reason, union)
    before = _outside(run)
    ev = Dispatcher(REG, "snp", abi).decode(run)
    done = ev.complete(Outcome(CoCoStatus.BUFFER_TOO_SMALL, size_needed=7))
    assert struct.unpack_from(npages[1], run, npages[0])[0] == 7
    assert struct.unpack_from(ret[1], run, ret[0])[0] == done.raw
    assert done.raw == (1 if abi == "kvm-exit-coco-v1" else 28)
    assert _outside(run) == before


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_retry_and_error_codes(case: Case) -> None:
    """RETRY and ERROR write the ABI's codes into ret and leave npages alone."""
    abi, reason, union, _req, ret, npages = case
    d = Dispatcher(REG, "snp", abi)
    for status in (CoCoStatus.RETRY, CoCoStatus.ERROR):
        run = _run(reason, union)
        done = d.decode(run).complete(status)
        assert struct.unpack_from(ret[1], run, ret[0])[0] == done.raw
        assert struct.unpack_from(npages[1], run, npages[0])[0] == 2
    v1 = abi == "kvm-exit-coco-v1"
    run = _run(reason, union)
    assert d.decode(run).complete(CoCoStatus.RETRY).raw == ((1 << 31) if v1 else 11)


# (abi, the largest page count its npages field holds, its generic error code)
_LIMITS = {
    "linux-7.2": ((1 << 64) - 1, 5),
    "linux-7.0": ((1 << 64) - 1, 5),
    "snp-req-certs-v7": ((1 << 64) - 1, 5),
    "snp-req-certs-v6": ((1 << 64) - 1, 5),
    "snp-req-certs-v3": (0xFFFFFFFF, 5),
    "snp-req-certs-v5": (0xFFFFFFFF, 5),
    "kvm-exit-coco-v1": (0xFFFFFFFF, 1 << 31),
    "kvm-exit-coco-v2": (0xFFFFFFFF, 5),
}
# size_needed values at the boundaries (the guest gave 2 pages) and of the wrong types
_SIZES: list[object] = [None, 0, -1, 1, 2, 3, 7, True, 1.5, "3", "limit", "limit+1"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("size", _SIZES)
def test_buffer_too_small_needs_more_pages_than_the_guest_gave(case: Case, size: object) -> None:
    """ENOSPC is written only with an int page count above the guest's 2 that fits npages."""
    abi, reason, union, _req, ret, npages = case
    limit, generic = _LIMITS[abi]
    n = limit if size == "limit" else limit + 1 if size == "limit+1" else size
    d = Dispatcher(REG, "snp", abi)
    d.on(CertificateRequest, lambda r, c: Outcome(CoCoStatus.BUFFER_TOO_SMALL, size_needed=n))  # type: ignore[arg-type]
    run = _run(reason, union)
    before = _outside(run)
    done = d.dispatch(run)
    usable = type(n) is int and 2 < n <= limit
    too_small = 1 if abi == "kvm-exit-coco-v1" else 28
    assert struct.unpack_from(ret[1], run, ret[0])[0] == (too_small if usable else generic)
    assert struct.unpack_from(npages[1], run, npages[0])[0] == (n if usable else 2)
    assert (done is CoCoStatus.ERROR) is not usable
    assert _outside(run) == before


def test_plain_buffer_too_small_is_the_generic_error() -> None:
    """A bare BUFFER_TOO_SMALL (no size at all) gives EIO, not ENOSPC with the guest's npages."""
    d = Dispatcher(REG, "snp", "linux-7.2")
    d.on(CertificateRequest, lambda r, c: CoCoStatus.BUFFER_TOO_SMALL)
    run = _run(43, struct.pack("<QQQ", 0x5000, 2, 0))
    assert d.dispatch(run) is CoCoStatus.ERROR
    assert struct.unpack_from("<QQ", run, 40) == (2, 5)


def test_buffer_too_small_by_hand_without_a_size_raises() -> None:
    """ev.complete(BUFFER_TOO_SMALL) without a size raises CodeError and writes nothing."""
    run = _run(43, struct.pack("<QQQ", 0x5000, 2, 0))
    before = bytes(run)
    ev = Dispatcher(REG, "snp", "linux-7.2").decode(run)
    with pytest.raises(CodeError, match="size_needed None"):
        ev.complete(CoCoStatus.BUFFER_TOO_SMALL)
    assert bytes(run) == before


@pytest.mark.parametrize(("size", "rbx", "exitinfo2"), [(2, 2, 0xFFFFFFFF << 32), (3, 3, 1 << 32)])
def test_kernel_model_accepts_what_a_too_small_answer_writes(
    size: int, rbx: int, exitinfo2: int
) -> None:
    """The model sees GENERIC for a size equal to the guest's, INVALID_LEN with RBX above it."""
    buf = bytearray(0x20000)
    model = KernelModel(REG, "snp", GuestMemory.from_buffer(0, buf), "linux-7.2")
    model.ctx.vm_state[REQ_CERTS_ENABLED] = True
    d = Dispatcher(REG, "snp", "linux-7.2")
    d.on(CertificateRequest, lambda r, c: Outcome(CoCoStatus.BUFFER_TOO_SMALL, size_needed=size))
    cpu = GuestCpu(regs={"rax": 0x4000, "rbx": 2})
    view = model.call("snp.ext_guest_request", cpu, d)
    assert (view.values["sw_exitinfo2"], view.values["rbx"]) == (exitinfo2, rbx)


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


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("status", [s for s in CoCoStatus if s is not CoCoStatus.BUFFER_TOO_SMALL])
def test_only_buffer_too_small_writes_npages(case: Case, status: CoCoStatus) -> None:
    """Any other status leaves npages as the guest gave it, even with a size_needed (KVM reads
    npages only for ENOSPC: snp_complete_req_certs, sev.c @ 1a27afa0)."""
    abi, reason, union, _req, _ret, npages = case
    run = _run(reason, union)
    ev = Dispatcher(REG, "snp", abi).decode(run)
    ev.complete(Outcome(status, size_needed=7))
    assert struct.unpack_from(npages[1], run, npages[0])[0] == 2


def test_ok_completion_marks_the_request_handed_on() -> None:
    """After OK the exit is handed on (RETRY then raises); after ERROR it is not."""
    d = Dispatcher(REG, "snp", "linux-7.2")
    ok = d.decode(_run(43, struct.pack("<QQQ", 0x5000, 2, 0)))
    assert not ok.handed_on
    ok.complete(CoCoStatus.OK)
    assert ok.handed_on
    err = d.decode(_run(43, struct.pack("<QQQ", 0x5000, 2, 0)))
    err.complete(CoCoStatus.ERROR)
    assert not err.handed_on
