# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the real-KVM tests: decide once whether /dev/kvm can run a guest.

Tests marked ``requires_kvm`` (or using the ``kvm`` fixture) are skipped, with
the reason from :meth:`Kvm.usable`, where ``/dev/kvm`` is missing or cannot run
a tiny guest to a port I/O exit. On the development and CI hosts they run.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from coco_core.errors import CoCoError
from coco_core.kvm.runloop import install_kick_handler
from coco_core.kvm.system import Kvm


@functools.cache
def kvm_status() -> tuple[bool, str]:
    """Whether /dev/kvm is usable here, and why (computed once per session)."""
    try:
        with Kvm.open() as kvm:
            install_kick_handler()
            return kvm.usable(deadline=5.0)
    except CoCoError as exc:
        return False, str(exc)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``requires_kvm`` marker."""
    config.addinivalue_line(
        "markers", "requires_kvm: needs a /dev/kvm that can run a guest (skipped otherwise)"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip ``requires_kvm`` tests with the probe's reason when KVM is unusable."""
    if item.get_closest_marker("requires_kvm") is not None:
        ok, reason = kvm_status()
        if not ok:
            pytest.skip(f"real KVM unusable: {reason}")


@pytest.fixture(scope="session")
def kvm() -> Iterator[Kvm]:
    """An open, usable /dev/kvm (skips the test otherwise)."""
    ok, reason = kvm_status()
    if not ok:
        pytest.skip(f"real KVM unusable: {reason}")
    with Kvm.open() as handle:
        yield handle
