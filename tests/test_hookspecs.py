# SPDX-License-Identifier: Apache-2.0
"""The hookspecs: the one hook, how it is called, and what it may do."""

from __future__ import annotations

from typing import Any

import coco_example.plugin as example
import pluggy

from coco_core import hookspecs
from coco_core.registry import Registrar, Registry


def test_hook_coco_register_vendor(make_plugin: Any) -> None:
    """coco_register_vendor is called once per plugin with a registrar named after the plugin."""
    calls: list[str] = []

    def register(r: Registrar) -> None:
        calls.append(r.plugin)
        r.add_vendor(f"v_{r.plugin}", "test")

    reg = Registry.from_plugins([make_plugin("one", register), make_plugin("two", register)])
    assert sorted(calls) == ["one", "two"]
    assert reg.vendors["v_one"].plugin == "one"
    assert reg.vendors["v_two"].plugin == "two"


def test_implementation_may_take_fewer_parameters(make_plugin: Any) -> None:
    """An implementation that takes no parameter is still valid and called (pluggy's rule)."""
    import types

    called: list[bool] = []
    module = types.ModuleType("coco_lazy.plugin")

    @hookspecs.hookimpl
    def coco_register_vendor() -> None:
        called.append(True)

    module.coco_register_vendor = coco_register_vendor  # type: ignore[attr-defined]
    Registry.from_plugins([module])
    assert called == [True]


def test_hook_is_not_firstresult() -> None:
    """Every implementation runs: the spec is neither firstresult nor historic."""
    opts = hookspecs.coco_register_vendor.coco_core_spec  # type: ignore[attr-defined]
    assert not opts.get("firstresult")
    assert not opts.get("historic")


def test_name_is_the_entry_point_group() -> None:
    """The pluggy project name and the entry-point group are one string."""
    assert hookspecs.NAME == "coco_core"
    assert isinstance(hookspecs.hookimpl, pluggy.HookimplMarker)
    assert hasattr(example.coco_register_vendor, "coco_core_impl")
