# SPDX-License-Identifier: Apache-2.0
"""Decoders and write-backs for ``KVM_EXIT_TDX`` and ``KVM_SYSTEM_EVENT_TDX_FATAL``.

``KVM_EXIT_TDX`` (40) is multiplexed on ``kvm_run.tdx.nr`` (offset 40, the
TDVMCALL leaf). Every decoder reads the whole ``tdx`` member once through its
``unknown`` view (:class:`~coco_tdx.uapi.KvmTdxExit`) and every write-back is
one ``pack_into`` at ``kvm_run.tdx.ret`` (offset 48): nothing outside
``[48, 96)`` is ever written.

Completion contract (Documentation/virt/kvm/api.rst, with ``cf207eac06f6``):
KVM pre-fills ``ret`` (``SUBFUNC_UNSUPPORTED``, or ``SUCCESS`` for
GetTdVmCallInfo) and copies it verbatim into R10 on the next ``KVM_RUN``.
"Userspace need not do anything if it does not wish to support a TDVMCALL":
the fallback decoder for an ``nr`` nobody claims has ``default_status=None``,
so an unhandled one is handed back untouched and the guest sees
``SUBFUNC_UNSUPPORTED``.

GetTdVmCallInfo carries four registers back. A handler returns them in
:attr:`~coco_core.status.Outcome.value` as ``r11 | r12 << 64 | r13 << 128 |
r14 << 192``; :class:`TdvmcallInfo` builds and splits that number.

``KVM_SYSTEM_EVENT_TDX_FATAL`` (type 7 of ``KVM_EXIT_SYSTEM_EVENT``) has no
completion: the guest does not run again.
"""

from __future__ import annotations

import struct

import attrs

from coco_core.plugin import (
    EXIT_UNION_OFFSET,
    Discriminator,
    EventNotifySetup,
    ExitDecoder,
    KvmExitReason,
    KvmSystemEventExit,
    NeutralRequest,
    Outcome,
    QuoteRequest,
    StatusField,
    SystemEventType,
    TdvmcallInfoQuery,
    Termination,
    VendorSpecific,
)
from coco_tdx.ghci import TDVMCALL, TdvmcallStatus
from coco_tdx.uapi import (
    TDX_NR_OFFSET,
    TDX_RET_OFFSET,
    KvmTdxExit,
    KvmTdxGetQuote2025,
    KvmTdxSetupEventNotify2025,
    ProposalExit2025,
    TdvmcallLeaf,
)

__all__ = [
    "FATAL_MESSAGE_MAX",
    "FATAL_MESSAGE_REGS",
    "GET_QUOTE",
    "GET_TDVMCALL_INFO",
    "PROPOSAL_2025_DECODERS",
    "RELEASED_DECODERS",
    "REPORT_FATAL_ERROR_GPA_VALID",
    "SETUP_EVENT_NOTIFY",
    "TDX_FATAL",
    "TDX_NR",
    "UNKNOWN_NR",
    "TdvmcallInfo",
    "decode_fatal_error",
    "fatal_message",
]

_U = EXIT_UNION_OFFSET
_tdx = KvmTdxExit._c_struct.unpack_from
_sysev = KvmSystemEventExit._c_struct.unpack_from
#: ret only (GetQuote, SetupEventNotifyInterrupt, unknown nr)
_RET = struct.Struct("<Q")
#: ret, leaf (written back unchanged), r11, r12, r13, r14: one pack at offset 48
_INFO = struct.Struct("<6Q")
# a plain status is ``ret`` alone for every writer but GetTdVmCallInfo's
_GQ_RET = StatusField(offset=TDX_RET_OFFSET, fmt="<Q", field="kvm_run.tdx.get_quote.ret")
_SEN_RET = StatusField(offset=TDX_RET_OFFSET, fmt="<Q", field="kvm_run.tdx.setup_event_notify.ret")
_UNKNOWN_RET = StatusField(offset=TDX_RET_OFFSET, fmt="<Q", field="kvm_run.tdx.unknown.ret")
_GQ_RET_2025 = StatusField(offset=_U, fmt="<Q", field="kvm_run.tdx_get_quote.ret")
_SEN_RET_2025 = StatusField(offset=_U, fmt="<Q", field="kvm_run.tdx_setup_event_notify.ret")
_U64_MASK = (1 << 64) - 1

#: where ``KVM_EXIT_TDX`` keeps its sub-call: ``kvm_run.tdx.nr`` (§1.3: offset 40)
TDX_NR = Discriminator(
    reason=KvmExitReason.TDX, offset=TDX_NR_OFFSET, fmt="<Q", field="kvm_run.tdx.nr"
)


# -- KVM_EXIT_TDX ------------------------------------------------------------------------


def _decode_get_quote(run: memoryview) -> NeutralRequest:
    _flags, _nr, _ret, gpa, size, _d2, _d3, _d4 = _tdx(run, _U)
    return QuoteRequest(gpa, size)


def _decode_setup_event_notify(run: memoryview) -> NeutralRequest:
    _flags, _nr, _ret, vector, _d1, _d2, _d3, _d4 = _tdx(run, _U)
    return EventNotifySetup(vector)


def _decode_get_tdvmcall_info(run: memoryview) -> NeutralRequest:
    _flags, _nr, _ret, leaf, _d1, _d2, _d3, _d4 = _tdx(run, _U)
    return TdvmcallInfoQuery(leaf)


def _decode_unknown(run: memoryview) -> NeutralRequest:
    flags, nr, ret, d0, d1, d2, d3, d4 = _tdx(run, _U)
    fields = (
        ("flags", flags),
        ("nr", nr),
        ("ret", ret),
        ("data0", d0),
        ("data1", d1),
        ("data2", d2),
        ("data3", d3),
        ("data4", d4),
    )
    return VendorSpecific("tdx", "KVM_EXIT_TDX/unknown", fields)


def _write_ret(run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None) -> None:
    _RET.pack_into(run, TDX_RET_OFFSET, raw)


@attrs.frozen
class TdvmcallInfo:
    """GetTdVmCallInfo leaf-1 outputs (R11..R14), carried in ``Outcome.value``.

    GHCI 1.5 (draft 858626) leaf 1: R11/R12 are bitmaps of the optional
    TDVMCALLs the VMM supports; R13/R14 are reserved (0). QEMU fills R11 with
    ``TDG_VP_VMCALL_SUBFUNC_SET_EVENT_NOTIFY_INTERRUPT`` = ``BIT_ULL(1)``.
    """

    r11: int = 0
    r12: int = 0
    r13: int = 0
    r14: int = 0

    def to_value(self) -> int:
        """``r11 | r12 << 64 | r13 << 128 | r14 << 192`` for :attr:`Outcome.value`."""
        m = _U64_MASK
        return (self.r11 & m) | (self.r12 & m) << 64 | (self.r13 & m) << 128 | (self.r14 & m) << 192

    @classmethod
    def from_value(cls, value: int) -> TdvmcallInfo:
        """Split an :attr:`Outcome.value` (bits above 255 are ignored)."""
        m = _U64_MASK
        return cls(value & m, (value >> 64) & m, (value >> 128) & m, (value >> 192) & m)


def _write_tdvmcall_info(
    run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None
) -> None:
    # r11..r14 only travel with SUCCESS; on any error they keep KVM's zeros.
    value = outcome.value if outcome is not None else None
    r11 = r12 = r13 = r14 = 0
    if value is not None and raw == TdvmcallStatus.SUCCESS:
        m = _U64_MASK
        r11, r12, r13, r14 = value & m, (value >> 64) & m, (value >> 128) & m, (value >> 192) & m
    leaf = request.leaf & _U64_MASK if isinstance(request, TdvmcallInfoQuery) else 1
    _INFO.pack_into(run, TDX_RET_OFFSET, raw, leaf, r11, r12, r13, r14)


GET_QUOTE = ExitDecoder(
    name="KVM_EXIT_TDX/GET_QUOTE",
    reason=KvmExitReason.TDX,
    discriminator=TdvmcallLeaf.GET_QUOTE,
    vendor="tdx",
    request_type=QuoteRequest,
    decode=_decode_get_quote,
    write=_write_ret,
    error_space=TDVMCALL,
    status_field=_GQ_RET,
)
SETUP_EVENT_NOTIFY = ExitDecoder(
    name="KVM_EXIT_TDX/SETUP_EVENT_NOTIFY_INTERRUPT",
    reason=KvmExitReason.TDX,
    discriminator=TdvmcallLeaf.SETUP_EVENT_NOTIFY_INTERRUPT,
    vendor="tdx",
    request_type=EventNotifySetup,
    decode=_decode_setup_event_notify,
    write=_write_ret,
    error_space=TDVMCALL,
    status_field=_SEN_RET,
)
GET_TDVMCALL_INFO = ExitDecoder(
    name="KVM_EXIT_TDX/GET_TD_VM_CALL_INFO",
    reason=KvmExitReason.TDX,
    discriminator=TdvmcallLeaf.GET_TD_VM_CALL_INFO,
    vendor="tdx",
    request_type=TdvmcallInfoQuery,
    decode=_decode_get_tdvmcall_info,
    write=_write_tdvmcall_info,
    error_space=TDVMCALL,
    # leaf is written back as decoded; r11..r14 only travel with SUCCESS
    writes=(
        "kvm_run.tdx.get_tdvmcall_info.ret",
        "kvm_run.tdx.get_tdvmcall_info.leaf",
        "kvm_run.tdx.get_tdvmcall_info.r11",
        "kvm_run.tdx.get_tdvmcall_info.r12",
        "kvm_run.tdx.get_tdvmcall_info.r13",
        "kvm_run.tdx.get_tdvmcall_info.r14",
    ),
)
#: Any other ``nr``: a VMM may answer it (``d.on(VendorSpecific, ...)``);
#: otherwise it is handed back untouched and ``ret`` stays SUBFUNC_UNSUPPORTED.
UNKNOWN_NR = ExitDecoder(
    name="KVM_EXIT_TDX/unknown",
    reason=KvmExitReason.TDX,
    discriminator=None,
    vendor="tdx",
    request_type=VendorSpecific,
    decode=_decode_unknown,
    write=_write_ret,
    error_space=TDVMCALL,
    default_status=None,
    fallback=True,
    status_field=_UNKNOWN_RET,
)


# -- KVM_SYSTEM_EVENT_TDX_FATAL ------------------------------------------------------------

#: ``TDX_FATAL_MESSAGE_MAX`` (QEMU target/i386/kvm/tdx.c): 8 registers of 8 bytes
FATAL_MESSAGE_MAX = 64
#: GHCI ReportFatalError: R12 bit 63 says R13 holds the GPA of an info page
#: (QEMU ``TDX_REPORT_FATAL_ERROR_GPA_VALID BIT_ULL(63)``)
REPORT_FATAL_ERROR_GPA_VALID = 1 << 63
#: The registers that carry message bytes, in message order, by SDM register
#: number (= index into ``system_event.data[]`` and bit in the RCX mask):
#: R14, R15, RBX, RDI, RSI, R8, R9, RDX. QEMU ``tdx_handle_report_fatal_error()``
#: ``COPY_REG(R_R14) ... COPY_REG(R_EDX)`` tests ``reg_mask & BIT_ULL(REG)``.
FATAL_MESSAGE_REGS = (14, 15, 3, 7, 6, 8, 9, 2)
_RCX = 1  # data[1]: RCX, the register mask (SDM register number 1)
_R12 = 12  # data[12]: error code
_R13 = 13  # data[13]: info-page GPA when REPORT_FATAL_ERROR_GPA_VALID


def fatal_message(data: tuple[int, ...] | list[int], mask: int) -> str:
    """The guest's message: the masked registers' bytes, NUL-terminated, escaped.

    Printable ASCII is kept; every other byte (and the backslash) is escaped as
    ``\\xNN`` so a hostile guest cannot put control characters into logs.
    """
    raw = b"".join(
        (data[r] & _U64_MASK).to_bytes(8, "little") for r in FATAL_MESSAGE_REGS if mask >> r & 1
    )[:FATAL_MESSAGE_MAX]
    nul = raw.find(0)
    if nul >= 0:
        raw = raw[:nul]
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)


def decode_fatal_error(run: memoryview | bytearray | bytes) -> Termination:
    """Decode a ``KVM_SYSTEM_EVENT_TDX_FATAL`` exit (never raises)."""
    _type, ndata, *data = _sysev(run, _U)
    code = data[_R12]
    gpa = data[_R13] if code & REPORT_FATAL_ERROR_GPA_VALID else None
    message = fatal_message(data, data[_RCX])
    reason = f"TDX guest reported a fatal error, R12={code:#x}"
    if code & 0xFFFF:
        reason += " (low 16 bits set: QEMU rejects this error code)"
    if ndata != 16:
        reason += f" (ndata {ndata}, KVM writes 16)"
    if message:
        reason += f": {message}"
    return Termination(reason, code, gpa, message)


def _decode_fatal(run: memoryview) -> NeutralRequest:
    return decode_fatal_error(run)


#: Fatal errors are handed back to the VMM when it has no Termination handler:
#: a guest panic must not pass silently. Nothing is ever written.
TDX_FATAL = ExitDecoder(
    name="KVM_EXIT_SYSTEM_EVENT/KVM_SYSTEM_EVENT_TDX_FATAL",
    reason=KvmExitReason.SYSTEM_EVENT,
    discriminator=SystemEventType.TDX_FATAL,
    vendor="tdx",
    request_type=Termination,
    decode=_decode_fatal,
    write=None,
    error_space=None,
    default_status=None,
)

RELEASED_DECODERS = (GET_QUOTE, SETUP_EVENT_NOTIFY, GET_TDVMCALL_INFO, UNKNOWN_NR, TDX_FATAL)


# -- the 2025 separate-exit proposal (not merged) ----------------------------------------

_gq25 = KvmTdxGetQuote2025._c_struct.unpack_from
_sen25 = KvmTdxSetupEventNotify2025._c_struct.unpack_from


def _decode_get_quote_2025(run: memoryview) -> NeutralRequest:
    _ret, gpa, size = _gq25(run, _U)
    return QuoteRequest(gpa, size)


def _decode_setup_event_notify_2025(run: memoryview) -> NeutralRequest:
    _ret, vector = _sen25(run, _U)
    return EventNotifySetup(vector)


def _write_ret_2025(
    run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None
) -> None:
    _RET.pack_into(run, _U, raw)  # ret is the first member of both structs


PROPOSAL_2025_DECODERS = (
    ExitDecoder(
        name="KVM_EXIT_TDX_GET_QUOTE",
        reason=ProposalExit2025.TDX_GET_QUOTE,
        discriminator=None,
        vendor="tdx",
        request_type=QuoteRequest,
        decode=_decode_get_quote_2025,
        write=_write_ret_2025,
        error_space=TDVMCALL,
        status_field=_GQ_RET_2025,
    ),
    ExitDecoder(
        name="KVM_EXIT_TDX_SETUP_EVENT_NOTIFY",
        reason=ProposalExit2025.TDX_SETUP_EVENT_NOTIFY,
        discriminator=None,
        vendor="tdx",
        request_type=EventNotifySetup,
        decode=_decode_setup_event_notify_2025,
        write=_write_ret_2025,
        error_space=TDVMCALL,
        status_field=_SEN_RET_2025,
    ),
)
