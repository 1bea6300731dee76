# SPDX-License-Identifier: Apache-2.0
"""TDX GHCI error spaces: TDVMCALL status (R10), GetQuote buffer status, QGS codes.

Three spaces, three places a TDX answer lands:

``tdx.tdvmcall``
    The TDG.VP.VMCALL status the guest reads in R10. For ``KVM_EXIT_TDX``
    userspace writes it into ``kvm_run.tdx.<call>.ret`` and KVM copies it
    **verbatim** into R10 (``tdx_complete_simple()``; no validation,
    docs/reference/kernel-abi.md §2.3). Values: ``arch/x86/include/asm/shared/tdx.h``
    (Linux 6.16) and QEMU ``target/i386/kvm/tdx.h`` (§2.2); ``tdx_complete_simple()``
    in arch/x86/kvm/vmx/tdx.c, kvm-x86 @ 09c6f74e.
``tdx.get_quote_status``
    The ``status`` u64 at offset 8 of the GetQuote shared buffer, written by the
    VMM while (``IN_FLIGHT``) and after the quote is generated. The values are the
    GHCI's (TDG.VP.VMCALL<GetQuote>, "Status Code"); QEMU names them
    ``TDX_VP_GET_QUOTE_*`` (target/i386/kvm/tdx.h) and the Linux guest driver
    defines ``GET_QUOTE_SUCCESS``/``GET_QUOTE_IN_FLIGHT`` in
    drivers/virt/coco/tdx-guest/tdx-guest.c. No uapi header defines them: Linux 7.2's
    ``include/uapi/linux/tdx-guest.h`` (linux-libc-dev 7.2.13) has none (§2.4).
``tdx.qgs``
    ``error_code`` of a QGS ``GET_QUOTE_RESP`` (``qgs_msg_lib.h``; wire-formats.md
    §1.5). Kept in logs and traces; the guest only ever sees ``GET_QUOTE_ERROR``.

Choices where the GHCI has no code of its own (declared as fallbacks, so they
show in ``coco abi compare``):

* ``ERROR`` → ``INVALID_OPERAND``. The GHCI has no generic error. QEMU's
  ``tdx_handle_get_quote()`` leaves ``INVALID_OPERAND`` as its default ``ret``
  for every failure, and the Linux guest turns any non-SUCCESS into ``-EIO``;
  ``SUBFUNC_UNSUPPORTED`` would instead tell the guest the call does not exist
  at all, which a transient VMM failure must not do.
* ``SERVICE_UNAVAILABLE`` → ``SUBFUNC_UNSUPPORTED``: the VMM cannot offer the
  call now. (The GetQuote service does what QEMU does instead: ``ret = SUCCESS``
  and ``GET_QUOTE_SERVICE_UNAVAILABLE`` in the buffer.)
* ``IN_FLIGHT`` → ``SUCCESS``: at the TDVMCALL level "accepted and being worked
  on" *is* success (GHCI GetQuote: R10 is the queueing status).
* ``BUFFER_TOO_SMALL`` → ``INVALID_OPERAND``: R10 cannot carry a size.

In ``tdx.get_quote_status`` ``RETRY`` falls back to ``ERROR`` only so the table
is total; a request whose status is in the buffer was accepted, and the quote
service refuses ``RETRY`` after acceptance (:class:`~coco_core.exits.CompletionError`).
"""

from __future__ import annotations

import enum

from coco_core.plugin import CoCoStatus, Errno, ErrorSpace, Landing, kernels
from coco_tdx.qgs.wire import QgsMsgError

__all__ = [
    "GET_QUOTE_STATUS",
    "GPAW_SHARED_BIT",
    "QGS",
    "TDVMCALL",
    "GetQuoteStatus",
    "TdvmcallStatus",
    "map_gpa_guest_status",
    "shared_bit",
]


@enum.unique
class TdvmcallStatus(enum.IntEnum):
    """TDG.VP.VMCALL status codes (guest R10); docs/reference/kernel-abi.md §2.2."""

    SUCCESS = 0x0000000000000000  # TDVMCALL_STATUS_SUCCESS
    RETRY = 0x0000000000000001  # TDVMCALL_STATUS_RETRY
    INVALID_OPERAND = 0x8000000000000000  # TDVMCALL_STATUS_INVALID_OPERAND
    GPA_INUSE = 0x8000000000000001  # TDG_VP_VMCALL_GPA_INUSE (QEMU tdx.h; GHCI)
    ALIGN_ERROR = 0x8000000000000002  # TDVMCALL_STATUS_ALIGN_ERROR
    SUBFUNC_UNSUPPORTED = 0x8000000000000003  # TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED (6.16)


@enum.unique
class GetQuoteStatus(enum.IntEnum):
    """GetQuote shared-buffer ``status``: GHCI TDG.VP.VMCALL<GetQuote> status codes.

    QEMU target/i386/kvm/tdx.h ``TDX_VP_GET_QUOTE_*``; SUCCESS and IN_FLIGHT also in
    drivers/virt/coco/tdx-guest/tdx-guest.c (kernel-internal). Not in any uapi header.
    """

    SUCCESS = 0x0000000000000000  # GET_QUOTE_SUCCESS
    IN_FLIGHT = 0xFFFFFFFFFFFFFFFF  # GET_QUOTE_IN_FLIGHT
    ERROR = 0x8000000000000000  # GET_QUOTE_ERROR
    SERVICE_UNAVAILABLE = 0x8000000000000001  # GET_QUOTE_SERVICE_UNAVAILABLE


TDVMCALL = ErrorSpace(
    id="tdx.tdvmcall",
    title="TDG.VP.VMCALL status: kvm_run.tdx.*.ret, copied verbatim into guest R10",
    width=64,
    landing=Landing.KVM_RUN_VERBATIM,
    names={s.value: f"TDVMCALL_STATUS_{s.name}" for s in TdvmcallStatus}
    | {TdvmcallStatus.GPA_INUSE.value: "TDG_VP_VMCALL_GPA_INUSE"},
    primary={
        CoCoStatus.OK: TdvmcallStatus.SUCCESS,
        CoCoStatus.RETRY: TdvmcallStatus.RETRY,
        CoCoStatus.INVALID: TdvmcallStatus.INVALID_OPERAND,
        CoCoStatus.UNSUPPORTED: TdvmcallStatus.SUBFUNC_UNSUPPORTED,
    },
    decodes={
        TdvmcallStatus.GPA_INUSE: CoCoStatus.INVALID,
        TdvmcallStatus.ALIGN_ERROR: CoCoStatus.INVALID,
    },
    fallbacks={
        CoCoStatus.BUFFER_TOO_SMALL: CoCoStatus.INVALID,
        CoCoStatus.IN_FLIGHT: CoCoStatus.OK,
        CoCoStatus.SERVICE_UNAVAILABLE: CoCoStatus.UNSUPPORTED,
        CoCoStatus.ERROR: CoCoStatus.INVALID,
    },
    kernel_accepts=None,  # tdx_complete_simple(): R10 <- ret, no check (tdx.c, 6.16)
    source="arch/x86/include/asm/shared/tdx.h (Linux 6.16); QEMU target/i386/kvm/tdx.h; "
    "GHCI 1.5 TDG.VP.VMCALL status codes; docs/reference/kernel-abi.md §2.2-2.3",
)

GET_QUOTE_STATUS = ErrorSpace(
    id="tdx.get_quote_status",
    title="GetQuote shared buffer status (u64 at gpa+8), written by the VMM",
    width=64,
    landing=Landing.GUEST_BUFFER,
    names={s.value: f"GET_QUOTE_{s.name}" for s in GetQuoteStatus},
    primary={
        CoCoStatus.OK: GetQuoteStatus.SUCCESS,
        CoCoStatus.IN_FLIGHT: GetQuoteStatus.IN_FLIGHT,
        CoCoStatus.SERVICE_UNAVAILABLE: GetQuoteStatus.SERVICE_UNAVAILABLE,
        CoCoStatus.ERROR: GetQuoteStatus.ERROR,
    },
    fallbacks={
        # RETRY is never legal here (the request was accepted); the entry only
        # makes the table total, and QuoteService refuses RETRY outright.
        CoCoStatus.RETRY: CoCoStatus.ERROR,
        CoCoStatus.BUFFER_TOO_SMALL: CoCoStatus.ERROR,
        CoCoStatus.INVALID: CoCoStatus.ERROR,
        CoCoStatus.UNSUPPORTED: CoCoStatus.ERROR,
    },
    source="GHCI TDG.VP.VMCALL<GetQuote> status codes; QEMU target/i386/kvm/tdx.h "
    "TDX_VP_GET_QUOTE_*; drivers/virt/coco/tdx-guest/tdx-guest.c (SUCCESS, IN_FLIGHT; "
    "no uapi header has them, linux-libc-dev 7.2.13); docs/reference/kernel-abi.md §2.4",
)

QGS = ErrorSpace(
    id="tdx.qgs",
    title="QGS GET_QUOTE_RESP error_code (qgs_msg_error_t)",
    width=32,
    landing=Landing.SERVICE_WIRE,
    names={
        QgsMsgError.SUCCESS.value: "QGS_MSG_SUCCESS",
        **{
            m.value: f"QGS_MSG_ERROR_{m.name}"
            for m in QgsMsgError
            if m not in (QgsMsgError.SUCCESS, QgsMsgError.MAX)
        },
    },
    primary={
        CoCoStatus.OK: QgsMsgError.SUCCESS,
        CoCoStatus.INVALID: QgsMsgError.INVALID_PARAMETER,
        CoCoStatus.UNSUPPORTED: QgsMsgError.INVALID_TYPE,
        CoCoStatus.ERROR: QgsMsgError.UNEXPECTED,
    },
    decodes={
        QgsMsgError.OUT_OF_MEMORY: CoCoStatus.ERROR,
        QgsMsgError.INVALID_VERSION: CoCoStatus.INVALID,
        QgsMsgError.INVALID_SIZE: CoCoStatus.INVALID,
        QgsMsgError.INVALID_CODE: CoCoStatus.INVALID,
    },
    fallbacks={
        CoCoStatus.RETRY: CoCoStatus.ERROR,
        CoCoStatus.BUFFER_TOO_SMALL: CoCoStatus.ERROR,
        CoCoStatus.IN_FLIGHT: CoCoStatus.ERROR,
        CoCoStatus.SERVICE_UNAVAILABLE: CoCoStatus.ERROR,
    },
    source="QuoteGeneration/quote_wrapper/qgs_msg_lib/inc/qgs_msg_lib.h (DCAP); "
    "docs/reference/wire-formats.md §1.5",
)


# -- GPA.SHARED -------------------------------------------------------------------------

#: GPA.SHARED is the top bit of the guest-physical address width: bit 47 for
#: GPAW 48, bit 51 for GPAW 52. Linux guest ``arch/x86/coco/tdx/tdx.c``
#: ``get_cc_mask()``: ``BIT_ULL(gpa_width - 1)``; host: ``kvm_gfn_direct_bits()``
#: (arch/x86/kvm/vmx/tdx.c). Intel TDX Module base spec, "GPA.SHARED".
GPAW_SHARED_BIT = {48: 1 << 47, 52: 1 << 51}


def shared_bit(gpaw: int = 48) -> int:
    """The GPA.SHARED bit for a TD whose guest-physical address width is ``gpaw``.

    :raises ValueError: ``gpaw`` is neither 48 nor 52 (the only widths TDX defines).
    """
    try:
        return GPAW_SHARED_BIT[gpaw]
    except KeyError:
        raise ValueError(f"GPAW {gpaw} is not a TDX address width (48 or 52)") from None


# -- MapGPA: what the guest sees for a hypercall.ret, per generation --------------------


def map_gpa_guest_status(generation: str, ret: int) -> TdvmcallStatus | None:
    """What ``tdx_complete_vmcall_map_gpa()`` makes of ``hypercall.ret``.

    :param generation: the kernel, as an ABI name (``linux-6.16`` ... ``linux-7.2``, or
        a proposal, which predates the errno rule).
    :param ret: the u64 userspace wrote.
    :returns: ``SUCCESS`` for a chunk done (KVM then advances), ``RETRY`` or
        ``INVALID_OPERAND`` for an error (R11 = next GPA), or None when
        ``KVM_RUN`` fails with ``-EINVAL`` (7.2+: anything but 0, EAGAIN, EINVAL).
    """
    if ret == 0:
        return TdvmcallStatus.SUCCESS
    if not kernels.has(generation, kernels.MAP_GPA_RANGE_RET_CHECKED):
        return TdvmcallStatus.INVALID_OPERAND  # before 7.2: any non-zero value
    if ret == Errno.EAGAIN:
        return TdvmcallStatus.RETRY
    if ret == Errno.EINVAL:
        return TdvmcallStatus.INVALID_OPERAND
    return None
