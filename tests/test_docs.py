# SPDX-License-Identifier: Apache-2.0
"""Docs and tests cannot drift from the hookspecs (the datasette rule)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coco_core import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS_MD = ROOT / "docs" / "reference" / "hooks.md"
TESTS = Path(__file__).resolve().parent


def _specs() -> dict[str, Callable[..., Any]]:
    marker = f"{hookspecs.NAME}_spec"
    return {n: f for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, marker)}


def _signature(fn: Callable[..., Any]) -> str:
    return f"{fn.__name__}({', '.join(inspect.signature(fn).parameters)})"


SPECS = _specs()


def test_there_are_hookspecs() -> None:
    """The hookspecs module defines at least coco_register_vendor."""
    assert "coco_register_vendor" in SPECS


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_is_documented_with_its_signature(name: str) -> None:
    """Every hookspec has a heading in docs/reference/hooks.md that is its exact signature."""
    text = HOOKS_MD.read_text(encoding="utf-8")
    sig = _signature(SPECS[name])
    headings = re.findall(r"^#+\s+(.+?)\s*$", text, flags=re.MULTILINE)
    assert sig in headings, f"docs/reference/hooks.md lacks a heading '{sig}'"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_has_a_test(name: str) -> None:
    """Every hookspec has a test named test_hook_<name> somewhere under tests/."""
    pattern = re.compile(rf"^\s*def test_hook_{re.escape(name)}\b", flags=re.MULTILINE)
    found = [p for p in TESTS.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert found, f"no test_hook_{name} under tests/"


def test_documented_hooks_exist() -> None:
    """Every hook heading in hooks.md names a hookspec (no stale docs)."""
    text = HOOKS_MD.read_text(encoding="utf-8")
    documented = re.findall(r"^##\s+(coco_\w+)\(", text, flags=re.MULTILINE)
    assert documented
    assert set(documented) <= set(SPECS), set(documented) - set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hookspec_docstring_has_param_and_version(name: str) -> None:
    """Every hookspec's docstring documents each parameter and its version."""
    doc = inspect.getdoc(SPECS[name]) or ""
    for param in inspect.signature(SPECS[name]).parameters:
        assert f":param {param}:" in doc, f"{name}: no :param {param}:"
    assert ".. versionadded::" in doc
