# SPDX-License-Identifier: Apache-2.0
"""``coco demo``: the SNP and TDX scenarios, one line per exit."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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


def _run(args: argparse.Namespace) -> int:
    from coco_core.demo.env import ExitLine, default_testdata
    from coco_core.demo.run import pick_backend, run_scenarios

    backend, why = pick_backend(args.backend)
    as_json = args.format == "json"
    if not as_json:
        print(f"coco demo: backend {backend}: {why}")

    def emit(line: ExitLine) -> None:
        print(line.to_json() if as_json else line.to_text(), flush=True)

    env, ran = run_scenarios(
        args.registry,
        backend,
        emit,
        vendors=args.vendor,
        testdata=args.testdata or default_testdata(),
    )
    if as_json:
        print(
            json.dumps(
                {
                    "summary": [
                        {
                            "vendor": r.vendor,
                            "scenario": r.scenario,
                            "passed": r.passed,
                            "note": r.note,
                        }
                        for r in ran
                    ],
                    "backend": backend,
                }
            ),
            file=sys.stderr,
        )
    else:
        passed = sum(r.passed for r in ran)
        print(
            f"summary ({backend}): {passed}/{len(ran)} scenarios passed, "
            f"{env.checks} guest-visible checks"
        )
        for r in ran:
            print(
                f"  {'PASS' if r.passed else 'FAIL'} {r.vendor} {r.scenario}"
                + (f": {r.note}" if r.note else "")
            )
    return 0 if all(r.passed for r in ran) else 1
