# SPDX-License-Identifier: Apache-2.0
"""``coco demo``: both vendors' scenarios pass and every JSON line has the documented keys."""

from __future__ import annotations

import json

import pytest

from coco_core.cli.main import main

_REQUESTS = {
    "certificate",
    "quote",
    "event_notify",
    "tdvmcall_info",
    "memory_conversion",
    "memory_fault",
    "termination",
    "unsupported",
}


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_demo_model_backend_passes(capsys: pytest.CaptureFixture[str]) -> None:
    """``coco demo --backend model`` exits 0 and names the model backend."""
    assert main(["demo", "--backend", "model"]) == 0
    out = capsys.readouterr().out
    assert "backend model" in out
    assert "FAIL" not in out


@pytest.mark.parametrize("backend", [["--backend", "model"], []])
def test_demo_json_lines(capsys: pytest.CaptureFixture[str], backend: list[str]) -> None:
    """Every JSON exit line carries backend, vendor, exit_reason, request, status and raw."""
    assert main(["demo", "--format", "json", *backend]) == 0
    lines = _lines(capsys.readouterr().out)
    assert lines
    for line in lines:
        assert line["backend"] in ("kvm", "model")
        assert line["vendor"] in ("snp", "tdx")
        assert isinstance(line["exit_reason"], int)
        assert line["request"] in _REQUESTS
        assert "status" in line
        assert "raw" in line
    assert {line["vendor"] for line in lines} == {"snp", "tdx"}
