# SPDX-License-Identifier: Apache-2.0
"""``coco golden``: record golden ``kvm_run`` images from a vendor's kernel model.

Imported only when ``coco golden`` runs; what is recorded comes from
:mod:`coco_core.testing.record` (it needs the ``dev`` extra: pytest, hypothesis).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from coco_core.errors import ConfigurationError

__all__ = ["configure_parser"]

_ANSWERS = ("OK", "RETRY", "BUFFER_TOO_SMALL", "INVALID", "UNSUPPORTED", "ERROR", "none")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``golden`` subcommands to ``parser``."""
    sub = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    p = sub.add_parser("record", help="write one golden per kernel-model example exit and answer")
    p.add_argument(
        "vendor", help="the vendor whose model examples to run (see 'coco plugins list')"
    )
    p.add_argument("--abi", action="append", default=[], help="only this ABI (repeatable)")
    p.add_argument(
        "--answer",
        action="append",
        choices=_ANSWERS,
        default=[],
        help="the handler's answer ('none': no handler); repeatable, default OK and none",
    )
    p.add_argument("--out", required=True, help="the directory to write NAME.json into")
    p.set_defaults(func=_record)


def _record(args: argparse.Namespace) -> int:
    try:
        from coco_core.testing.record import golden_json, record_goldens
    except ImportError as exc:
        raise ConfigurationError(
            f"coco golden needs the dev extra (pytest, hypothesis): {exc}"
        ) from None
    from coco_core.status import CoCoStatus

    reg = args.registry
    if args.vendor not in reg.vendors:
        known = ", ".join(sorted(reg.vendors)) or "none"
        raise ConfigurationError(f"unknown vendor {args.vendor!r}; registered vendors: {known}")
    answers = [None if a == "none" else CoCoStatus[a] for a in args.answer or ("OK", "none")]
    goldens = record_goldens(reg, args.vendor, args.abi or None, answers)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for g in goldens:
        path = out / f"{g.name}.json"
        path.write_text(json.dumps(golden_json(reg, g), indent=2) + "\n", encoding="utf-8")
        print(path)
    return 0
