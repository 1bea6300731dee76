# SPDX-License-Identifier: Apache-2.0
"""Running the registered demo scenarios on a backend; ``coco demo`` prints what this returns."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs

from coco_core.demo.env import DemoEnv, ExitLine
from coco_core.errors import CoCoError
from coco_core.registry import Registry

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

    :raises CoCoError: ``kvm`` was asked for and ``/dev/kvm`` cannot run a guest here.
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
        return "kvm", "real /dev/kvm with the emulated TEE (doorbell exits)"
    if wanted == "kvm":
        raise CoCoError(f"--backend kvm: /dev/kvm is not usable here: {reason}")
    return "model", f"/dev/kvm not usable ({reason}); kernel model alone"


def run_scenarios(
    reg: Registry,
    backend: str,
    emit: Callable[[ExitLine], None],
    *,
    vendors: Iterable[str] | None = None,
    testdata: Path | None = None,
) -> tuple[DemoEnv, list[ScenarioResult]]:
    """Run every registered scenario (of ``vendors``, if given) on ``backend``.

    :raises CoCoError: no scenario is registered for what was asked.
    """
    wanted = None if vendors is None else set(vendors)
    env = DemoEnv(reg, backend, emit, testdata)
    scenarios = [s for s in reg.scenarios if wanted is None or s.vendor in wanted]
    if not scenarios:
        raise CoCoError("no demo scenarios registered (are coco-snp and coco-tdx installed?)")
    results: list[ScenarioResult] = []
    for spec in scenarios:
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
