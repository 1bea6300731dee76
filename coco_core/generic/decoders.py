# SPDX-License-Identifier: Apache-2.0
"""The generic exits' decoders: port I/O, MSR, memory fault, ``KVM_HC_MAP_GPA_RANGE``.

Each decoder reads its exit with one ``unpack_from`` at the offsets
:mod:`coco_core.generic.uapi` declares; each completion writes only the fields
KVM reads back for that exit, per arch/x86/kvm/x86.c (kvm-x86/linux @
042007c262e5): a WRMSR exit completes with ``complete_fast_msr_access``, which
reads ``msr.error`` only; a RDMSR exit with ``complete_fast_rdmsr``, which reads
``msr.error`` and, when it is 0, ``msr.data`` (``complete_userspace_rdmsr``);
``KVM_HC_MAP_GPA_RANGE`` reads ``hypercall.ret``. Port I/O and memory faults
have no completion.
"""

from __future__ import annotations

import functools
import struct

from coco_core.abi import Discriminator, ExitDecoder, StatusField
from coco_core.errors import LayoutError
from coco_core.generic.kvmerrno import MAP_GPA_RANGE_ERRNO, MAP_GPA_RANGE_LEGACY, MSR_ERROR
from coco_core.generic.uapi import (
    EXIT_REASON,
    EXIT_UNION_OFFSET,
    KVM_EXIT_IO_OUT,
    HypercallNr,
    KvmExitReason,
    KvmHypercallExit,
    KvmIoExit,
    KvmMemoryFaultExit,
    KvmMsrExit,
    KvmSystemEventExit,
    MapGpaRangeAttr,
    MemoryExitFlag,
    run_offset,
)
from coco_core.requests import MemoryConversion, MemoryFault, MsrAccess, NeutralRequest, PortIo
from coco_core.status import Outcome

__all__ = [
    "HYPERCALL_NR",
    "IO",
    "MEMORY_FAULT",
    "PORT_IO_KEPT",
    "RDMSR",
    "SYSTEM_EVENT_TYPE",
    "WRMSR",
    "map_gpa_decoder",
]

_U = EXIT_UNION_OFFSET
_U64_MASK = (1 << 64) - 1
_put_u64 = struct.Struct("<Q").pack_into
_io = KvmIoExit._c_struct.unpack_from
_fault = KvmMemoryFaultExit._c_struct.unpack_from
_RET = run_offset(KvmHypercallExit, "ret")
_MSR_ERROR = run_offset(KvmMsrExit, "error")
_MSR_DATA = run_offset(KvmMsrExit, "data")
#: where a plain status lands (the writers below write only these for a CoCoStatus)
_RET_FIELD = StatusField(offset=_RET, fmt="<Q", field="kvm_run.hypercall.ret")
_MSR_ERROR_FIELD = StatusField(offset=_MSR_ERROR, fmt="<B", field="kvm_run.msr.error")

# Indexed by the page-size field, args[2] bits 3:0 (Documentation/virt/kvm/x86/hypercalls.rst,
# torvalds/linux @ 512a93a93dbe: "0 = 4kb, 1 = 2mb, 2 = 1gb, etc..."; kvm_para.h defines
# KVM_MAP_GPA_RANGE_PAGE_SZ_4K 0, _2M 1, _1G 2). Encodings 3..15 are undefined: kept at
# 4 KiB so the page count alone bounds the range, and MemoryConversion.attribute_problem
# names them.
_PAGE_SIZES = (1 << 12, 1 << 21, 1 << 30) + (1 << 12,) * 13
_PAGE_SIZE_FIELD = 0xF
_ENCRYPTED = int(MapGpaRangeAttr.ENCRYPTED)  # plain int: IntFlag arithmetic is slow


#: How many distinct port I/O exits the decoder keeps built. Port I/O exits repeat
#: (a doorbell, a serial port: the same five fields exit after exit), and building
#: a frozen attrs value is most of such an exit's cost: measured in ``make bench``,
#: rebuilding it every time costs about a tenth of a real KVM round trip. The values
#: are immutable, so handing out the same one is safe. A guest that varies the
#: fields only makes the least recently used ones drop out: the memory is bounded
#: and a miss costs one build, so cost does not grow with what the guest does.
PORT_IO_KEPT = 256


@functools.lru_cache(maxsize=PORT_IO_KEPT)
def _port_io(direction: int, size: int, port: int, count: int, data_offset: int) -> PortIo:
    return PortIo(port, direction == KVM_EXIT_IO_OUT, size, count, data_offset)


def _decode_io(run: memoryview) -> NeutralRequest:
    # kvm_run.io: direction, size, port, count, data_offset
    return _port_io(*_io(run, _U))


# exit_reason and kvm_run.msr (__u8 error, pad[7]; __u32 reason, index; __u64 data) in
# one unpack: reason, error, why, index, data
_MSR_WITH_REASON = struct.Struct(f"<I{_MSR_ERROR - EXIT_REASON - 4}xB7xIIQ")
if _MSR_WITH_REASON.size != _MSR_DATA + 8 - EXIT_REASON:  # the layout above must match KvmMsrExit
    raise LayoutError(f"kvm_run.msr: one-unpack format {_MSR_WITH_REASON.format} is off")
_msr_with_reason = _MSR_WITH_REASON.unpack_from
_WRMSR = int(KvmExitReason.X86_WRMSR)


def _decode_msr(run: memoryview) -> NeutralRequest:
    reason, _err, why, index, data = _msr_with_reason(run, EXIT_REASON)
    return MsrAccess(index, reason == _WRMSR, data, why)


def _write_msr(run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None) -> None:
    run[_MSR_ERROR] = raw
    # msr.data is read back only for a RDMSR that succeeded (complete_userspace_rdmsr);
    # a WRMSR's completion (complete_fast_msr_access) reads msr.error alone.
    if (
        outcome is not None
        and outcome.value is not None
        and raw == 0
        and isinstance(request, MsrAccess)
        and not request.write
    ):
        _put_u64(run, _MSR_DATA, outcome.value & _U64_MASK)


_PRIVATE = int(MemoryExitFlag.PRIVATE)


def _decode_fault(run: memoryview) -> NeutralRequest:
    flags, gpa, size = _fault(run, _U)
    return MemoryFault(gpa, size, (flags & _PRIVATE) != 0)


# kvm_run.hypercall.args[0..2] only (nr is the discriminator, read already)
_map_gpa_args = struct.Struct("<QQQ").unpack_from
_ARGS = run_offset(KvmHypercallExit, "args")


def _decode_map_gpa(run: memoryview) -> NeutralRequest:
    a0, a1, a2 = _map_gpa_args(run, _ARGS)
    # args[2] bits 3:0 page size, bit 4 ENCRYPTED, 63:5 reserved (hypercalls.rst): kept
    # whole in ``attributes`` so the handler can refuse what the guest must not set.
    return MemoryConversion(a0, a1, (a2 & _ENCRYPTED) != 0, _PAGE_SIZES[a2 & _PAGE_SIZE_FIELD], a2)


def _write_hypercall_ret(
    run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None
) -> None:
    _put_u64(run, _RET, raw)


IO = ExitDecoder(
    name="KVM_EXIT_IO",
    reason=KvmExitReason.IO,
    discriminator=None,
    vendor="kvm",
    request_type=PortIo,
    decode=_decode_io,
    write=None,
    error_space=None,
    default_status=None,  # no completion: without a handler the VMM gets it back
)


def _msr_decoder(reason: KvmExitReason) -> ExitDecoder:
    """RDMSR and WRMSR share kvm_run.msr, the decoder and the completion."""
    return ExitDecoder(
        name=f"KVM_EXIT_{reason.name}",
        reason=reason,
        discriminator=None,
        vendor="kvm",
        request_type=MsrAccess,
        decode=_decode_msr,
        write=_write_msr,
        error_space=MSR_ERROR,
        status_field=_MSR_ERROR_FIELD,
    )


RDMSR = _msr_decoder(KvmExitReason.X86_RDMSR)
WRMSR = _msr_decoder(KvmExitReason.X86_WRMSR)
MEMORY_FAULT = ExitDecoder(
    name="KVM_EXIT_MEMORY_FAULT",
    reason=KvmExitReason.MEMORY_FAULT,
    discriminator=None,
    vendor="kvm",
    request_type=MemoryFault,
    decode=_decode_fault,
    write=None,
    error_space=None,
    default_status=None,  # the VMM converts the range itself, or gets the exit back
)


def map_gpa_decoder(*, ret_checked: bool) -> ExitDecoder:
    """The MAP_GPA_RANGE decoder, completed in the space of a kernel generation.

    :param ret_checked: the kernel accepts only 0, EINVAL and EAGAIN
        (:data:`~coco_core.kernels.MAP_GPA_RANGE_RET_CHECKED`).
    """
    return ExitDecoder(
        name="KVM_EXIT_HYPERCALL/KVM_HC_MAP_GPA_RANGE",
        reason=KvmExitReason.HYPERCALL,
        discriminator=HypercallNr.MAP_GPA_RANGE,
        vendor="kvm",
        request_type=MemoryConversion,
        decode=_decode_map_gpa,
        write=_write_hypercall_ret,
        error_space=MAP_GPA_RANGE_ERRNO if ret_checked else MAP_GPA_RANGE_LEGACY,
        status_field=_RET_FIELD,
    )


HYPERCALL_NR = Discriminator(
    reason=KvmExitReason.HYPERCALL,
    offset=run_offset(KvmHypercallExit, "nr"),
    fmt=KvmHypercallExit.format_of("nr"),
    field="kvm_run.hypercall.nr",
)
SYSTEM_EVENT_TYPE = Discriminator(
    reason=KvmExitReason.SYSTEM_EVENT,
    offset=run_offset(KvmSystemEventExit, "type"),
    fmt=KvmSystemEventExit.format_of("type"),
    field="kvm_run.system_event.type",
)
