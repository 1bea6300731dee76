# SPDX-License-Identifier: Apache-2.0
"""The generic exits under hostile input: only the fields KVM reads are written."""

from __future__ import annotations

import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from coco_core.dispatch import Dispatcher
from coco_core.generic.kvmerrno import Errno
from coco_core.generic.uapi import KVM_RUN_SIZE
from coco_core.registry import Registry
from coco_core.requests import MemoryConversion, MsrAccess
from coco_core.services.memattr import MemoryAttributeTracker
from coco_core.status import CoCoStatus, Outcome
from coco_snp import plugin as snp

REG = Registry.from_plugins([snp])
RAM = 1 << 30


def _msr(reason: int, data: int) -> bytearray:
    run = bytearray(b"\xa5" * KVM_RUN_SIZE)
    run[8:12] = struct.pack("<I", reason)
    run[32:56] = struct.pack("<B7xIIQ", 0, 1, 0xC0010131, data)  # msr.error/reason/index/data
    return run


@pytest.mark.parametrize(("reason", "data_written"), [(29, True), (30, False)])
def test_msr_data_is_written_only_for_a_successful_rdmsr(reason: int, data_written: bool) -> None:
    """RDMSR OK writes msr.data; WRMSR writes msr.error only (complete_fast_msr_access)."""
    d = Dispatcher(REG, "snp")
    d.on(MsrAccess, lambda r, c: Outcome(CoCoStatus.OK, value=0x1122334455667788))
    run = _msr(reason, 0xDEAD)
    before = bytes(run)
    d.dispatch(run)
    changed = {i for i in range(KVM_RUN_SIZE) if run[i] != before[i]}
    assert run[32] == 0
    data = struct.unpack_from("<Q", run, 48)[0]
    assert data == (0x1122334455667788 if data_written else 0xDEAD)
    assert changed <= set(range(32, 33)) | (set(range(48, 56)) if data_written else set())


def test_failed_rdmsr_leaves_msr_data() -> None:
    """A RDMSR answered with #GP does not write msr.data (KVM reads it only when error is 0)."""
    d = Dispatcher(REG, "snp")
    d.on(MsrAccess, lambda r, c: Outcome(CoCoStatus.ERROR, value=7))
    run = _msr(29, 0xDEAD)
    d.dispatch(run)
    assert (run[32], struct.unpack_from("<Q", run, 48)[0]) == (1, 0xDEAD)


def _map_gpa(attrs: int) -> bytearray:
    run = bytearray(KVM_RUN_SIZE)
    run[8:12] = struct.pack("<I", 3)  # KVM_EXIT_HYPERCALL
    struct.pack_into("<QQQQ", run, 32, 12, 0x200000, 1, attrs)  # nr MAP_GPA_RANGE, args[0..2]
    return run


@given(st.integers(0, (1 << 64) - 1))
@example(1 << 5)  # the lowest reserved bit
@example(1 << 63)  # the highest
@example(0x10 | 0x2)  # ENCRYPTED | PAGE_SZ_1G: just inside
@example(0x3)  # page-size encoding 3: undefined
@example(0xF)  # encoding 15: the top of the 4-bit field
def test_map_gpa_range_attributes_outside_the_spec_are_einval(attrs: int) -> None:
    """Reserved bits 63:5 or a page size other than 0..2 give EINVAL and convert nothing."""
    tracker = MemoryAttributeTracker(lambda gpa, size: gpa >= 0 and gpa + size <= RAM)
    d = Dispatcher(REG, "snp")
    d.on(MemoryConversion, tracker.on_conversion)
    run = _map_gpa(attrs)
    d.dispatch(run)
    valid = attrs < 0x20 and attrs & 0xF in (0, 1, 2)
    ret = struct.unpack_from("<Q", run, 88)[0]
    assert ret == (0 if valid else Errno.EINVAL)
    assert tracker.ranges() == ([(0x200000, 0x201000, bool(attrs & 0x10))] if valid else [])
