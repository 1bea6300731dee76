# SPDX-License-Identifier: Apache-2.0
"""Every ```python block in README.md and docs/**/*.md runs.

Blocks of one file run in order in one namespace, in a fresh temporary working
directory that holds a ``testdata`` link to the repository's real test data. A block
right after an HTML comment ``<!-- not-run: reason -->`` is skipped (it needs
/dev/kvm, a TDX host, a network...); the reason is mandatory.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>\S.*?)\s*-->\s*$")


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """``(first line number, code, not-run reason or None)`` for each ```python block."""
    lines = text.splitlines()
    blocks: list[tuple[int, str, str | None]] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, info = m["fence"], m["info"].strip().split()
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        if info and info[0] == "python":
            prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            skip = _NOT_RUN.match(prev)
            indent = len(m["indent"])
            code = "\n".join(line[indent:] for line in lines[start:j])
            blocks.append((start + 1, code, skip["reason"] if skip else None))
        i = j + 1
    return blocks


def test_block_parser_honours_not_run() -> None:
    """A not-run comment skips exactly the block it precedes, and needs a reason."""
    text = "\n".join(
        [
            "<!-- not-run: needs /dev/kvm -->",
            "```python",
            "raise SystemExit",
            "```",
            "<!-- not-run: -->",
            "",
            "```python",
            "x = 1",
            "```",
            "```text",
            "not python",
            "```",
        ]
    )
    got = python_blocks(text)
    assert [(n, r) for n, _, r in got] == [(3, "needs /dev/kvm"), (8, None)]


def _runnable(doc: Path) -> list[tuple[int, str, str | None]]:
    return [b for b in python_blocks(doc.read_text(encoding="utf-8")) if b[2] is None]


RUNNABLE = [p for p in DOC_FILES if _runnable(p)]


def test_the_tutorials_have_runnable_examples() -> None:
    """The embedding and plugin tutorials carry executed code, not only sketches."""
    names = {p.relative_to(ROOT).as_posix() for p in RUNNABLE}
    assert {"docs/tutorial/embedding.md", "docs/tutorial/writing-a-plugin.md"} <= names


@pytest.mark.parametrize("doc", RUNNABLE, ids=[str(p.relative_to(ROOT)) for p in RUNNABLE])
def test_doc_examples_run(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file's runnable Python blocks execute in order without raising."""
    blocks = _runnable(doc)
    (tmp_path / "testdata").symlink_to(ROOT / "testdata")
    monkeypatch.chdir(tmp_path)
    rel = doc.relative_to(ROOT)
    namespace: dict[str, object] = {"__name__": f"docs_example_{doc.stem.replace('-', '_')}"}
    for number, (line, code, _) in enumerate(blocks, start=1):
        try:
            exec(compile(code, f"{rel}:block{number}", "exec"), namespace)
        except Exception:
            pytest.fail(
                f"{rel}: python block {number} (line {line}) failed:\n{traceback.format_exc()}",
                pytrace=False,
            )
