# SPDX-License-Identifier: Apache-2.0
"""``coco demo``: both scenarios pass, the output reads as documented, faults say what they are."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from coco_core.cli.demo import LEGEND
from coco_core.demo import env as demo_env
from coco_core.demo import run as demo_run
from coco_core.demo.env import LINE_WIDTH, DemoEnv, ExitLine
from coco_core.errors import CoCoError
from coco_core.registry import Registry

#: the ``coco`` fixture of tests/conftest.py: ``coco(*argv)`` gives (status, stdout, stderr)
CocoRunner = Callable[..., tuple[int, str, str]]

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


def test_demo_model_backend_passes(coco: CocoRunner) -> None:
    """``coco demo --backend model`` exits 0 and names the model backend."""
    code, out, _ = coco("demo", "--backend", "model")
    assert code == 0
    assert "backend model" in out
    assert "FAIL" not in out


@pytest.mark.parametrize("backend", [["--backend", "model"], []])
def test_demo_json_lines(coco: CocoRunner, backend: list[str]) -> None:
    """Every JSON exit line carries backend, vendor, exit_reason, request, status and raw."""
    code, out, _ = coco("demo", "--format", "json", *backend)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()][:-1]
    assert lines
    for line in lines:
        assert line["backend"] in ("kvm", "model")
        assert line["vendor"] in ("snp", "tdx")
        assert isinstance(line["exit_reason"], int)
        assert line["request"] in _REQUESTS
        assert "status" in line
        assert "raw" in line
    assert {line["vendor"] for line in lines} == {"snp", "tdx"}


def test_demo_json_is_stdout_only(coco: CocoRunner) -> None:
    """With --format json each stdout line is JSON, the summary comes last, stderr has none."""
    code, out, err = coco("demo", "--format", "json", "--backend", "model")
    assert code == 0
    docs = [json.loads(line) for line in out.splitlines()]
    summary = docs[-1]
    assert summary["backend"] == "model"
    assert [(s["vendor"], s["passed"]) for s in summary["summary"]] == [
        ("tdx", True),
        ("snp", True),
    ]
    assert "{" not in err


@pytest.mark.parametrize("backend", ["model", "auto"])
def test_demo_text_fits_100_columns_with_a_legend(coco: CocoRunner, backend: str) -> None:
    """Without -v every line is at most 100 columns, one per exit, under a legend."""
    code, out, _ = coco("demo", "--backend", backend)
    assert code == 0
    lines = out.splitlines()
    assert lines[1 : 1 + len(LEGEND)] == list(LEGEND)
    assert max(len(line) for line in lines) <= LINE_WIDTH
    exits = [line for line in lines if line.startswith(("kvm ", "model "))]
    assert len(exits) >= 12


def test_demo_deliberate_faults_are_labelled_not_logged(
    coco: CocoRunner,
) -> None:
    """The robustness steps' faults are [deliberate] lines; none reaches stderr as an ERROR."""
    code, out, err = coco("demo", "--backend", "model")
    assert code == 0
    assert "ERROR" not in err
    failed = [line for line in out.splitlines() if "-> ERROR" in line]
    assert failed
    assert all("[deliberate]" in line for line in failed)


@pytest.mark.parametrize(
    "argv",
    [
        ("-v", "demo", "--backend", "model"),
        ("demo", "-v", "--backend", "model"),
        ("demo", "--backend", "model", "--verbose"),
    ],
)
def test_verbose_anywhere_gives_the_details(coco: CocoRunner, argv: tuple[str, ...]) -> None:
    """-v before or after the subcommand shows fields, values written and deliberate logs."""
    code, out, _ = coco(*argv)
    assert code == 0
    assert "wrote 0x" in out
    assert "quote(gpa=0x300000" in out
    assert "      log: ERROR coco_core.dispatch:" in out
    assert "      deliberate: robustness:" in out


def test_a_real_fault_is_still_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Outside a deliberate step coco's logs reach the application; inside they go with the line."""
    lines: list[ExitLine] = []
    env = DemoEnv(Registry.from_plugins([]), "model", lines.append)
    log = logging.getLogger("coco_core.dispatch")
    with env.deliberate("planned"):
        log.error("planned fault")
    assert "planned fault" not in caplog.text
    assert env._take_logs() == ()  # nothing was flushed: the capture ended with the step
    log.error("real fault")
    assert "real fault" in caplog.text
    assert logging.getLogger("coco_core").propagate


def test_short_line_is_cut_at_100_columns_and_verbose_is_not() -> None:
    """A long guest view is cut to 100 columns with '...'; -v keeps all of it."""
    line = ExitLine("kvm", "tdx", "KVM_EXIT_TDX/GET_QUOTE", 40, "quote", {"gpa": 0x300000},
                    "OK", 0, "TDVMCALL_STATUS_SUCCESS", "x" * 200)  # fmt: skip
    short = line.to_text()
    assert len(short) == LINE_WIDTH
    assert short.endswith("...")
    assert short.startswith("kvm   tdx TDX/GET_QUOTE(40) quote -> OK | guest: x")
    assert line.to_text(verbose=True).endswith("x" * 200)


def test_unknown_vendor_names_the_registered_vendors(coco: CocoRunner) -> None:
    """--vendor foo exits 1 with one line naming foo and the vendors that exist."""
    code, _, err = coco("demo", "--backend", "model", "--vendor", "foo")
    assert code == 1
    assert err.splitlines() == [
        "coco: error: --vendor 'foo': no such vendor (registered vendors: example, snp, tdx)"
    ]


def test_vendor_without_a_scenario_says_so(coco: CocoRunner) -> None:
    """--vendor of a plugin that ships no scenario names the vendors that have one."""
    code, _, err = coco("demo", "--backend", "model", "--vendor", "example")
    assert code == 1
    assert err.splitlines() == [
        "coco: error: --vendor 'example': its plugin ships no demo scenario "
        "(scenarios exist for: snp, tdx)"
    ]


def test_no_scenario_at_all_says_which_plugins_ship_one() -> None:
    """With no scenario registered the error names the distributions that ship one."""
    with pytest.raises(CoCoError, match=r"no installed plugin ships one \(coco-snp and coco-tdx"):
        demo_run.run_scenarios(Registry.from_plugins([]), "model", print)


def test_demo_runs_on_the_packaged_data_alone(
    coco: CocoRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a checkout's testdata/ (as from wheels) both scenarios pass on the shipped files."""
    monkeypatch.setattr(demo_run, "default_testdata", lambda: None)
    seen: list[Path | None] = []
    real = demo_run.scenario_data
    monkeypatch.setattr(demo_run, "scenario_data", lambda t: seen.append(real(t)) or seen[-1])
    code, out, _ = coco("demo", "--backend", "model")
    assert code == 0, out
    assert [p.parent.name if p else None for p in seen] == ["coco_tdx", "coco_snp"]


def test_testdata_overrides_the_packaged_data(coco: CocoRunner, tmp_path: Path) -> None:
    """--testdata is what the scenarios read: an empty folder makes both fail, naming the files."""
    code, out, _ = coco("demo", "--backend", "model", "--testdata", str(tmp_path))
    assert code == 1
    assert f"FAIL snp guest-requests: CoCoError: snp demo: missing certificates ['{tmp_path}" in out
    assert f"FAIL tdx td-requests: CoCoError: no TDREPORT in {tmp_path}" in out


def test_testdata_that_is_not_a_folder_is_one_line(coco: CocoRunner, tmp_path: Path) -> None:
    """--testdata naming no folder exits 1 with one line naming the path."""
    code, out, err = coco("demo", "--testdata", str(tmp_path / "nope"))
    assert (code, out) == (1, "")
    assert err.splitlines() == [f"coco: error: --testdata {tmp_path / 'nope'}: not a folder"]


def test_scenario_data_of_a_package_without_data_is_none() -> None:
    """A scenario whose package ships no data/ folder (or does not exist) gets None."""
    assert demo_env.scenario_data("coco_core.demo:nothing") is None
    assert demo_env.scenario_data("no_such_package.demo:scenario") is None


class _FakeKvm:
    path = "/dev/kvm"

    def __enter__(self) -> _FakeKvm:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def kvm_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make /dev/kvm look usable, whatever this host has."""
    import coco_core.kvm.probe
    import coco_core.kvm.system

    monkeypatch.setattr(coco_core.kvm.system.Kvm, "open", classmethod(lambda cls: _FakeKvm()))
    monkeypatch.setattr(coco_core.kvm.probe, "usable", lambda kvm: (True, "fake"))


@pytest.mark.usefixtures("kvm_usable")
def test_auto_falls_back_to_the_model_without_binutils(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no GNU as on PATH, auto picks the model and says binutils is why."""
    monkeypatch.setenv("PATH", str(tmp_path))
    backend, why = demo_run.pick_backend("auto")
    assert backend == "model"
    assert "GNU binutils (as, ld, objcopy) not on PATH" in why
    assert "apt-get install binutils" in why


@pytest.mark.usefixtures("kvm_usable")
def test_kvm_without_binutils_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--backend kvm with no GNU as on PATH is an error naming the missing programs."""
    (tmp_path / "ld").touch(mode=0o755)
    (tmp_path / "objcopy").touch(mode=0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CoCoError, match=r"--backend kvm: cannot run here: GNU binutils \(as\)"):
        demo_run.pick_backend("kvm")


@pytest.mark.usefixtures("kvm_usable")
def test_auto_picks_kvm_with_binutils_and_kvm() -> None:
    """With a usable /dev/kvm and binutils on PATH, auto picks kvm."""
    assert demo_run.pick_backend("auto")[0] == "kvm"
