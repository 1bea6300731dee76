# SPDX-License-Identifier: Apache-2.0
"""``coco demo``: the SNP and TDX scenarios, one line per exit."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

from coco_core.errors import CoCoError

__all__ = ["configure_parser"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``coco demo`` options."""
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--backend",
        choices=("auto", "kvm", "model"),
        default="auto",
        help="kvm: real /dev/kvm with the emulated TEE; model: the kernel model alone; "
        "auto: kvm where usable (default)",
    )
    parser.add_argument("--vendor", action="append", help="only this vendor (repeatable)")
    parser.add_argument("--testdata", type=Path, help="folder with the real public test data")
    parser.set_defaults(func=_run)


def _pick_backend(wanted: str) -> tuple[str, str]:
    if wanted == "model":
        return "model", "asked for the kernel model"
    try:
        from coco_core.kvm.system import Kvm

        with Kvm.open() as kvm:
            ok, reason = kvm.usable()
    except CoCoError as exc:
        ok, reason = False, str(exc)
    if ok:
        return "kvm", "real /dev/kvm with the emulated TEE (doorbell exits)"
    if wanted == "kvm":
        raise CoCoError(f"--backend kvm: /dev/kvm is not usable here: {reason}")
    return "model", f"/dev/kvm not usable ({reason}); kernel model alone"


def _run(args: argparse.Namespace) -> int:
    from coco_core.demo.env import DemoEnv, ExitLine, default_testdata
    from coco_core.registry import Registry

    reg: Registry = args.registry
    backend, why = _pick_backend(args.backend)
    as_json = args.format == "json"
    if not as_json:
        print(f"coco demo: backend {backend}: {why}")

    def emit(line: ExitLine) -> None:
        print(line.to_json() if as_json else line.to_text(), flush=True)

    env = DemoEnv(reg, backend, emit, args.testdata or default_testdata())
    scenarios = [s for s in reg.scenarios if not args.vendor or s.vendor in args.vendor]
    if not scenarios:
        raise CoCoError("no demo scenarios registered (are coco-snp and coco-tdx installed?)")
    ran: list[tuple[str, str, bool, str]] = []
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
        ran.append((spec.vendor, spec.name, ok, note))
    if as_json:
        print(
            json.dumps(
                {
                    "summary": [
                        {"vendor": v, "scenario": n, "passed": ok, "note": note}
                        for v, n, ok, note in ran
                    ],
                    "backend": backend,
                }
            ),
            file=sys.stderr,
        )
    else:
        print(
            f"summary ({backend}): {sum(ok for *_, ok, _ in ran)}/{len(ran)} scenarios passed, "
            f"{env.checks} guest-visible checks"
        )
        for vendor, name, ok, note in ran:
            print(f"  {'PASS' if ok else 'FAIL'} {vendor} {name}" + (f": {note}" if note else ""))
    return 0 if all(ok for *_, ok, _ in ran) else 1
