# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_tdx.ghci: the TDVMCALL, GetQuote-status and QGS error spaces."""

from __future__ import annotations

import pytest

from coco_core.errorspace import Landing, UnknownCode
from coco_core.status import CoCoStatus
from coco_tdx.ghci import (
    GET_QUOTE_STATUS,
    QGS,
    TDVMCALL,
    GetQuoteStatus,
    TdvmcallStatus,
    map_gpa_guest_status,
    shared_bit,
)


def test_tdvmcall_primary_codes() -> None:
    """OK, RETRY, INVALID and UNSUPPORTED encode to their own R10 codes."""
    assert TDVMCALL.encode(CoCoStatus.OK) == 0
    assert TDVMCALL.encode(CoCoStatus.RETRY) == 1
    assert TDVMCALL.encode(CoCoStatus.INVALID) == 1 << 63
    assert TDVMCALL.encode(CoCoStatus.UNSUPPORTED) == 1 << 63 | 3
    assert TDVMCALL.landing is Landing.KVM_RUN_VERBATIM
    assert TDVMCALL.kernel_accepts is None


def test_tdvmcall_fallbacks_are_declared() -> None:
    """Statuses the GHCI cannot express fall back as documented (ERROR → INVALID_OPERAND)."""
    assert TDVMCALL.encode(CoCoStatus.ERROR) == TdvmcallStatus.INVALID_OPERAND
    assert TDVMCALL.encode(CoCoStatus.BUFFER_TOO_SMALL) == TdvmcallStatus.INVALID_OPERAND
    assert TDVMCALL.encode(CoCoStatus.SERVICE_UNAVAILABLE) == TdvmcallStatus.SUBFUNC_UNSUPPORTED
    assert TDVMCALL.encode(CoCoStatus.IN_FLIGHT) == TdvmcallStatus.SUCCESS
    assert not TDVMCALL.expresses(CoCoStatus.ERROR)


def test_tdvmcall_extra_codes_decode_to_invalid() -> None:
    """GPA_INUSE and ALIGN_ERROR decode to INVALID and are valid vendor codes for it."""
    assert TDVMCALL.decode(TdvmcallStatus.GPA_INUSE) is CoCoStatus.INVALID
    assert TDVMCALL.decode(TdvmcallStatus.ALIGN_ERROR) is CoCoStatus.INVALID
    assert TDVMCALL.check_vendor_code(TdvmcallStatus.ALIGN_ERROR, CoCoStatus.INVALID) == (
        TdvmcallStatus.ALIGN_ERROR
    )
    assert TDVMCALL.name_of(TdvmcallStatus.GPA_INUSE) == "TDG_VP_VMCALL_GPA_INUSE"


def test_unknown_codes_are_kept() -> None:
    """A raw value no table knows decodes to UnknownCode with the value kept."""
    assert TDVMCALL.decode(0x1234) == UnknownCode("tdx.tdvmcall", 0x1234)
    assert GET_QUOTE_STATUS.decode(5) == UnknownCode("tdx.get_quote_status", 5)


def test_get_quote_status_space() -> None:
    """Buffer statuses encode as the guest driver defines them; RETRY can only become ERROR."""
    assert GET_QUOTE_STATUS.encode(CoCoStatus.OK) == GetQuoteStatus.SUCCESS
    assert GET_QUOTE_STATUS.encode(CoCoStatus.IN_FLIGHT) == 0xFFFFFFFFFFFFFFFF
    assert GET_QUOTE_STATUS.encode(CoCoStatus.SERVICE_UNAVAILABLE) == 1 << 63 | 1
    assert GET_QUOTE_STATUS.encode(CoCoStatus.RETRY) == GetQuoteStatus.ERROR
    assert not GET_QUOTE_STATUS.expresses(CoCoStatus.RETRY)
    assert GET_QUOTE_STATUS.landing is Landing.GUEST_BUFFER


def test_qgs_space_keeps_every_code() -> None:
    """Every QGS error code 0x12001-0x12007 has a name and a status; SUCCESS is 0."""
    assert QGS.encode(CoCoStatus.OK) == 0
    for code in range(0x12001, 0x12008):
        assert QGS.name_of(code) is not None
        assert isinstance(QGS.decode(code), CoCoStatus)
    assert QGS.decode(0x12008) == UnknownCode("tdx.qgs", 0x12008)
    assert QGS.landing is Landing.SERVICE_WIRE


@pytest.mark.parametrize(
    ("generation", "ret", "expected"),
    [
        ("linux-6.16", 0, TdvmcallStatus.SUCCESS),
        ("linux-6.16", 11, TdvmcallStatus.INVALID_OPERAND),
        ("linux-7.1", 5, TdvmcallStatus.INVALID_OPERAND),
        ("linux-7.2", 0, TdvmcallStatus.SUCCESS),
        ("linux-7.2", 11, TdvmcallStatus.RETRY),
        ("linux-7.2", 22, TdvmcallStatus.INVALID_OPERAND),
        ("linux-7.2", 5, None),
        ("linux-7.2", 1 << 63, None),
    ],
)
def test_map_gpa_guest_status_per_generation(
    generation: str, ret: int, expected: TdvmcallStatus | None
) -> None:
    """MapGPA's ret maps to R10 as each kernel generation does (None: KVM_RUN fails)."""
    assert map_gpa_guest_status(generation, ret) == expected


def test_shared_bit_per_gpaw() -> None:
    """GPA.SHARED is bit 47 for GPAW 48 and bit 51 for GPAW 52; other widths are refused."""
    assert shared_bit() == 1 << 47
    assert shared_bit(52) == 1 << 51
    with pytest.raises(ValueError, match="GPAW 40"):
        shared_bit(40)
