# SPDX-License-Identifier: Apache-2.0
"""Boundary values for every decoded field, and random runs within a time budget.

Uniform random bytes almost never put an all-ones ``__u64`` in a field, so the
kit tries the values where decoders break first, field by field
(:func:`boundary_values`): 0, 1, 2, all-ones, the signed boundaries, 2^k and
2^k +/- 1 for every narrower width, page-size multiples and their
off-by-ones (4 KiB, 2 MiB, 1 GiB), and high GPA bits (the TDX shared bits 47
and 51, bit 52 just past a 52-bit MAXPHYADDR, the last page). Then
:func:`run_budgeted` runs a hypothesis property in seeded batches until the
time budget is spent; a failure shrinks to the labelled draws (the field and
the value).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

__all__ = ["BATCH", "boundary_values", "run_budgeted"]

#: examples per hypothesis batch of :func:`run_budgeted`
BATCH = 60

_PAGE_SIZES = (1 << 12, 1 << 21, 1 << 30)  # x86 and RISC-V Sv39/48 page sizes: 4 KiB, 2 MiB, 1 GiB
_GPA_BITS = (47, 48, 51, 52, 56, 63)  # TDX GPA.SHARED for GPAW 48/52, MAXPHYADDR 52, top bits


def boundary_values(size: int) -> tuple[int, ...]:
    """The boundary values of an unsigned field of ``size`` bytes, sorted, each once.

    .. versionadded:: 0.2
    """
    width = size * 8
    top = (1 << width) - 1
    half = 1 << (width - 1)
    vals = {0, 1, 2, top, top - 1, half, half - 1, half + 1}
    for k in (8, 16, 32, 64):
        if k < width:
            vals |= {(1 << k) - 1, 1 << k, (1 << k) + 1}
    for page in _PAGE_SIZES:
        vals |= {page - 1, page, page + 1, 2 * page, top - page + 1, top & ~(page - 1)}
    for bit in _GPA_BITS:
        vals |= {1 << bit, (1 << bit) | (1 << 12), (1 << bit) - (1 << 12)}
    return tuple(sorted(v for v in vals if 0 <= v <= top))


def run_budgeted(
    check: Callable[[st.DataObject], None], seconds: float, *, batch: int = BATCH
) -> int:
    """Run ``check(data)`` under hypothesis in seeded batches until ``seconds`` have passed.

    At least one batch always runs, so a budget of 0 still checks ``batch``
    examples. A failing batch raises as hypothesis does, shrunk, with its seed
    in the report. Returns the number of batches run.

    .. versionadded:: 0.2
    """

    runs = 0
    deadline = time.monotonic() + seconds
    while True:

        @seed(runs)
        @settings(
            max_examples=batch,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(data=st.data())
        def one_batch(data: st.DataObject) -> None:
            check(data)

        one_batch()
        runs += 1
        if time.monotonic() >= deadline:
            return runs
