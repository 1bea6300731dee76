# SPDX-License-Identifier: Apache-2.0
"""The shell recipes of the how-to guides run as written (bash -e, in a scratch folder)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QGS_HOWTO = ROOT / "docs" / "how-to" / "connect-to-a-qgs.md"


def _sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def _recipe() -> str:
    (block,) = [b for b in _sh_blocks(QGS_HOWTO.read_text()) if "qgs-serve" in b]
    return block


def test_qgs_recipe_waits_for_the_socket() -> None:
    """The recipe waits until the server's socket exists before it connects."""
    lines = _recipe().splitlines()
    serve = next(i for i, line in enumerate(lines) if "qgs-serve" in line)
    wait = next(i for i, line in enumerate(lines) if "-S qgs.socket" in line)
    get = next(i for i, line in enumerate(lines) if "qgs-get-quote" in line)
    assert serve < wait < get


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash (apt-get install bash)")
def test_qgs_recipe_runs_as_written(tmp_path: Path) -> None:
    """The development-QGS recipe, run verbatim, gets a quote, shows it and stops the server."""
    (tmp_path / "testdata").symlink_to(ROOT / "testdata")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        # the trap stops the server if a step fails before the recipe's own kill
        ["bash", "-e", "-c", "trap 'kill $server 2>/dev/null || true' EXIT\n" + _recipe()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "quote.dat").stat().st_size > 1024
    assert "cannot connect" not in done.stderr
    assert "version" in done.stdout.lower()
