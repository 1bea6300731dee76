# SPDX-License-Identifier: Apache-2.0
"""Goldens recorded from the kernel model, and the ``coco golden record`` command."""

from __future__ import annotations

import json
from pathlib import Path

import coco_example.plugin as example
import pytest

from coco_core.cli.main import main
from coco_core.dispatch import Dispatcher
from coco_core.errors import ConfigurationError
from coco_core.registry import Registry
from coco_core.status import CoCoStatus
from coco_core.testing import Golden
from coco_core.testing.record import golden_json, record_goldens


def test_recorded_goldens_load_back_and_replay_byte_exact() -> None:
    """Every recorded golden, written as JSON and read back, decodes and completes as recorded."""
    reg = Registry.from_plugins([example])
    goldens = record_goldens(reg, "example", ["example-1"], [CoCoStatus.OK, None])
    assert len(goldens) >= 10  # 6 examples (one declined: left out) x 2 answers
    for g in goldens:
        back = Golden.from_dict(g.name, json.loads(json.dumps(golden_json(reg, g))))
        assert (back.kvm_run, back.request, back.completed) == (g.kvm_run, g.request, g.completed)
        d = Dispatcher(reg, "example", "example-1")
        if back.handler_result is not None:
            d.on(type(back.request), lambda r, c, a=back.handler_result: a)
        buf = back.unpatched()
        d.dispatch(buf)
        assert bytes(buf) == back.completed, g.name


def test_hex_dump_names_the_fields() -> None:
    """A recorded golden's hex dump comments each line with its kvm_run field."""
    reg = Registry.from_plugins([example])
    (g,) = [
        g
        for g in record_goldens(reg, "example", ["example-1"], [CoCoStatus.OK])
        if "evidence" in g.name
    ]
    lines = golden_json(reg, g)["kvm_run_hex"]
    assert "0020: 50 58 45 09 00 00 00 00   # kvm_run.riscv_sbi.extension_id" in lines
    assert golden_json(reg, g)["completed_hex"] == [
        "0060: 00 00 00 00 00 00 00 00   # kvm_run.riscv_sbi.ret[0]"
    ]


def test_vendor_without_examples_is_an_error() -> None:
    """Recording where the vendor's model has no examples says what to add."""
    with pytest.raises(ConfigurationError, match=r"no kernel-model examples.*CallExample"):
        record_goldens(Registry.from_plugins([example]), "example", ["linux-7.2"])


def test_cli_records_into_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """coco golden record writes NAME.json files the kit's Golden loader reads."""
    import coco_core.cli.main as cli

    monkeypatch.setattr(cli, "_registry", lambda: Registry.from_entry_points(allow={"example"}))
    assert main(["golden", "record", "example", "--answer", "RETRY", "--out", str(tmp_path)]) == 0
    written = capsys.readouterr().out.split()
    assert written
    loaded = Golden.load_dir(tmp_path, ".")
    assert {g.handler_result for g in loaded} == {CoCoStatus.RETRY}
    assert main(["golden", "record", "acme", "--out", str(tmp_path)]) == 1
    assert "unknown vendor 'acme'" in capsys.readouterr().err
