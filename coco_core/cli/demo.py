# SPDX-License-Identifier: Apache-2.0
"""``coco demo``: the SNP and TDX scenarios, one line per exit.

Text (the default): a header naming the backend and why, a legend, one line per
exit of at most 100 columns (``-v``: every field, the raw value, the whole guest
view, and the log records of the deliberate faults), then the summary. JSON: one
object per exit, then the summary object, all on stdout; logs stay on stderr.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["LEGEND", "configure_parser"]

#: printed under the header in text mode: how to read a line
LEGEND = (
    "each line: BACKEND VENDOR EXIT(reason) REQUEST -> neutral STATUS | what the guest saw",
    "  EXIT drops the KVM_EXIT_/KVM_ prefixes; [deliberate] marks a fault the demo provokes",
    "  on purpose (a handler that raises, random registers); -v adds each request's fields,",
    "  the value written into kvm_run, the whole guest view and the logs of deliberate faults",
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``coco demo`` options."""
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--backend",
        choices=("auto", "kvm", "model"),
        default="auto",
        help="kvm: real /dev/kvm with the emulated TEE (needs GNU binutils); model: the kernel "
        "model alone; auto: kvm where it can run, else model, saying why (default)",
    )
    parser.add_argument("--vendor", action="append", help="only this vendor (repeatable)")
    parser.add_argument(
        "--testdata",
        type=Path,
        help="folder laid out like the repository's testdata/ (default: the files each plugin "
        "ships)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from coco_core.demo.env import ExitLine
    from coco_core.demo.run import pick_backend, run_scenarios
    from coco_core.errors import CoCoError

    if args.testdata is not None and not args.testdata.is_dir():
        raise CoCoError(f"--testdata {args.testdata}: not a folder")
    backend, why = pick_backend(args.backend)
    as_json = args.format == "json"
    verbose = bool(getattr(args, "verbose", False))
    if not as_json:
        print(f"coco demo: backend {backend}: {why}")
        print("\n".join(LEGEND))

    def emit(line: ExitLine) -> None:
        print(line.to_json() if as_json else line.to_text(verbose), flush=True)

    env, ran = run_scenarios(
        args.registry, backend, emit, vendors=args.vendor, testdata=args.testdata
    )
    if as_json:
        summary = [
            {"vendor": r.vendor, "scenario": r.scenario, "passed": r.passed, "note": r.note}
            for r in ran
        ]
        print(json.dumps({"summary": summary, "backend": backend, "checks": env.checks}))
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
