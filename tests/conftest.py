# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures of the core tests: throw-away plugin modules, and real KVM.

Tests marked ``requires_kvm`` (or using the ``kvm`` fixture) are skipped, with
the reason from :func:`coco_core.kvm.probe.usable`, where ``/dev/kvm`` is missing
or cannot run a tiny guest to a port I/O exit. On the development and CI hosts
they run.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterator

import pytest

from coco_core.errors import CoCoError
from coco_core.hookspecs import hookimpl
from coco_core.kvm.probe import usable
from coco_core.kvm.runloop import install_kick_handler
from coco_core.kvm.system import Kvm
from coco_core.registry import Registrar

RegisterFn = Callable[[Registrar], None]
PluginFactory = Callable[[str, RegisterFn], types.ModuleType]


def _make_plugin(name: str, register: RegisterFn) -> types.ModuleType:
    """A plugin module ``coco_<name>.plugin`` whose hook calls ``register``."""
    module = types.ModuleType(f"coco_{name}.plugin")

    @hookimpl
    def coco_register_vendor(registrar: Registrar) -> None:
        register(registrar)

    module.coco_register_vendor = coco_register_vendor  # type: ignore[attr-defined]
    return module


@pytest.fixture
def make_plugin() -> PluginFactory:
    """Build a throw-away plugin module: ``make_plugin("acme", register_fn)``."""
    return _make_plugin


@functools.cache
def kvm_status() -> tuple[bool, str]:
    """Whether /dev/kvm is usable here, and why (computed once per session)."""
    try:
        with Kvm.open() as kvm:
            install_kick_handler()
            return usable(kvm, deadline=5.0)
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
