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


def _leaf_commands(gen: ModuleType) -> set[str]:
    """The prog of every command that has no subcommands (what users run)."""
    from coco_core.cli.main import build_parser

    leaves: set[str] = set()

    def walk(parser: object) -> None:
        subs = gen._subparsers(parser)
        if not subs:
            leaves.add(parser.prog)  # type: ignore[attr-defined]
        for _, sub in subs:
            walk(sub)

    top = build_parser([])
    for name, _ in gen._subparsers(top):
        walk(dict(gen._subparsers(build_parser([name])))[name])
    return leaves


def test_every_command_has_an_example_and_its_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command users run has an entry in EXAMPLES, and cli.md shows it with exit codes."""
    monkeypatch.setenv("COLUMNS", "100")
    gen = _load("gen_cli")
    assert set(gen.EXAMPLES) == _leaf_commands(gen)
    text = (REFERENCE / "cli.md").read_text(encoding="utf-8")
    for prog, ex in gen.EXAMPLES.items():
        section = text.split(f"`{prog}`\n", 1)[1].split("\n#", 1)[0]
        assert "Exit status:" in section, prog
        assert (ex.line in section) if ex.line else ("None here: " in section and ex.why), prog


def test_cli_examples_run_as_written(tmp_path: Path) -> None:
    """Every example of cli.md, run in order from a folder holding testdata/, exits 0."""
    import os
    import subprocess

    gen = _load("gen_cli")
    (tmp_path / "testdata").symlink_to(ROOT / "testdata")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for prog, ex in gen.EXAMPLES.items():
        if not ex.line:
            continue
        done = subprocess.run(
            ["sh", "-c", ex.line],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{prog}: {ex.line}\n{done.stdout[-500:]}{done.stderr[-500:]}"
