# SPDX-License-Identifier: Apache-2.0
"""A buffer too short for struct kvm_run (or a struct) is a DecodeError naming it and the sizes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

import coco_tdx.plugin
from coco_core.dispatch import Dispatcher
from coco_core.errors import DecodeError
from coco_core.generic.uapi import EXIT_REASON, KVM_RUN_SIZE, KvmExitReason, KvmRun
from coco_core.registry import Registry

REGISTRY = Registry.from_plugins([coco_tdx.plugin])
DISPATCHER = Dispatcher(REGISTRY, "tdx")


def _run(size: int, reason: int = KvmExitReason.TDX) -> bytearray:
    buf = bytearray(size)
    if size >= EXIT_REASON + 4:
        struct.pack_into("<I", buf, EXIT_REASON, reason)
    return buf


@given(st.sampled_from([0, 1, EXIT_REASON + 3, EXIT_REASON + 4, 40, 47]))
def test_dispatch_of_a_short_run_is_a_decode_error(size: int) -> None:
    """dispatch() of a buffer too short for what the exit reads names run and both sizes."""
    with pytest.raises(DecodeError) as info:
        DISPATCHER.dispatch(_run(size))
    assert str(info.value) == (
        f"run: a buffer of {size} bytes; struct kvm_run is {KVM_RUN_SIZE} bytes "
        "(pass the vCPU's whole kvm_run mapping)"
    )


@pytest.mark.parametrize("size", [0, EXIT_REASON + 4, KVM_RUN_SIZE - 1])
def test_decode_of_a_short_run_is_a_decode_error(size: int) -> None:
    """decode() refuses any buffer shorter than struct kvm_run, naming run and both sizes."""
    with pytest.raises(DecodeError, match=rf"^run: a buffer of {size} bytes; struct kvm_run is"):
        DISPATCHER.decode(_run(size))


def test_a_whole_run_decodes() -> None:
    """Just long enough: a buffer of exactly sizeof(struct kvm_run) decodes and dispatches."""
    assert DISPATCHER.decode(_run(KVM_RUN_SIZE)).exit_reason == KvmExitReason.TDX
    DISPATCHER.dispatch(_run(KVM_RUN_SIZE))


@pytest.mark.parametrize(("size", "offset"), [(0, 0), (KVM_RUN_SIZE - 1, 0), (KVM_RUN_SIZE, 1)])
def test_from_buffer_of_a_short_buffer_is_a_decode_error(size: int, offset: int) -> None:
    """CStruct.from_buffer names the class, the buffer's size, the struct's and the offset."""
    with pytest.raises(DecodeError) as info:
        KvmRun.from_buffer(bytearray(size), offset)
    assert str(info.value) == (
        f"KvmRun.from_buffer: buf has {size} bytes; struct kvm_run needs {KVM_RUN_SIZE} "
        f"from offset {offset}"
    )


def test_from_buffer_just_long_enough_decodes() -> None:
    """A buffer of exactly offset + sizeof decodes."""
    assert KvmRun.from_buffer(bytearray(KVM_RUN_SIZE + 1), 1).exit_reason == 0
