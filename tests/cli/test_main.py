# SPDX-License-Identifier: Apache-2.0
"""The core ``coco`` commands: help, plugins list, errors table, and error exits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coco_core.cli import main as cli
from coco_core.registry import Registry

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def only_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the CLI see the core and the example plugin only, whatever else is installed."""
    monkeypatch.setattr(cli, "_registry", lambda: Registry.from_entry_points(allow={"example"}))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``coco ARGV`` in-process; return (status, stdout, stderr)."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """coco --help exits 0 and lists the core commands."""
    code, out, err = run(capsys, "--help")
    assert code == 0
    assert err == ""
    for command in ("plugins", "errors", "abi", "demo"):
        assert command in out


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """coco with no arguments prints help and exits 0."""
    code, out, _ = run(capsys)
    assert code == 0
    assert "usage: coco" in out


def test_plugins_list_text(capsys: pytest.CaptureFixture[str]) -> None:
    """coco plugins list names each plugin with its distribution, ABIs, exits and spaces."""
    code, out, err = run(capsys, "plugins", "list")
    assert (code, err) == (0, "")
    assert "example (coco-example 0.1.0) vendors: example" in out
    assert "  exits:        KVM_EXIT_EXAMPLE_ATTEST" in out
    assert "  error spaces: example.sbi, example.status" in out
    assert "core (built in)" in out


def test_plugins_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    """coco plugins list --format json is valid JSON with one object per plugin."""
    code, out, _ = run(capsys, "plugins", "list", "--format", "json")
    assert code == 0
    data = json.loads(out)
    (ex,) = [p for p in data["plugins"] if p["name"] == "example"]
    assert ex["distribution"] == "coco-example"
    assert ex["vendors"] == ["example"]
    assert ex["abis"] == ["example-1"]
    assert "KVM_EXIT_EXAMPLE_ATTEST" in ex["exits"]
    assert ex["error_spaces"] == ["example.sbi", "example.status"]
    assert data["failures"] == []


def test_errors_table_text(capsys: pytest.CaptureFixture[str]) -> None:
    """coco errors table SPACE shows every status with its raw value, marking fallbacks."""
    code, out, _ = run(capsys, "errors", "table", "example.status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "example.status: example_attest.ret, copied verbatim into the guest's a0"
    assert "BUFFER_TOO_SMALL     0x2  EXAMPLE_INVALID *" in lines
    assert max(len(line) for line in lines) <= 80
    assert "0x3  EXAMPLE_ERROR    ERROR" in lines


def test_errors_table_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    """coco errors table --format markdown writes Markdown tables."""
    code, out, _ = run(capsys, "errors", "table", "example.status", "--format", "markdown")
    assert code == 0
    assert out.startswith("### `example.status`")
    assert "| OK | 0x0 | EXAMPLE_OK |" in out


def test_errors_table_json_all_spaces(capsys: pytest.CaptureFixture[str]) -> None:
    """coco errors table --format json without a space lists every registered space."""
    code, out, _ = run(capsys, "errors", "table", "--format", "json")
    assert code == 0
    ids = [s["id"] for s in json.loads(out)["spaces"]]
    assert "example.status" in ids
    assert "kvm.map_gpa_range" in ids


@pytest.mark.parametrize(
    "argv",
    [
        ("errors", "table", "--format", "yaml"),
        ("plugins", "list", "--bogus"),
        ("no-such-command",),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    """Bad arguments exit 2 with exactly one line on stderr and nothing on stdout."""
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("coco: error: ")


def test_unknown_space_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown error space exits 1 with one line naming the known spaces."""
    code, out, err = run(capsys, "errors", "table", "nope")
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        "coco: error: unknown error space 'nope'; known: example.sbi, example.status, "
        "kvm.map_gpa_range, kvm.map_gpa_range_legacy, kvm.msr_error"
    ]


def test_help_subprocess_does_not_import_cryptography() -> None:
    """coco --help runs; importing coco_core and building the parser leave cryptography unloaded."""
    done = subprocess.run(
        [str(VENV_BIN / "coco"), "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "commands:" in done.stdout
    probe = (
        "import sys\n"
        "import coco_core\n"
        "print('cryptography' in sys.modules)\n"
        "from coco_core.cli.main import build_parser\n"
        "build_parser(['--help'])\n"
        "print('cryptography' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
