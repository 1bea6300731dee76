# SPDX-License-Identifier: Apache-2.0
"""The SNP error spaces and the SW_EXITINFO2 helpers."""

from __future__ import annotations

from coco_core.errorspace import UnknownCode
from coco_core.status import CoCoStatus
from coco_snp import ghcb


def test_req_certs_encodes_errno() -> None:
    """snp.req_certs writes 0, ENOSPC, EAGAIN, EIO and folds the rest into EIO."""
    s = ghcb.REQ_CERTS
    assert s.encode(CoCoStatus.OK) == 0
    assert s.encode(CoCoStatus.BUFFER_TOO_SMALL) == 28
    assert s.encode(CoCoStatus.RETRY) == 11
    assert s.encode(CoCoStatus.ERROR) == 5
    assert s.encode(CoCoStatus.INVALID) == 5
    assert s.encode(CoCoStatus.SERVICE_UNAVAILABLE) == 5
    assert s.kernel_accepts == frozenset({0, 5, 11, 28})


def test_req_certs_keeps_unknown_codes() -> None:
    """A ret no table knows decodes to UnknownCode with its value."""
    assert ghcb.REQ_CERTS.decode(22) == UnknownCode("snp.req_certs", 22)


def test_ghcb_vmm_values() -> None:
    """snp.ghcb_vmm has INVALID_LEN, BUSY and GENERIC in the upper half."""
    s = ghcb.GHCB_VMM
    assert s.encode(CoCoStatus.BUFFER_TOO_SMALL) == 1 << 32
    assert s.encode(CoCoStatus.RETRY) == 2 << 32
    assert s.encode(CoCoStatus.ERROR) == 0xFFFFFFFF << 32
    assert s.name_of(2 << 32) == "SNP_GUEST_VMM_ERR_BUSY"


def test_v1_spaces_have_bit31_generic() -> None:
    """The v1 proposal's ret and guest spaces use BIT(31) as GENERIC and have no BUSY."""
    assert ghcb.REQ_CERTS_COCO_V1.encode(CoCoStatus.ERROR) == 1 << 31
    assert ghcb.REQ_CERTS_COCO_V1.encode(CoCoStatus.RETRY) == 1 << 31
    assert ghcb.GHCB_VMM_V1.encode(CoCoStatus.ERROR) == (1 << 31) << 32
    assert ghcb.REQ_CERTS_ERRNO_V2.kernel_accepts is None


def test_psc_space() -> None:
    """snp.psc encodes ERROR as VMGEXIT_PSC_ERROR_GENERIC and decodes INVALID_ENTRY."""
    assert ghcb.PSC.encode(CoCoStatus.ERROR) == 0x100 << 32
    assert ghcb.PSC.encode(CoCoStatus.RETRY) == 0x100 << 32
    assert ghcb.PSC.decode((1 << 32) | 2) is CoCoStatus.INVALID


def test_exitinfo2_round_trip() -> None:
    """decode_exitinfo2 splits what encode_exitinfo2 joins and names the VMM error."""
    raw = ghcb.encode_exitinfo2(ghcb.SNP_GUEST_VMM_ERR_INVALID_LEN, 0x16)
    info = ghcb.decode_exitinfo2(raw)
    assert (info.vmm_error, info.fw_error) == (1, 0x16)
    assert info.vmm_name == "SNP_GUEST_VMM_ERR_INVALID_LEN"
    assert "INVALID_LEN" in str(info)
    assert ghcb.decode_exitinfo2(0x8000000000000000, v1=True).vmm_name is not None
    assert ghcb.decode_exitinfo2(0x7 << 32).vmm_name is None
