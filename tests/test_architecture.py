# SPDX-License-Identifier: Apache-2.0
"""The house rules of the tree: which room may import which, module sizes, one kvm_run.

Each rule reads the source with :mod:`ast` (every ``import`` and ``from ...
import`` at any depth, so a lazy import inside a function counts too; only
imports under ``if TYPE_CHECKING:``, which never run, are left out) and
names each offending module and what it imports.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "coco_core"
PLUGIN_PACKAGES = [
    ROOT / "plugins" / "snp" / "coco_snp",
    ROOT / "plugins" / "tdx" / "coco_tdx",
    ROOT / "tests" / "example_plugin" / "coco_example",
]
PLUGIN_NAMES = ("coco_snp", "coco_tdx", "coco_example")

#: The top level of coco_core: the vendor-neutral model and the plugin contract.
TOP = "top"
#: room -> the rooms its modules may import (besides itself). "top" is coco_core's top level.
ALLOWED: dict[str, frozenset[str]] = {
    TOP: frozenset(),
    "generic": frozenset({TOP}),
    "services": frozenset({TOP, "generic"}),
    "kvm": frozenset({TOP, "generic"}),
    "model": frozenset({TOP}),
    "emulated": frozenset({TOP, "generic", "kvm", "model"}),
    "review": frozenset({TOP, "generic"}),
}
#: The runtime: the rooms a VMM's exit path loads. They never import the tooling.
RUNTIME = (TOP, "generic", "services", "kvm", "model", "emulated")
TOOLING = frozenset({"review", "cli", "demo", "testing"})
#: The façades: the plugin author's API re-exports the light parts of the rooms below it.
FACADES = {
    "coco_core.plugin": frozenset({TOP, "generic", "model", "emulated.ports"}),
}
#: What a plugin may import from the core: the embedder's and the plugin author's APIs,
#: and the public room packages for demo scenarios and the KVM enabling step.
PLUGIN_API = frozenset({"coco_core", "coco_core.plugin", "coco_core.demo", "coco_core.kvm"})
MAX_LINES = 600


def _modules(package: Path) -> Iterator[tuple[str, Path]]:
    base = package.parent
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(base).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """``(line, imported module)`` for every import that can run."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if getattr(node, "lineno", 0) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # `from coco_core import kernels` imports a module
                yield node.lineno, f"{target}.{alias.name}"


def _room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and not (CORE / parts[1]).is_dir()):
        return TOP
    return parts[1]


def _core_imports() -> Iterator[tuple[str, int, str]]:
    for module, path in _modules(CORE):
        for line, target in _imports(path, module):
            yield module, line, target


def _is_core_module(name: str) -> bool:
    return name == "coco_core" or (
        name.startswith("coco_core.")
        and (
            (CORE / Path(*name.split(".")[1:])).with_suffix(".py").is_file()
            or (CORE / Path(*name.split(".")[1:])).is_dir()
        )
    )


def test_the_core_imports_no_plugin() -> None:
    """No module of coco_core imports a vendor plugin (plugins come through the registry)."""
    bad = [
        f"{m}:{line} imports {t}"
        for m, line, t in _core_imports()
        if t.split(".")[0] in PLUGIN_NAMES
    ]
    assert not bad, "\n".join(bad)


def test_the_runtime_never_imports_the_tooling() -> None:
    """Top level, generic, services, kvm, model and emulated import no review/cli/demo/testing."""
    bad = []
    for m, line, t in _core_imports():
        if _room(m) in RUNTIME and _is_core_module(t) and _room(t) in TOOLING:
            bad.append(f"{m}:{line} imports {t}")
    assert not bad, "\n".join(bad)


def test_each_room_imports_only_the_rooms_below_it() -> None:
    """The room table of docs/explanation/design.md, checked import by import."""
    bad = []
    for m, line, t in _core_imports():
        if not _is_core_module(t):
            continue
        room, target = _room(m), _room(t)
        if room not in ALLOWED or target == room:
            continue
        if m in FACADES:
            allowed = FACADES[m]
            sub = ".".join(t.split(".")[1:3])
            if target in allowed or sub in allowed:
                continue
        elif target in ALLOWED[room]:
            continue
        bad.append(f"{m}:{line} ({room}) imports {t} ({target})")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", PLUGIN_PACKAGES, ids=lambda p: p.name)
def test_plugins_use_the_public_api_only(package: Path) -> None:
    """A plugin imports the core's façades only: no private module, no other plugin."""
    own = package.name
    bad = []
    for module, path in _modules(package):
        for line, t in _imports(path, module):
            top = t.split(".")[0]
            if top in PLUGIN_NAMES and top != own:
                bad.append(f"{module}:{line} imports another plugin: {t}")
            elif top == "coco_core" and _is_core_module(t) and not _public(t):
                bad.append(f"{module}:{line} imports {t}; use {sorted(PLUGIN_API)}")
    assert not bad, "\n".join(bad)


def _public(name: str) -> bool:
    """``name`` is a façade, or a name a façade exports (``coco_core.kvm.ioctls``)."""
    if name in PLUGIN_API:
        return True
    parent, _, attr = name.rpartition(".")
    return parent in PLUGIN_API and attr in importlib.import_module(parent).__all__


def _sources() -> Iterator[Path]:
    for package in (CORE, *PLUGIN_PACKAGES):
        yield from sorted(package.rglob("*.py"))


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_over_600_lines(path: Path) -> None:
    """Each module keeps to one concern: at most 600 lines."""
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT)} has {n} lines (at most {MAX_LINES})"


def test_kvm_run_is_declared_once() -> None:
    """Exactly one c_struct("struct kvm_run") exists, in coco_core/generic/uapi.py."""
    found = [
        str(p.relative_to(ROOT))
        for p in _sources()
        if 'c_struct("struct kvm_run",' in p.read_text(encoding="utf-8")
    ]
    assert found == ["coco_core/generic/uapi.py"]


def test_the_import_reader_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The rule reader finds an import inside a function and resolves a relative one."""
    src = tmp_path / "mod.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import hidden\n"
        "def f():\n    from coco_core.review import render\n"
        "from . import sibling\n"
    )
    found = {t for _, t in _imports(src, "coco_core.dispatch")}
    assert "coco_core.review" in found
    assert "coco_core.review.render" in found
    assert "coco_core.sibling" in found
    assert "hidden" not in found
