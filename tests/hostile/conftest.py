# SPDX-License-Identifier: Apache-2.0
"""The guest-hostility suite: a hostile guest, handler and QGS against the public API.

Every property runs with hypothesis, boundary values first (each strategy starts
from the values just inside and just outside what the kernel or the spec allows).
The oracles, per exit:

* no exception escapes :meth:`~coco_core.dispatch.Dispatcher.dispatch`;
* ``kvm_run`` changes only in the fields the kernel reads back for that exit
  (:data:`READ_BACK`, each entry naming the kernel function and tree);
* guest memory changes only inside the range the guest named;
* the value written is one the kernel model accepts (the model raises
  :class:`~coco_core.errors.KvmRunRejected` otherwise);
* nothing stays in flight, and descriptors and threads return to their baseline.

Budget: ``COCO_FUZZ_SECONDS`` (``make fuzz`` sets it) is the time the whole suite
may take; each property gets its share and runs batches of examples until it is
spent. Without it (``make test``, CI) each property runs a short fixed number of
examples.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

#: examples per property when no budget is set (make test)
CI_EXAMPLES = 100
#: examples per batch under a budget (make fuzz)
BATCH = 200

_state: dict[str, Any] = {"count": 1, "examples": 0}


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Count the budgeted properties, so each gets an equal share of the budget."""
    _state["count"] = max(1, sum(1 for i in items if "fuzz" in getattr(i, "fixturenames", ())))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how many examples the budgeted properties ran (at most that many: each stops early
    once hypothesis has nothing new to try)."""
    if _state["examples"]:
        budget = budget_seconds()
        when = "no budget (CI)" if budget is None else f"budget {budget:g} s"
        terminalreporter.write_line(f"hostile suite: up to {_state['examples']} examples, {when}")


def budget_seconds() -> float | None:
    """``COCO_FUZZ_SECONDS`` as a number, or None when unset (the short CI run)."""
    text = os.environ.get("COCO_FUZZ_SECONDS")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise pytest.UsageError(
            f"COCO_FUZZ_SECONDS={text!r} is not a number of seconds (e.g. 300)"
        ) from None
    if not value > 0:
        raise pytest.UsageError(f"COCO_FUZZ_SECONDS={text!r}: expected a positive number")
    return value


class Fuzz:
    """Runs a ``@given`` property for the CI count, or for its share of the budget."""

    def __init__(self) -> None:
        total = budget_seconds()
        self.share = None if total is None else total / _state["count"]
        self.examples = 0

    def run(self, prop: Callable[[], None], *, ci_examples: int = CI_EXAMPLES) -> None:
        """Run ``prop`` (a hypothesis test function taking no argument)."""
        quiet = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
        if self.share is None:
            settings(max_examples=ci_examples, deadline=None, suppress_health_check=quiet)(prop)()
            self.examples += ci_examples
            _state["examples"] += ci_examples
            return
        batch = settings(
            max_examples=BATCH, deadline=None, suppress_health_check=quiet, database=None
        )(prop)
        end = time.monotonic() + self.share
        while time.monotonic() < end:  # each call draws a fresh batch (no database)
            batch()
            self.examples += BATCH
            _state["examples"] += BATCH


@pytest.fixture
def fuzz() -> Fuzz:
    """The budgeted runner (see the module docstring)."""
    return Fuzz()


def open_fds() -> set[int]:
    """This process's open file descriptors (/proc/self/fd)."""
    return {int(n) for n in os.listdir("/proc/self/fd")}


@pytest.fixture
def baseline() -> Iterator[None]:
    """Fail if the test leaves file descriptors or threads behind (waits up to 5 s for both)."""
    fds = open_fds()
    threads = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        extra_fds = open_fds() - fds
        extra_threads = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
        if not extra_fds and not extra_threads:
            return
        if time.monotonic() > deadline:
            names = [t.name for t in extra_threads]
            raise AssertionError(
                f"left behind: file descriptors {sorted(extra_fds)}, threads {names}"
            )
        time.sleep(0.02)


# -- what KVM reads back from kvm_run, per exit ---------------------------------------------

_ENOSPC = 28  # asm-generic/errno-base.h


def _span(start: int, size: int) -> set[int]:
    return set(range(start, start + size))


def read_back(reason: int, nr: int, after: bytes) -> set[int]:
    """The ``kvm_run`` byte offsets KVM reads on the re-entry after this exit.

    Offsets from include/uapi/linux/kvm.h (Linux 7.2, the one ``struct kvm_run`` in
    coco_core/generic/uapi.py); what is read, from the kernel's completion functions:

    * ``KVM_EXIT_SNP_REQ_CERTS`` (43): ``snp_complete_req_certs`` (arch/x86/kvm/svm/sev.c,
      kvm-x86/linux @ 1a27afa0511e) reads ``ret``, and ``npages`` only when ``ret`` is ENOSPC;
    * ``KVM_EXIT_HYPERCALL`` (3) / ``KVM_HC_MAP_GPA_RANGE``: ``snp_complete_psc_msr`` and
      ``snp_complete_one_psc`` (sev.c @ 1a27afa0511e), ``tdx_complete_vmcall_map_gpa``
      (arch/x86/kvm/vmx/tdx.c @ 09c6f74ecb86) read ``hypercall.ret``;
    * ``KVM_EXIT_TDX`` (40): ``tdx_complete_get_td_vm_call_info`` (tdx.c @ 09c6f74ecb86)
      reads ``ret`` and ``r11``..``r14`` for GetTdVmCallInfo; ``tdx_complete_simple`` reads
      ``tdx.unknown.ret`` for GetQuote, SetupEventNotifyInterrupt and the rest;
    * ``KVM_EXIT_X86_RDMSR`` (29): ``complete_fast_rdmsr`` / ``complete_userspace_rdmsr``
      (arch/x86/kvm/x86.c @ 042007c262e5) read ``msr.error``, and ``msr.data`` when it is 0;
      ``KVM_EXIT_X86_WRMSR`` (30): ``complete_fast_msr_access`` reads ``msr.error`` only;
    * everything else coco decodes (system events, memory faults, port I/O it does not
      answer) has no completion field.
    """
    if reason == 43:
        ret = int.from_bytes(after[48:56], "little")
        return _span(48, 8) | (_span(40, 8) if ret == _ENOSPC else set())
    if reason == 3 and nr == 12:
        return _span(88, 8)
    if reason == 40:
        return _span(48, 8) | (_span(64, 32) if nr == 0x10000 else set())
    if reason == 29:
        return _span(32, 1) | (_span(48, 8) if after[32] == 0 else set())
    if reason == 30:
        return _span(32, 1)
    return set()


def changed(before: bytes, after: bytes) -> set[int]:
    """Offsets where two equally long buffers differ."""
    if before == after:
        return set()
    return {i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b}


class Watched:
    """A dispatcher wrapper that checks every exit against the oracles above.

    :param dispatcher: the real one.
    :param ram: the guest RAM buffer (guest-physical 0 is offset 0).
    :param named: ``named(run) -> (gpa, size)`` of the range the guest named for an
        exit, or None when the exit names none (no guest write is allowed then).
    """

    def __init__(self, dispatcher: Any, ram: bytearray, named: Any) -> None:
        self.dispatcher = dispatcher
        self.ram = ram
        self.named = named
        self.exits = 0
        #: every (gpa, size) a guest named so far
        self.ranges: list[tuple[int, int]] = []

    def dispatch(self, run: Any, context: Any = None) -> Any:
        """Dispatch once, then check what changed; an escaping exception fails the test."""
        before, ram_before = bytes(run), bytes(self.ram)
        try:
            result = self.dispatcher.dispatch(run, context)
        except Exception as exc:  # the first oracle
            raise AssertionError(f"dispatch() raised {exc!r}") from exc
        after = bytes(run)
        reason = int.from_bytes(before[8:12], "little")
        nr = int.from_bytes(before[32:40] if reason == 3 else before[40:48], "little")
        extra = changed(before, after) - read_back(reason, nr, after)
        assert not extra, (
            f"exit {reason}/{nr:#x} wrote kvm_run bytes KVM does not read: {sorted(extra)}"
        )
        where = self.named(before)
        if where is not None:
            self.ranges.append(where)
        # earlier exits' ranges too: an asynchronous service (GetQuote) completes into
        # buffers named before, from its own threads, at any time
        stray = {
            i
            for i in changed(ram_before, bytes(self.ram))
            if not any(g <= i < g + n for g, n in self.ranges)
        }
        assert not stray, (
            f"exit {reason}/{nr:#x} wrote guest memory outside {where}: {min(stray):#x}"
        )
        self.exits += 1
        return result


@pytest.fixture
def watched() -> Any:
    """The :class:`Watched` class (test modules cannot import a conftest)."""
    return Watched


def u64_edges(*inside: int) -> Any:
    """Boundary values first (0, 1, 2^32-1, 2^32, 2^64-1, and the given ones +-1), then any u64."""
    from hypothesis import strategies as st

    edges = {0, 1, 0xFFFFFFFF, 1 << 32, (1 << 64) - 1, 1 << 63}
    for v in inside:
        edges |= {v - 1, v, v + 1}
    values = sorted(e for e in edges if 0 <= e < 1 << 64)
    return st.one_of(st.sampled_from(values), st.integers(0, (1 << 64) - 1))


@pytest.fixture
def edges() -> Any:
    """:func:`u64_edges`."""
    return u64_edges
