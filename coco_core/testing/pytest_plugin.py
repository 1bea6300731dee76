# SPDX-License-Identifier: Apache-2.0
"""Fixtures for testing coco plugins; opt in with ``pytest_plugins``.

In a plugin's ``conftest.py`` (or a test module)::

    pytest_plugins = ["coco_core.testing.pytest_plugin"]

It is deliberately not a ``pytest11`` entry point: installing coco must not
load anything into every pytest run on the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from coco_core.generic.uapi import KVM_RUN_SIZE
from coco_core.registry import Registry
from coco_core.testing.golden import Golden
from coco_core.testing.kit import registry_for

__all__ = ["coco_registry", "golden", "kvm_run_buffer"]


@pytest.fixture
def coco_registry(request: pytest.FixtureRequest) -> Registry:
    """The registry under test: the test class's ``plugin`` alone, else every installed plugin."""
    plugin = getattr(request.cls, "plugin", None) if request.cls is not None else None
    if isinstance(plugin, ModuleType):
        return registry_for(plugin)
    return Registry.from_entry_points()


@pytest.fixture
def kvm_run_buffer() -> bytearray:
    """A zeroed ``kvm_run`` buffer of ``KVM_RUN_SIZE`` (2352) bytes."""
    return bytearray(KVM_RUN_SIZE)


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[..., Golden]:
    """Load ``golden(NAME, directory="golden")`` from next to the requesting test module."""
    base = Path(request.path).parent

    def load(name: str, directory: str = "golden") -> Golden:
        return Golden.load(base / directory / f"{name}.json")

    return load
