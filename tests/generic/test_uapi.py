# SPDX-License-Identifier: Apache-2.0
"""kvm_run constants and the generic exit structs, against include/uapi/linux/kvm.h."""

from __future__ import annotations

from coco_core.generic.uapi import (
    EXIT_REASON,
    EXIT_UNION_OFFSET,
    EXIT_UNION_SIZE,
    KVM_RUN_SIZE,
    HypercallNr,
    KvmExitReason,
    KvmHypercallExit,
    KvmIoExit,
    KvmMemoryFaultExit,
    KvmMsrExit,
    KvmRun,
    KvmSystemEventExit,
    MapGpaRangeAttr,
    SystemEventType,
    generic_union_members,
    kvm_run_layout,
)


def test_kvm_run_constants() -> None:
    """exit_reason sits at 8, the union at 32..288, and sizeof(kvm_run) is 2352."""
    assert (EXIT_REASON, EXIT_UNION_OFFSET, EXIT_UNION_SIZE, KVM_RUN_SIZE) == (8, 32, 256, 2352)
    assert KvmRun.offset_of("apic_base") + KvmRun.size_of("apic_base") == EXIT_UNION_OFFSET
    assert KvmRun.c_size() == KVM_RUN_SIZE


def test_exit_reason_numbers() -> None:
    """The CoCo-relevant exit numbers are the header's (docs/reference/kernel-abi.md §1.2)."""
    assert KvmExitReason.HYPERCALL == 3
    assert KvmExitReason.SYSTEM_EVENT == 24
    assert KvmExitReason.MEMORY_FAULT == 39
    assert KvmExitReason.TDX == 40
    assert KvmExitReason.SNP_REQ_CERTS == 43
    assert 44 not in {int(r) for r in KvmExitReason}  # unallocated in mainline
    assert [int(r) for r in KvmExitReason] == list(range(44))


def test_hypercall_and_system_event_numbers() -> None:
    """KVM_HC_MAP_GPA_RANGE is 12; SEV_TERM 6 and TDX_FATAL 7; MapGPA attributes as kvm_para.h."""
    assert HypercallNr.MAP_GPA_RANGE == 12
    assert (SystemEventType.SEV_TERM, SystemEventType.TDX_FATAL) == (6, 7)
    assert MapGpaRangeAttr.ENCRYPTED == 0x10
    assert (MapGpaRangeAttr.PAGE_SZ_2M, MapGpaRangeAttr.PAGE_SZ_1G) == (1, 2)


def test_generic_struct_sizes() -> None:
    """The generic exit structs have the header's sizes."""
    assert KvmIoExit.c_size() == 16
    assert KvmHypercallExit.c_size() == 72
    assert KvmSystemEventExit.c_size() == 136
    assert KvmMemoryFaultExit.c_size() == 24
    assert KvmMsrExit.c_size() == 24


def test_hypercall_decodes_from_a_dump() -> None:
    """A MAP_GPA_RANGE hypercall image decodes field by field."""
    #   0x20: 0c 00 00 00 00 00 00 00   nr = KVM_HC_MAP_GPA_RANGE
    #   0x28: 00 00 10 00 00 00 00 00   args[0] = gpa 0x100000
    #   0x30: 02 00 00 00 00 00 00 00   args[1] = npages 2
    #   0x38: 10 00 00 00 00 00 00 00   args[2] = ENCRYPTED | PAGE_SZ_4K
    union = bytes.fromhex(
        "0c 00 00 00 00 00 00 00"
        "00 00 10 00 00 00 00 00"
        "02 00 00 00 00 00 00 00"
        "10 00 00 00 00 00 00 00"
    ) + bytes(72 - 32)
    hc = KvmHypercallExit.from_buffer(union)
    assert hc.nr == HypercallNr.MAP_GPA_RANGE
    assert hc.args[:3] == (0x100000, 2, MapGpaRangeAttr.ENCRYPTED)
    assert hc.ret == 0


def test_generic_members_fit_the_union() -> None:
    """Every generic union member fits in the 256-byte union."""
    for name, lay in generic_union_members().items():
        assert lay.size <= EXIT_UNION_SIZE, name
        assert lay.anonymous, name


def test_kvm_run_layout_top_level() -> None:
    """kvm_run's top-level members are at the header's offsets."""
    offs = kvm_run_layout().offsets("kvm_run")
    assert offs["kvm_run.immediate_exit"] == (1, 1)
    assert offs["kvm_run.exit_reason"] == (8, 4)
    assert offs["kvm_run.cr8"] == (16, 8)
    assert offs["kvm_run.apic_base"] == (24, 8)
