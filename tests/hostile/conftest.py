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
CI_EXAMPLES = 60
#: examples per batch under a budget (make fuzz)
BATCH = 200

_state: dict[str, Any] = {"count": 1}


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Count the budgeted properties, so each gets an equal share of the budget."""
    _state["count"] = max(1, sum(1 for i in items if "fuzz" in getattr(i, "fixturenames", ())))


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
            return
        end = time.monotonic() + self.share
        while time.monotonic() < end:
            settings(max_examples=BATCH, deadline=None, suppress_health_check=quiet, database=None)(
                prop
            )()
            self.examples += BATCH


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
