# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures of the core tests: throw-away plugin modules."""

from __future__ import annotations

import types
from collections.abc import Callable

import pytest

from coco_core.hookspecs import hookimpl
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
