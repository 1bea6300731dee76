# SPDX-License-Identifier: Apache-2.0
"""Running the registered demo scenarios on a backend; ``coco demo`` prints what this returns."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs

from coco_core.demo.env import DemoEnv, ExitLine, default_testdata, scenario_data
from coco_core.errors import CoCoError
from coco_core.registry import Registry, ScenarioSpec

__all__ = ["ScenarioResult", "pick_backend", "run_scenarios"]


@attrs.frozen
class ScenarioResult:
    """How one scenario ended: passed, and what failed if not."""

    vendor: str
    scenario: str
    passed: bool
    note: str


def pick_backend(wanted: str) -> tuple[str, str]:
    """``("kvm" | "model", why)`` for ``--backend wanted`` (``auto``, ``kvm``, ``model``).

    ``kvm`` needs a ``/dev/kvm`` that runs a guest, and GNU binutils to assemble
    the demo guests; ``auto`` falls back to the kernel model when either is
    missing and says which.

    :raises CoCoError: ``kvm`` was asked for and cannot run here.
    """
    if wanted == "model":
        return "model", "asked for the kernel model"
    try:
        from coco_core.kvm.probe import usable
        from coco_core.kvm.system import Kvm

        with Kvm.open() as kvm:
            ok, reason = usable(kvm)
    except CoCoError as exc:
        ok, reason = False, str(exc)
    if ok:
        from coco_core.emulated.guestbuild import missing_binutils

        missing = missing_binutils()
        if missing:
            ok, reason = (
                False,
                (
                    f"GNU binutils ({', '.join(missing)}) not on PATH: the KVM backend assembles "
                    "its guests with them (on Debian: apt-get install binutils)"
                ),
            )
    if ok:
        return "kvm", "real /dev/kvm with the emulated TEE (doorbell exits)"
    if wanted == "kvm":
        raise CoCoError(f"--backend kvm: cannot run here: {reason}")
    return "model", f"kernel model alone, because the KVM backend cannot run here: {reason}"


def _selected(reg: Registry, vendors: Iterable[str] | None) -> list[ScenarioSpec]:
    """The scenarios of ``vendors`` (all if None), or an error naming what is missing."""
    if vendors is None:
        if not reg.scenarios:
            raise CoCoError(
                "no demo scenarios registered: no installed plugin ships one "
                "(coco-snp and coco-tdx do: pip install coco-snp coco-tdx)"
            )
        return list(reg.scenarios)
    wanted = list(dict.fromkeys(vendors))
    have = sorted({s.vendor for s in reg.scenarios})
    for vendor in wanted:
        if vendor not in reg.vendors:
            raise CoCoError(
                f"--vendor {vendor!r}: no such vendor (registered vendors: "
                f"{', '.join(sorted(reg.vendors)) or 'none'})"
            )
        if vendor not in have:
            raise CoCoError(
                f"--vendor {vendor!r}: its plugin ships no demo scenario "
                f"(scenarios exist for: {', '.join(have) or 'none'})"
            )
    return [s for s in reg.scenarios if s.vendor in wanted]


def run_scenarios(
    reg: Registry,
    backend: str,
    emit: Callable[[ExitLine], None],
    *,
    vendors: Iterable[str] | None = None,
    testdata: Path | None = None,
) -> tuple[DemoEnv, list[ScenarioResult]]:
    """Run every registered scenario (of ``vendors``, if given) on ``backend``.

    Each scenario reads ``testdata`` if given, else the data its plugin ships
    (:func:`~coco_core.demo.env.scenario_data`), else the checkout's ``testdata/``.

    :raises CoCoError: a vendor asked for is unknown or has no scenario, or no
        scenario is registered at all.
    """
    scenarios = _selected(reg, vendors)
    env = DemoEnv(reg, backend, emit, testdata)
    results: list[ScenarioResult] = []
    for spec in scenarios:
        env.testdata = testdata or scenario_data(spec.target) or default_testdata()
        module, _, func = spec.target.partition(":")
        fn: Callable[[DemoEnv], None] = getattr(importlib.import_module(module), func)
        before = len(env.failures)
        try:
            fn(env)
            ok = len(env.failures) == before
            note = "; ".join(env.failures[before:])
        except CoCoError as exc:
            ok, note = False, f"{type(exc).__name__}: {exc}"
            env.failures.append(note)
        results.append(ScenarioResult(spec.vendor, spec.name, ok, note))
    return env, results
