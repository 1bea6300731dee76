# SPDX-License-Identifier: Apache-2.0
"""``coco abi offsets``/``exits`` agree with the real Linux 7.2 ``linux/kvm.h``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coco_core.cli.main import main
from coco_core.review.gcc import header_defines, header_offsets

# header_dir: the Linux 7.2 uapi include folder, from the one fixture in tests/conftest.py
# (found, or fetched from Debian, in one documented place); gcc: skips where there is none.
pytestmark = pytest.mark.usefixtures("gcc")


def _cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(list(argv)) == 0
    doc: dict[str, object] = json.loads(capsys.readouterr().out)
    return doc


def test_offsets_agree_with_header(header_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every listed kvm_run member the header has sits at the header's offset and size."""
    doc = _cli_json(capsys, "abi", "offsets", "--abi", "linux-7.2", "--format", "json")
    offs = doc["offsets"]
    assert isinstance(offs, dict)
    measured = header_offsets(header_dir, list(offs))
    present = {p: v for p, v in measured.items() if v is not None}
    for path, got in present.items():
        assert list(got) == offs[path], path
    generic = [
        "kvm_run.exit_reason",
        "kvm_run.hypercall.nr",
        "kvm_run.hypercall.ret",
        "kvm_run.system_event.data",
        "kvm_run.memory_fault.gpa",
        "kvm_run.msr.data",
        "kvm_run.io.port",
        "kvm_run.s",
    ]
    assert all(p in present for p in generic)


def test_exits_agree_with_header(header_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every KVM_EXIT_* number of linux-7.2 equals the header's #define."""
    doc = _cli_json(capsys, "abi", "exits", "--abi", "linux-7.2", "--format", "json")
    exits = doc["exits"]
    assert isinstance(exits, dict)
    defs = header_defines(header_dir, list(exits))
    assert defs == exits
    assert defs["KVM_EXIT_SNP_REQ_CERTS"] == 43


def test_check_with_header(
    header_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """abi check --header passes for linux-7.2 and lists a changed exit number as a mismatch."""
    assert main(["abi", "check", "--header", str(header_dir)]) == 0
    assert "MISMATCH" not in capsys.readouterr().out
    import coco_core.review.gcc as gcc

    real = gcc.header_defines

    def shifted(hdr: object, names: list[str], **kw: object) -> dict[str, int | None]:
        out = real(hdr, names)  # type: ignore[arg-type]
        out["KVM_EXIT_TDX"] = 41
        return out

    monkeypatch.setattr(gcc, "header_defines", shifted)
    assert main(["abi", "check", "--header", str(header_dir)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH KVM_EXIT_TDX: linux-7.2 40, header 41" in out
