# SPDX-License-Identifier: Apache-2.0
"""Every link and every cited doc path in the docs, the READMEs, the code and the CLI exists.

At least as strict as the check the repository's stop hook runs: that one reads
Markdown links and backquoted ``reference/*.md`` citations in ``README.md`` and
``docs/``; this one also reads plain-text citations (``reference/kernel-abi.md §3.2``,
``docs/how-to/x.md``), the plugins' READMEs and data provenance, every docstring and
comment of the code and the tests, and what ``coco abi show`` prints for each ABI.
A cited path resolves against the citing file's folder, ``docs/`` or the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coco_core.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
_SKIP = ("_build", "generated")
MARKDOWN = sorted(
    [
        ROOT / "README.md",
        *ROOT.glob("plugins/*/README.md"),
        *ROOT.glob("plugins/*/coco_*/data/SOURCES.md"),
        *(p for p in DOCS.rglob("*.md") if not set(p.relative_to(DOCS).parts) & set(_SKIP)),
    ]
)
CODE = sorted(
    p
    for folder in ("coco_core", "plugins", "tests", "docs", "bench")
    for p in (ROOT / folder).rglob("*.py")
    if not set(p.relative_to(ROOT).parts) & set(_SKIP) and p != Path(__file__).resolve()
)
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_CITED = re.compile(
    r"(?<![\w/.-])((?:\.\./)*(?:docs/)?(?:reference|how-to|tutorial|explanation)/[\w./-]+\.md)"
)


def _resolves(cited: str, where: Path) -> bool:
    path = cited.split("#", maxsplit=1)[0]
    return any((base / path).exists() for base in (where.parent, DOCS, ROOT))


def _citations(text: str) -> set[str]:
    return set(_CITED.findall(text))


def test_the_checker_finds_what_it_should() -> None:
    """The citation pattern finds backquoted, plain and docs/-prefixed paths, not URLs."""
    text = (
        "see `reference/kernel-abi.md` §3, reference/wire-formats.md §1.5, "
        "docs/how-to/connect-to-a-qgs.md, ../reference/peers.md and "
        "https://example.org/reference/x.md"
    )
    assert _citations(text) == {
        "reference/kernel-abi.md",
        "reference/wire-formats.md",
        "docs/how-to/connect-to-a-qgs.md",
        "../reference/peers.md",
    }
    assert not _resolves("reference/nothing-here.md", DOCS / "index.md")


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_links_exist(page: Path) -> None:
    """Every relative link of a Markdown page points at a file or folder that exists."""
    text = page.read_text(encoding="utf-8")
    bad = [
        target
        for target in _LINK.findall(text)
        if not re.match(r"[a-z]+:|#", target)
        and target.split("#")[0]
        and not (page.parent / target.split("#")[0]).exists()
    ]
    assert not bad, f"{page.relative_to(ROOT)} links to missing paths: {bad}"


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_cited_paths_exist(page: Path) -> None:
    """Every doc path a Markdown page names in its text exists."""
    text = page.read_text(encoding="utf-8")
    bad = sorted(c for c in _citations(text) if not _resolves(c, page))
    assert not bad, f"{page.relative_to(ROOT)} cites missing paths: {bad}"


def test_code_cites_only_existing_docs() -> None:
    """Every doc path named in the code's docstrings, comments and strings exists."""
    bad = [
        f"{p.relative_to(ROOT)}: {c}"
        for p in CODE
        for c in sorted(_citations(p.read_text(encoding="utf-8")))
        if not _resolves(c, p)
    ]
    assert not bad, f"cited doc paths that do not exist: {bad}"


def test_abi_show_cites_only_existing_docs(capsys: pytest.CaptureFixture[str]) -> None:
    """What coco abi show prints for every registered ABI names only docs that exist."""
    assert main(["abi", "list", "--format", "json"]) == 0
    import json

    names = [a["name"] for a in json.loads(capsys.readouterr().out)["abis"]]
    assert names
    bad = []
    for name in names:
        assert main(["abi", "show", name]) == 0
        cited = _citations(capsys.readouterr().out)
        bad += [f"{name}: {c}" for c in sorted(cited) if not _resolves(c, DOCS / "index.md")]
    assert not bad, f"coco abi show cites missing docs: {bad}"
