# SPDX-License-Identifier: Apache-2.0
"""The core ``coco`` commands: help, plugins list, errors table, and error exits."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from coco_core.cli import main as cli
from coco_core.registry import Registry

#: the ``coco`` fixture of tests/conftest.py: ``coco(*argv)`` gives (status, stdout, stderr)
CocoRunner = Callable[..., tuple[int, str, str]]

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def only_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the CLI see the core and the example plugin only, whatever else is installed."""
    monkeypatch.setattr(cli, "_registry", lambda: Registry.from_entry_points(allow={"example"}))


def test_help_lists_commands(coco: CocoRunner) -> None:
    """coco --help exits 0 and lists the core commands."""
    code, out, err = coco("--help")
    assert code == 0
    assert err == ""
    for command in ("plugins", "errors", "abi", "demo"):
        assert command in out


def test_no_arguments_prints_help(coco: CocoRunner) -> None:
    """coco with no arguments prints help and exits 0."""
    code, out, _ = coco()
    assert code == 0
    assert "usage: coco" in out


def test_plugins_list_text(coco: CocoRunner) -> None:
    """coco plugins list names each plugin with its distribution, ABIs, exits and spaces."""
    code, out, err = coco("plugins", "list")
    assert (code, err) == (0, "")
    assert "example (coco-example 0.1.0) vendors: example" in out
    assert "  exits:        KVM_EXIT_EXAMPLE_ATTEST" in out
    assert "  error spaces: example.sbi, example.status" in out
    assert "core (built in)" in out


def test_plugins_list_json(coco: CocoRunner) -> None:
    """coco plugins list --format json is valid JSON with one object per plugin."""
    code, out, _ = coco("plugins", "list", "--format", "json")
    assert code == 0
    data = json.loads(out)
    (ex,) = [p for p in data["plugins"] if p["name"] == "example"]
    assert ex["distribution"] == "coco-example"
    assert ex["vendors"] == ["example"]
    assert ex["abis"] == ["example-1"]
    assert "KVM_EXIT_EXAMPLE_ATTEST" in ex["exits"]
    assert ex["error_spaces"] == ["example.sbi", "example.status"]
    assert data["failures"] == []


def test_errors_table_text(coco: CocoRunner) -> None:
    """coco errors table SPACE shows every status with its raw value, marking fallbacks."""
    code, out, _ = coco("errors", "table", "example.status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "example.status: example_attest.ret, copied verbatim into the guest's a0"
    assert "BUFFER_TOO_SMALL     0x2  EXAMPLE_INVALID *" in lines
    assert max(len(line) for line in lines) <= 80
    assert "0x3  EXAMPLE_ERROR    ERROR" in lines


def test_errors_table_markdown(coco: CocoRunner) -> None:
    """coco errors table --format markdown writes Markdown tables."""
    code, out, _ = coco("errors", "table", "example.status", "--format", "markdown")
    assert code == 0
    assert out.startswith("### `example.status`")
    assert "| OK | 0x0 | EXAMPLE_OK |" in out


def test_errors_table_json_all_spaces(coco: CocoRunner) -> None:
    """coco errors table --format json without a space lists every registered space."""
    code, out, _ = coco("errors", "table", "--format", "json")
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
def test_bad_arguments_exit_2_with_one_line(coco: CocoRunner, argv: tuple[str, ...]) -> None:
    """Bad arguments exit 2 with exactly one line on stderr and nothing on stdout."""
    code, out, err = coco(*argv)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("coco: error: ")


def test_unknown_space_exits_1_with_one_line(coco: CocoRunner) -> None:
    """An unknown error space exits 1 with one line naming the known spaces."""
    code, out, err = coco("errors", "table", "nope")
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


def test_version_names_core_and_plugin_distributions(coco: CocoRunner) -> None:
    """coco --version exits 0 with the coco-core version and each plugin distribution's."""
    from importlib.metadata import version

    code, out, err = coco("--version")
    assert (code, err) == (0, "")
    assert out.startswith(f"coco {version('coco-core')} (plugins: ")
    assert f"coco-snp {version('coco-snp')}" in out
    assert f"coco-tdx {version('coco-tdx')}" in out


def test_verbose_after_the_subcommand_is_accepted(coco: CocoRunner) -> None:
    """-v after the subcommand is the global switch, not a bad argument."""
    code, out, err = coco("plugins", "list", "-v")
    assert (code, err) == (0, "")
    assert out.startswith("core (built in)")


def test_verbose_error_shows_the_traceback(coco: CocoRunner) -> None:
    """An error under -v prints the traceback, then the same one-line error."""
    code, out, err = coco("errors", "table", "nope", "-v")
    assert (code, out) == (1, "")
    assert err.startswith("Traceback (most recent call last):")
    assert err.splitlines()[-1].startswith("coco: error: unknown error space 'nope'")


def test_verbose_after_double_dash_is_an_argument() -> None:
    """A -v after -- is left to the command as a plain argument."""
    assert cli._split_verbose(["demo", "--", "-v"]) == (["demo", "--", "-v"], False)
    assert cli._split_verbose(["-v", "demo", "--verbose"]) == (["demo"], True)


def test_help_names_the_exit_codes(coco: CocoRunner) -> None:
    """coco --help ends with the meaning of each exit status."""
    code, out, _ = coco("--help")
    assert code == 0
    flat = " ".join(out.split())
    for status in cli.EXIT_CODES:
        assert f"{status} " in flat.split("Exit status:")[1]


def test_help_imports_only_the_registration_path() -> None:
    """coco --help loads no tooling room, no service, no vendor command group and no JSON."""
    probe = (
        "import sys\n"
        "from coco_core.cli.main import build_parser\n"
        "build_parser([]).format_help()\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    heavy = {
        "cryptography",
        "json",
        "coco_core.review",
        "coco_core.testing",
        "coco_core.kvm",
        "coco_core.demo",
        "coco_core.services",
        "coco_core.cli.abi",
        "coco_snp.cli",
        "coco_snp.certs",
        "coco_tdx.cli",
        "coco_tdx.qgs.client",
        "coco_tdx.service",
    }
    assert not heavy & loaded, sorted(heavy & loaded)
