# SPDX-License-Identifier: Apache-2.0
"""``make bench``: the shape of its last line, and the ratio it reports."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _kvm_loops() -> ModuleType:
    spec = importlib.util.spec_from_file_location("coco_bench_kvm_loops", BENCH / "kvm_loops.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_ratio_divides_within_rounds() -> None:
    """Same-round ratios: a slow spell in one round moves one ratio, not the median."""
    kl = _kvm_loops()
    # round 2: a neighbour slowed the machine while coco ran, not while raw ran
    rates = {"raw": {1: [100.0, 100.0, 50.0]}, "coco": {1: [90.0, 45.0, 45.0]}}
    assert kl.paired_ratio(rates, ("coco", 1), ("raw", 1)) == pytest.approx(0.9)
    # the ratio of the medians would have said 0.45
    assert kl.median_rate(rates, "coco", 1) / kl.median_rate(rates, "raw", 1) == 0.45


def test_quick_bench_prints_one_json_line_with_every_result() -> None:
    """The last line is one JSON object with the keys issue #5 names (a smoke run)."""
    env = dict(os.environ, COCO_BENCH_QUICK="1")
    out = subprocess.run(
        [sys.executable, str(BENCH / "run.py")],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    ).stdout
    last = json.loads(out.strip().splitlines()[-1])
    kinds = last["dispatch_ns"]
    assert {"snp:KVM_EXIT_SNP_REQ_CERTS", "tdx:KVM_EXIT_TDX/GET_QUOTE"} <= set(kinds)
    assert all(isinstance(ns, float) and ns > 0 for ns in kinds.values())
    assert last["cli_help_ms"] > 0
    if "kvm_loop" not in last:
        assert "kvm loops: skipped" in out
        pytest.skip("/dev/kvm not accessible: the KVM loop part was skipped, as it says")
    loop = last["kvm_loop"]
    for key in ("c_exits_per_s", "python_exits_per_s", "coco_exits_per_s"):
        assert isinstance(loop[key], int), key
        assert loop[key] > 0, key
    assert last["threads2_scaling"] > 0
