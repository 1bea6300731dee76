# SPDX-License-Identifier: Apache-2.0
"""The kit's parts on their own: boundary values, the time budget, naming what a write changed."""

from __future__ import annotations

import coco_example.plugin as example
import pytest
from hypothesis import strategies as st

from coco_core.registry import Registry
from coco_core.testing.fuzz import boundary_values, run_budgeted
from coco_core.testing.writes import write_problems


def test_boundary_values_cover_widths_pages_and_gpa_bits() -> None:
    """A 4-byte field gets 0, 1, all-ones, signed and 2^16 edges, page +/- 1; nothing wider."""
    vals = boundary_values(4)
    for v in (0, 1, 2, 0xFFFF_FFFF, 0x8000_0000, 0x7FFF_FFFF, 0xFFFF, 0x10000, 0x10001):
        assert v in vals
    assert {4095, 4096, 4097, (1 << 21) - 1, (1 << 21) + 1} <= set(vals)
    assert max(vals) == 0xFFFF_FFFF
    assert {1 << 47, 1 << 51, 1 << 52, (1 << 64) - 1} <= set(boundary_values(8))
    assert boundary_values(1) == tuple(sorted(set(boundary_values(1))))


def test_run_budgeted_runs_a_batch_even_without_time_and_reports_failures() -> None:
    """A zero budget still runs one batch; a failing property raises, not passes."""
    seen: list[int] = []
    assert run_budgeted(lambda data: seen.append(data.draw(st.integers(0, 9))), 0.0) == 1
    assert len(seen) >= 10
    with pytest.raises(AssertionError):
        run_budgeted(lambda data: _fails_above(data.draw(st.integers(0, 1000), label="v")), 0.0)


def _fails_above(v: int) -> None:
    assert v < 500


def test_write_outside_the_write_set_names_byte_and_field() -> None:
    """A changed byte outside a decoder's write set is named by offset and kvm_run field."""
    abi = Registry.from_plugins([example]).abi("example-1")
    before = bytearray(2352)
    after = bytearray(before)
    after[0x28] = 0xFF  # example_attest.len
    after[0x2C] = 0x01  # example_attest.ret: in the write set
    (problem,) = write_problems(abi, example.ATTEST, bytes(before), bytes(after), "answering OK")
    assert "wrote byte 0x0028 (kvm_run.example_attest.len: 00 -> ff)" in problem
    assert "it may write kvm_run.example_attest.ret (0x2c..0x30)" in problem
