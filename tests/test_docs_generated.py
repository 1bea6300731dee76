# SPDX-License-Identifier: Apache-2.0
"""The committed generated docs (ABI tables, error spaces, CLI reference) are up to date."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_coco_docs_{name}", DOCS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _stale(what: str, script: str) -> str:
    return f"{what} is stale: run `.venv/bin/python docs/{script}` and commit the result"


def test_abi_and_error_space_tables_are_current(tmp_path: Path) -> None:
    """Regenerating the ABI and error-space tables gives exactly the committed files."""
    gen = _load("gen_tables")
    gen.generate(tmp_path)
    fresh = {p.relative_to(tmp_path) for p in tmp_path.rglob("*.md")}
    committed = {p.relative_to(REFERENCE) for p in (REFERENCE / "abi").glob("*.md")}
    committed.add(Path("error-spaces.md"))
    assert fresh == committed, _stale(
        f"docs/reference file set (missing or extra: {sorted(map(str, fresh ^ committed))})",
        "gen_tables.py",
    )
    for rel in sorted(fresh):
        got = (REFERENCE / rel).read_text(encoding="utf-8")
        want = (tmp_path / rel).read_text(encoding="utf-8")
        assert got == want, _stale(f"docs/reference/{rel}", "gen_tables.py")


def test_vendor_abi_pages_exist() -> None:
    """The SNP and TDX ABI pages the style guide promises are generated."""
    for vendor in ("snp", "tdx"):
        assert (REFERENCE / "abi" / f"{vendor}.md").is_file(), _stale(
            f"docs/reference/abi/{vendor}.md", "gen_tables.py"
        )


def test_cli_reference_is_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regenerating the CLI reference from the real parsers gives the committed cli.md."""
    monkeypatch.setenv("COLUMNS", "100")
    gen = _load("gen_cli")
    want = gen.render()
    got = (REFERENCE / "cli.md").read_text(encoding="utf-8")
    assert got == want, _stale("docs/reference/cli.md", "gen_cli.py")
    assert "Could not be loaded" not in want, "a coco command group failed to load"
