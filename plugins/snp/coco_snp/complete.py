# SPDX-License-Identifier: Apache-2.0
"""SNP exit decoders and write-backs, for the released ABI and every proposal.

Each decoder turns one exit into a neutral request with one ``unpack_from`` on the
``kvm_run`` view and never raises; each write-back writes only inside the exit union
(``kvm_run`` bytes [32, 288)) and only the fields the ABI lets userspace write:

* released ``KVM_EXIT_SNP_REQ_CERTS`` (43): ``ret`` at 48; for BUFFER_TOO_SMALL also
  ``npages`` at 40 = :attr:`Outcome.size_needed` (KVM copies it into the guest's RBX),
  which must be larger than the guest's ``npages`` and fit the field, or the completion
  writes the generic error instead (:func:`_needed`);
* the proposals: the same request from their layouts (``gfn << 12`` is the gpa), so one
  :class:`~coco_core.requests.CertificateRequest` handler serves every revision;
* ``KVM_SYSTEM_EVENT_SEV_TERM``: a :class:`~coco_core.requests.Termination`; no completion.

**Telling the two SEV_TERM forms apart.** KVM puts ``control->ghcb_gpa`` (the guest's GHCB
MSR value) into ``data[0]`` in both cases (docs/reference/kernel-abi.md §3.5). For the MSR
protocol the low 12 bits (GHCBInfo) are ``GHCB_MSR_TERM_REQ`` (0x100) and the reason sits
in bits 23:12. For the GHCB NAE event (``SVM_VMGEXIT_TERM_REQUEST``) the value is the GHCB
page's GPA, page aligned, so the low 12 bits are 0 and the reason is in the page's
``SW_EXITINFO1`` (read it with :func:`termination_from_ghcb`). Limits: the rule relies on
the GHCB being page aligned (the GHCB spec requires it); when KVM terminates an SEV-ES
guest for using an SNP-only MSR request (``out_terminate``) ``data[0]`` is that request's
MSR value, whose low 12 bits are neither, and it decodes as "terminated by KVM" with the
GHCBInfo value kept in ``code``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from coco_core.plugin import (
    EXIT_UNION_OFFSET,
    CertificateRequest,
    Discriminator,
    ExitDecoder,
    GuestMemoryLike,
    KvmExitReason,
    KvmSystemEventExit,
    NeutralRequest,
    Outcome,
    StatusField,
    SystemEventType,
    Termination,
    run_offset,
)
from coco_snp.ghcb import REQ_CERTS, REQ_CERTS_COCO_V1, REQ_CERTS_ERRNO_V2
from coco_snp.uapi import (
    GHCB_MSR_INFO_MASK,
    GHCB_MSR_TERM_REASON_MASK,
    GHCB_MSR_TERM_REASON_POS,
    GHCB_MSR_TERM_REASON_SET_MASK,
    GHCB_MSR_TERM_REASON_SET_POS,
    GHCB_MSR_TERM_REQ,
    GHCB_SW_EXITINFO1_OFFSET,
    KVM_EXIT_COCO,
    KVM_EXIT_COCO_REQ_CERTS,
    KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN,
    KVM_EXIT_SNP_REQ_CERTS,
    KVM_EXIT_SNP_REQ_CERTS_V3,
    KVM_EXIT_SNP_REQ_CERTS_V7,
    PAGE_SHIFT,
    PAGE_SIZE,
    GhcbTermReasonSet,
    KvmExitCocoV1,
    KvmExitCocoV2,
    KvmExitSnpReqCerts,
    KvmExitSnpReqCertsV3,
    KvmExitSnpReqCertsV6,
    TermReasonGeneral,
    TermReasonLinux,
)

__all__ = [
    "COCO_NR",
    "COCO_V1_REQ_CERTS",
    "COCO_V2_REQ_CERTS",
    "GHCB_TERM_REASON",
    "REQ_CERTS_DECODER",
    "REQ_CERTS_V3",
    "REQ_CERTS_V6",
    "REQ_CERTS_V7",
    "SEV_TERM",
    "decode_sev_term",
    "describe_term_reason",
    "split_term_code",
    "termination_from_ghcb",
]

_U = EXIT_UNION_OFFSET
_DecodeFn = Callable[[memoryview], NeutralRequest]
_U64_MAX = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1
_ENOSPC = 28  # ENOSPC (asm-generic/errno-base.h)

_released = KvmExitSnpReqCerts._c_struct.unpack_from
_v1 = KvmExitCocoV1._c_struct.unpack_from
_v2 = KvmExitCocoV2._c_struct.unpack_from
_v3 = KvmExitSnpReqCertsV3._c_struct.unpack_from
_v6 = KvmExitSnpReqCertsV6._c_struct.unpack_from
_sysev = KvmSystemEventExit._c_struct.unpack_from

_put_u64 = struct.Struct("<Q").pack_into
_put_u32 = struct.Struct("<I").pack_into
_put_2u64 = struct.Struct("<QQ").pack_into
_put_2u32 = struct.Struct("<II").pack_into

# kvm_run offsets of the fields userspace writes (uapi.py layouts; kernel-abi.md §1.3, §5)
_REL_NPAGES = run_offset(KvmExitSnpReqCerts, "npages")  # snp_req_certs.npages
_REL_RET = run_offset(KvmExitSnpReqCerts, "ret")  # snp_req_certs.ret
_V1_NPAGES = run_offset(KvmExitCocoV1, "npages")  # coco.req_certs.npages
_V1_RET = run_offset(KvmExitCocoV1, "ret")  # coco.req_certs.ret
_V2_RET = run_offset(KvmExitCocoV2, "ret")  # coco.ret
_V2_NPAGES = run_offset(KvmExitCocoV2, "npages")  # coco.req_certs.npages
_V3_NPAGES = run_offset(KvmExitSnpReqCertsV3, "npages")  # snp_req_certs.npages (u32)
_V3_RET = run_offset(KvmExitSnpReqCertsV3, "ret")  # snp_req_certs.ret (u32)
# For a plain status each writer below writes only ``ret`` (the page count needs an Outcome;
# coco_core.completion answers a plain BUFFER_TOO_SMALL with the generic error, since a
# size-carrying code without its size would tell the guest "you need what you gave").
_REL_RET_FIELD = StatusField(offset=_REL_RET, fmt="<Q", field="kvm_run.snp_req_certs.ret")
_V1_RET_FIELD = StatusField(offset=_V1_RET, fmt="<I", field="kvm_run.coco.req_certs.ret")
_V2_RET_FIELD = StatusField(offset=_V2_RET, fmt="<I", field="kvm_run.coco.ret")
_V3_RET_FIELD = StatusField(offset=_V3_RET, fmt="<I", field="kvm_run.snp_req_certs.ret")


def _needed(outcome: Outcome | None, request: NeutralRequest, limit: int) -> int:
    """The page count written with ENOSPC (INVALID_LEN for v1), which KVM copies into RBX.

    It must be an ``int`` larger than the guest's ``npages`` (else the guest is told "too
    small, you need what you gave") and fit the field (``limit``). ``snp_complete_req_certs``
    (arch/x86/kvm/svm/sev.c, kvm-x86/linux @ 1a27afa0) reads ``npages`` only for ENOSPC.

    :raises ValueError: no usable size; the completion then writes the generic error.
    """
    n = None if outcome is None else outcome.size_needed
    given = request.npages if isinstance(request, CertificateRequest) else None
    usable = isinstance(n, int) and not isinstance(n, bool) and given is not None
    if not usable or not given < n <= limit:  # type: ignore[operator]
        raise ValueError(
            f"BUFFER_TOO_SMALL with size_needed {n!r}: expected more pages than the guest's "
            f"npages {given} and at most {limit:#x} (the field's width)"
        )
    return n  # type: ignore[return-value]


# -- released: KVM_EXIT_SNP_REQ_CERTS {gpa, npages, ret} (also v7) -------------------------


def _decode_released(run: memoryview) -> NeutralRequest:
    gpa, npages, _ret = _released(run, _U)
    return CertificateRequest(gpa, npages)


def _write_released(
    run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None
) -> None:
    if raw == _ENOSPC and outcome is not None:
        _put_2u64(run, _REL_NPAGES, _needed(outcome, request, _U64_MAX), raw)
    else:
        _put_u64(run, _REL_RET, raw)


def _req_certs(reason: int, decode: _DecodeFn = _decode_released) -> ExitDecoder:
    return ExitDecoder(
        name="KVM_EXIT_SNP_REQ_CERTS",
        reason=reason,
        discriminator=None,
        vendor="snp",
        request_type=CertificateRequest,
        decode=decode,
        write=_write_released,
        error_space=REQ_CERTS,
        status_field=_REL_RET_FIELD,
        writes=("kvm_run.snp_req_certs.ret", "kvm_run.snp_req_certs.npages"),
    )


def _decode_v6(run: memoryview) -> NeutralRequest:
    gfn, npages, _ret = _v6(run, _U)
    return CertificateRequest((gfn << PAGE_SHIFT) & _U64_MAX, npages)


#: Linux 7.0+: exit 43.
REQ_CERTS_DECODER = _req_certs(KVM_EXIT_SNP_REQ_CERTS)
#: v7 as posted (2026-01-09): exit 42, the released layout and strict errno.
REQ_CERTS_V7 = _req_certs(KVM_EXIT_SNP_REQ_CERTS_V7)
#: v6 ([PATCH v6 1/2], 2025-04-28): exit 40, ``__u64 gfn`` (``gpa_to_gfn(data_gpa)``), u64
#: npages/ret at the released offsets, and already the strict switch (``default: return
#: -EINVAL``), so the released writer and errno space.
REQ_CERTS_V6 = _req_certs(KVM_EXIT_SNP_REQ_CERTS_V3, _decode_v6)

# -- v3..v5: KVM_EXIT_SNP_REQ_CERTS 40 {gfn u64, npages u32, ret u32} -----------------------


def _decode_v3(run: memoryview) -> NeutralRequest:
    gfn, npages, _ret = _v3(run, _U)
    return CertificateRequest(gfn << PAGE_SHIFT, npages)


def _write_v3(run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None) -> None:
    if raw == _ENOSPC and outcome is not None:
        _put_2u32(run, _V3_NPAGES, _needed(outcome, request, _U32_MAX), raw)
    else:
        _put_u32(run, _V3_RET, raw)


REQ_CERTS_V3 = ExitDecoder(
    name="KVM_EXIT_SNP_REQ_CERTS",
    reason=KVM_EXIT_SNP_REQ_CERTS_V3,
    discriminator=None,
    vendor="snp",
    request_type=CertificateRequest,
    decode=_decode_v3,
    write=_write_v3,
    error_space=REQ_CERTS_ERRNO_V2,
    status_field=_V3_RET_FIELD,
    writes=("kvm_run.snp_req_certs.ret", "kvm_run.snp_req_certs.npages"),
)

# -- v1: KVM_EXIT_COCO 40, nr u8, req_certs {gfn u64, npages u32, ret u32} -----------------

#: ``kvm_run.coco.nr``: the sub-call of the v1/v2 ``KVM_EXIT_COCO``.
COCO_NR = Discriminator(
    reason=KVM_EXIT_COCO,
    offset=run_offset(KvmExitCocoV1, "nr"),
    fmt=KvmExitCocoV1.format_of("nr"),
    field="kvm_run.coco.nr",
)


def _decode_v1(run: memoryview) -> NeutralRequest:
    _nr, _pad, gfn, npages, _ret = _v1(run, _U)
    return CertificateRequest(gfn << PAGE_SHIFT, npages)


def _write_v1(run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None) -> None:
    if raw == KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN and outcome is not None:
        _put_2u32(run, _V1_NPAGES, _needed(outcome, request, _U32_MAX), raw)
    else:
        _put_u32(run, _V1_RET, raw)


COCO_V1_REQ_CERTS = ExitDecoder(
    name="KVM_EXIT_COCO/KVM_EXIT_COCO_REQ_CERTS",
    reason=KVM_EXIT_COCO,
    discriminator=KVM_EXIT_COCO_REQ_CERTS,
    vendor="snp",
    request_type=CertificateRequest,
    decode=_decode_v1,
    write=_write_v1,
    error_space=REQ_CERTS_COCO_V1,
    status_field=_V1_RET_FIELD,
    writes=("kvm_run.coco.req_certs.ret", "kvm_run.coco.req_certs.npages"),
)

# -- v2: KVM_EXIT_COCO 40, nr u8, ret u32 in the header, req_certs {gfn, npages u32} --------


def _decode_v2(run: memoryview) -> NeutralRequest:
    _nr, _pad0, _ret, _pad1, gfn, npages = _v2(run, _U)
    return CertificateRequest(gfn << PAGE_SHIFT, npages)


def _write_v2(run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None) -> None:
    # the two fields are not adjacent in v2: two writes on this path only
    if raw == _ENOSPC and outcome is not None:
        _put_u32(run, _V2_NPAGES, _needed(outcome, request, _U32_MAX))
    _put_u32(run, _V2_RET, raw)


COCO_V2_REQ_CERTS = ExitDecoder(
    name="KVM_EXIT_COCO/KVM_EXIT_COCO_REQ_CERTS",
    reason=KVM_EXIT_COCO,
    discriminator=KVM_EXIT_COCO_REQ_CERTS,
    vendor="snp",
    request_type=CertificateRequest,
    decode=_decode_v2,
    write=_write_v2,
    error_space=REQ_CERTS_ERRNO_V2,
    status_field=_V2_RET_FIELD,
    writes=("kvm_run.coco.ret", "kvm_run.coco.req_certs.npages"),
)

# -- termination: KVM_EXIT_SYSTEM_EVENT / KVM_SYSTEM_EVENT_SEV_TERM ------------------------

_SET_NAMES: dict[int, str] = {
    GhcbTermReasonSet.GEN: "general",
    GhcbTermReasonSet.LINUX: "guest-defined (Linux)",
}
_GENERAL = {
    TermReasonGeneral.SEV_ES_GEN_REQ: "general termination request",
    TermReasonGeneral.SEV_ES_PROT_UNSUPPORTED: "SEV-ES / GHCB protocol range not supported",
    TermReasonGeneral.SNP_UNSUPPORTED: "SEV-SNP features not supported",
}
_LINUX = {
    TermReasonLinux.REGISTER: "GHCB GPA registration failure",
    TermReasonLinux.PSC: "page state change failure",
    TermReasonLinux.PVALIDATE: "PVALIDATE failure",
    TermReasonLinux.NOT_VMPL0: "not running at VMPL0",
    TermReasonLinux.CPUID: "CPUID validation failure",
    TermReasonLinux.CPUID_HV: "CPUID failure during hypervisor fallback",
    TermReasonLinux.SECRETS_PAGE: "secrets page failure",
    TermReasonLinux.NO_SVSM: "SVSM is not advertised in the secrets page",
    TermReasonLinux.SVSM_VMPL0: "SVSM is present but has set VMPL to 0",
    TermReasonLinux.SVSM_CAA: "SVSM is present but CAA is not page aligned",
    TermReasonLinux.SECURE_TSC: "Secure TSC initialization failed",
    TermReasonLinux.SVSM_CA_REMAP_FAIL: "SVSM is present but CA could not be remapped",
}
#: reason set → {code: text}, the sets this module can name.
GHCB_TERM_REASON: dict[int, dict[int, str]] = {
    GhcbTermReasonSet.GEN: {int(k): v for k, v in _GENERAL.items()},
    GhcbTermReasonSet.LINUX: {int(k): v for k, v in _LINUX.items()},
}


def describe_term_reason(reason_set: int, code: int) -> str:
    """``"reason set 0 (general), code 1: SEV-ES / GHCB protocol range not supported"``."""
    set_name = _SET_NAMES.get(reason_set, "guest-defined")
    text = GHCB_TERM_REASON.get(reason_set, {}).get(code)
    tail = f": {text}" if text is not None else ""
    return f"reason set {reason_set} ({set_name}), code {code}{tail}"


def split_term_code(code: int) -> tuple[int, int]:
    """Split :attr:`Termination.code` (``set << 8 | code``) into ``(reason set, code)``."""
    return (code >> 8) & GHCB_MSR_TERM_REASON_SET_MASK, code & GHCB_MSR_TERM_REASON_MASK


def decode_sev_term(value: int) -> Termination:
    """Decode ``system_event.data[0]`` of a SEV_TERM exit (see the module notes).

    :attr:`Termination.code` is ``reason_set << 8 | reason_code`` for the MSR protocol.
    """
    info = value & GHCB_MSR_INFO_MASK
    if info == GHCB_MSR_TERM_REQ:
        rset = (value >> GHCB_MSR_TERM_REASON_SET_POS) & GHCB_MSR_TERM_REASON_SET_MASK
        code = (value >> GHCB_MSR_TERM_REASON_POS) & GHCB_MSR_TERM_REASON_MASK
        return Termination(
            f"GHCB MSR termination request: {describe_term_reason(rset, code)}", (rset << 8) | code
        )
    if info == 0:
        return Termination("GHCB request; reason in SW_EXITINFO1 of the GHCB page", None, value)
    return Termination(
        f"terminated by KVM: GHCB MSR request {info:#05x} not allowed for this guest", info
    )


def _decode_sev_term(run: memoryview) -> NeutralRequest:
    values = _sysev(run, _U)  # type, ndata, data[16]
    return decode_sev_term(values[2])


#: ``KVM_EXIT_SYSTEM_EVENT`` type 6: no completion; handed back untouched without a handler.
SEV_TERM = ExitDecoder(
    name="KVM_EXIT_SYSTEM_EVENT/KVM_SYSTEM_EVENT_SEV_TERM",
    reason=KvmExitReason.SYSTEM_EVENT,
    discriminator=SystemEventType.SEV_TERM,
    vendor="snp",
    request_type=Termination,
    decode=_decode_sev_term,
    write=None,
    error_space=None,
    default_status=None,
)


def termination_from_ghcb(memory: GuestMemoryLike, gpa: int) -> Termination:
    """Read the reason of a GHCB-page termination from ``SW_EXITINFO1`` (offset 0x398).

    ``SW_EXITINFO1`` holds the reason set in bits 3:0 and the code in bits 11:4 (GHCB spec
    56421 "Termination Request"; kernel-abi.md §3.5). The GHCB is guest memory: the read is
    bounds-checked and any failure is reported in the result, never raised.
    """
    if gpa < 0 or gpa % PAGE_SIZE:
        return Termination(f"GHCB GPA {gpa:#x} is not page aligned; reason unreadable", None, gpa)
    where = gpa + GHCB_SW_EXITINFO1_OFFSET
    try:
        if not memory.contains(where, 8):
            return Termination(f"GHCB page {gpa:#x} is outside guest memory", None, gpa)
        info1 = int.from_bytes(memory.read(where, 8), "little")
    except Exception as exc:  # guest memory is hostile input; report, do not raise
        return Termination(f"GHCB page {gpa:#x} unreadable: {exc}", None, gpa)
    rset, code = info1 & 0xF, (info1 >> 4) & 0xFF
    return Termination(
        f"GHCB termination request: {describe_term_reason(rset, code)}", (rset << 8) | code, gpa
    )
