# SPDX-License-Identifier: Apache-2.0
"""The core's own plugin: the vendor-neutral exits of every released kernel.

Registered like any plugin (built-ins are plugins too): the generic exits
(``KVM_EXIT_IO``, the MSR exits, ``KVM_EXIT_MEMORY_FAULT``,
``KVM_EXIT_HYPERCALL`` with ``KVM_HC_MAP_GPA_RANGE``), their error spaces, and
the exit numbers of each released kernel. Vendor plugins add their own exits
to the same ABIs.
"""

from __future__ import annotations

import struct

from coco_core.abi import AbiPart, CompletionDuty, Discriminator, ExitDecoder, StatusField
from coco_core.generic.kvmerrno import MAP_GPA_RANGE_ERRNO, MAP_GPA_RANGE_LEGACY, MSR_ERROR
from coco_core.generic.uapi import (
    EXIT_UNION_OFFSET,
    HypercallNr,
    KvmExitReason,
    KvmIoExit,
    KvmMemoryFaultExit,
    MapGpaRangeAttr,
    MemoryExitFlag,
    generic_union_members,
)
from coco_core.hookspecs import hookimpl
from coco_core.registry import Registrar
from coco_core.requests import MemoryConversion, MemoryFault, MsrAccess, NeutralRequest, PortIo
from coco_core.status import Outcome

__all__ = ["coco_register_vendor", "released_exits"]

_U = EXIT_UNION_OFFSET
_io = KvmIoExit._c_struct.unpack_from
_fault = KvmMemoryFaultExit._c_struct.unpack_from
_RET = _U + 0x38  # kvm_run.hypercall.ret
_MSR_ERROR = _U + 0x00  # kvm_run.msr.error
_MSR_DATA = _U + 0x10  # kvm_run.msr.data
#: where a plain status lands (the writers below write only these for a CoCoStatus)
_RET_FIELD = StatusField(_RET, "<Q", "kvm_run.hypercall.ret")
_MSR_ERROR_FIELD = StatusField(_MSR_ERROR, "<B", "kvm_run.msr.error")

# Indexed by args[2] & 3 (KVM_MAP_GPA_RANGE_PAGE_SZ_4K 0, _2M 1, _1G 2, kvm_para.h);
# 3 is undefined and kept at 4 KiB so the page count alone bounds the range.
_PAGE_SIZES = (1 << 12, 1 << 21, 1 << 30, 1 << 12)
_ENCRYPTED = int(MapGpaRangeAttr.ENCRYPTED)  # plain int: IntFlag arithmetic is slow


#: Port I/O exits repeat: the same port, size, count and data offset, exit after
#: exit (the emulated TEE's doorbells, a serial port). Building a frozen request
#: is the largest cost of such an exit, so the decoder hands out the value it
#: built for the same five fields before. Bounded: a guest that varies them
#: only makes the table start over, it cannot grow it.
IO_REQUESTS_KEPT = 256
_io_requests: dict[tuple[int, int, int, int, int], PortIo] = {}
_io_request = _io_requests.get


def _decode_io(run: memoryview) -> NeutralRequest:
    fields = _io(run, _U)
    request = _io_request(fields)
    if request is None:
        direction, size, port, count, data_offset = fields
        request = PortIo(port, direction == 1, size, count, data_offset)  # KVM_EXIT_IO_OUT 1
        if len(_io_requests) >= IO_REQUESTS_KEPT:
            _io_requests.clear()
        _io_requests[fields] = request
    return request


# exit_reason (at 8) and kvm_run.msr (at 32) in one unpack: reason, error, why, index, data
_MSR_WITH_REASON = struct.Struct("<I20xB7xIIQ")
_msr_with_reason = _MSR_WITH_REASON.unpack_from
_WRMSR = int(KvmExitReason.X86_WRMSR)


def _decode_msr(run: memoryview) -> NeutralRequest:
    reason, _err, why, index, data = _msr_with_reason(run, 8)
    return MsrAccess(index, reason == _WRMSR, data, why)


def _write_msr(run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None) -> None:
    run[_MSR_ERROR] = raw
    if outcome is not None and outcome.value is not None and raw == 0:
        run[_MSR_DATA : _MSR_DATA + 8] = (outcome.value & (2**64 - 1)).to_bytes(8, "little")


_PRIVATE = int(MemoryExitFlag.PRIVATE)


def _decode_fault(run: memoryview) -> NeutralRequest:
    flags, gpa, size = _fault(run, _U)
    return MemoryFault(gpa, size, (flags & _PRIVATE) != 0)


# kvm_run.hypercall.args[0..2] only (nr at +0 is the discriminator, read already)
_map_gpa_args = struct.Struct("<8xQQQ").unpack_from
_put_u64 = struct.Struct("<Q").pack_into


def _decode_map_gpa(run: memoryview) -> NeutralRequest:
    a0, a1, a2 = _map_gpa_args(run, _U)
    # args[2] bits 1:0 page size, bit 4 ENCRYPTED (kvm_para.h); other bits stay
    # in the raw exit, not in the request.
    return MemoryConversion(a0, a1, (a2 & _ENCRYPTED) != 0, _PAGE_SIZES[a2 & 3])


def _write_hypercall_ret(
    run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None
) -> None:
    _put_u64(run, _RET, raw)


IO = ExitDecoder("KVM_EXIT_IO", KvmExitReason.IO, None, "kvm", PortIo, _decode_io, None, None, None)


def _msr_decoder(reason: KvmExitReason) -> ExitDecoder:
    """RDMSR and WRMSR share kvm_run.msr, the decoder and the completion."""
    return ExitDecoder(
        f"KVM_EXIT_{reason.name}",
        reason,
        None,
        "kvm",
        MsrAccess,
        _decode_msr,
        _write_msr,
        MSR_ERROR,
        None,
        status_field=_MSR_ERROR_FIELD,
    )


RDMSR = _msr_decoder(KvmExitReason.X86_RDMSR)
WRMSR = _msr_decoder(KvmExitReason.X86_WRMSR)
MEMORY_FAULT = ExitDecoder(
    "KVM_EXIT_MEMORY_FAULT",
    KvmExitReason.MEMORY_FAULT,
    None,
    "kvm",
    MemoryFault,
    _decode_fault,
    None,
    None,
    None,
)


def map_gpa_decoder(legacy: bool) -> ExitDecoder:
    """The MAP_GPA_RANGE decoder with the completion space of a kernel generation."""
    return ExitDecoder(
        "KVM_EXIT_HYPERCALL/KVM_HC_MAP_GPA_RANGE",
        KvmExitReason.HYPERCALL,
        HypercallNr.MAP_GPA_RANGE,
        "kvm",
        MemoryConversion,
        _decode_map_gpa,
        _write_hypercall_ret,
        MAP_GPA_RANGE_LEGACY if legacy else MAP_GPA_RANGE_ERRNO,
        status_field=_RET_FIELD,
    )


HYPERCALL_NR = Discriminator(KvmExitReason.HYPERCALL, _U + 0x00, "<Q", "kvm_run.hypercall.nr")
SYSTEM_EVENT_TYPE = Discriminator(
    KvmExitReason.SYSTEM_EVENT, _U + 0x00, "<I", "kvm_run.system_event.type"
)

#: Released kernels, oldest first, with the highest exit number each defines.
#: 6.16: KVM_EXIT_TDX 40 (ColinIanKing/linux-next uapi @022880fb). 7.0 adds
#: ARM_SEA 41, ARM_LDST64B 42 and SNP_REQ_CERTS 43 (43 presupposes 41/42;
#: reference/kernel-abi.md §1.2); 7.2 confirmed against linux-libc-dev 7.2.13.
_RELEASES = {
    "linux-6.16": (KvmExitReason.TDX, "Linux 6.16 (2025-07), include/uapi/linux/kvm.h"),
    "linux-7.0": (KvmExitReason.SNP_REQ_CERTS, "Linux 7.0 (2026-04), include/uapi/linux/kvm.h"),
    "linux-7.1": (KvmExitReason.SNP_REQ_CERTS, "Linux 7.1 (2026-06), include/uapi/linux/kvm.h"),
    "linux-7.2": (
        KvmExitReason.SNP_REQ_CERTS,
        "Linux 7.2 (2026-08), include/uapi/linux/kvm.h (linux-libc-dev 7.2.13)",
    ),
}

#: Exit numbers no x86 kernel header defines although the enum has a name:
#: KVM_EXIT_DCR 15 is kept in the header, "deprecated".
_ORDER = {
    "linux-6.16": "2025-07",
    "linux-7.0": "2026-04",
    "linux-7.1": "2026-06",
    "linux-7.2": "2026-08",
}


def released_exits(abi: str) -> dict[str, int]:
    """``KVM_EXIT_*`` name → number for a released kernel ABI."""
    top, _ = _RELEASES[abi]
    return {f"KVM_EXIT_{r.name}": int(r) for r in KvmExitReason if r <= top}


def _duties(legacy: bool) -> tuple[CompletionDuty, ...]:
    map_gpa = CompletionDuty(
        "KVM_EXIT_HYPERCALL/KVM_HC_MAP_GPA_RANGE",
        "kvm_run.hypercall.ret",
        "TDX: 0 advances (R10=SUCCESS when done, RETRY with R11=next GPA if events are "
        "pending), error sets R10 and R11=next GPA; SNP: 0 marks PSC entries done, error "
        "gives VMGEXIT_PSC_ERROR_GENERIC"
        + ("" if legacy else "; EAGAIN gives TDVMCALL RETRY on TDX"),
        "any non-zero value is an error"
        if legacy
        else "KVM_RUN fails with EINVAL for anything but 0, EINVAL, EAGAIN",
    )
    msr = CompletionDuty(
        "KVM_EXIT_X86_RDMSR/WRMSR",
        "kvm_run.msr.error, kvm_run.msr.data",
        "error=1 injects #GP; RDMSR data goes to EDX:EAX",
    )
    fault = CompletionDuty(
        "KVM_EXIT_MEMORY_FAULT",
        "(none)",
        "KVM_RUN returned -1 with EFAULT/EHWPOISON; userspace converts the range "
        "(KVM_SET_MEMORY_ATTRIBUTES) and re-runs",
    )
    return (map_gpa, msr, fault)


@hookimpl
def coco_register_vendor(registrar: Registrar) -> None:
    """Register the generic exits for every released kernel."""
    for abi, (_, source) in _RELEASES.items():
        legacy = abi != "linux-7.2"
        space = MAP_GPA_RANGE_LEGACY if legacy else MAP_GPA_RANGE_ERRNO
        registrar.add_abi(
            AbiPart(
                abi=abi,
                vendor="kvm",
                source=source,
                released=True,
                exits=released_exits(abi),
                union_members=generic_union_members(),
                error_spaces=(space, MSR_ERROR),
                duties=_duties(legacy),
                decoders=(IO, RDMSR, WRMSR, MEMORY_FAULT, map_gpa_decoder(legacy)),
                discriminators=(HYPERCALL_NR, SYSTEM_EVENT_TYPE),
                order=_ORDER[abi],
            )
        )
