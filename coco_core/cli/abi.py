# SPDX-License-Identifier: Apache-2.0
"""``coco abi``: list, show, compare and check the registered exit ABIs.

Imported only when ``coco abi`` runs. This module parses the arguments and
prints; what is printed comes from :mod:`coco_core.review`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coco_core.errors import ConfigurationError

if TYPE_CHECKING:
    from coco_core.registry import Registry

__all__ = ["configure_parser"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``abi`` subcommands to ``parser``."""
    from coco_core.kernels import DEFAULT_ABI

    sub = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND")

    p = sub.add_parser("list", help="registered ABIs, their vendors and CoCo exits")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_list)

    p = sub.add_parser("show", help="one ABI: union members, offsets, errors, duties")
    p.add_argument("name", help="ABI name (see 'coco abi list')")
    p.add_argument("--format", choices=("c", "markdown", "json"), default="c")
    p.set_defaults(func=_show)

    p = sub.add_parser("offsets", help="{kvm_run path: [offset, size]} of an ABI")
    p.add_argument("--abi", default=DEFAULT_ABI)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_offsets)

    p = sub.add_parser("exits", help="KVM_EXIT_* numbers of an ABI")
    p.add_argument("--abi", default=DEFAULT_ABI)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_exits)

    p = sub.add_parser("history", help="how the CoCo exits moved across all ABIs")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.set_defaults(func=_history)

    p = sub.add_parser("compare", help="compare two ABIs, headers or patch files")
    p.add_argument("a", help="ABI name, or a C header / patch file")
    p.add_argument("b", help="ABI name, or a C header / patch file")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.add_argument("--struct", help="struct or member to take from a file")
    p.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="X:Y",
        help="pair union member X of A with Y of B (repeatable)",
    )
    p.set_defaults(func=_compare)

    p = sub.add_parser("import", help="show a struct read from a C header or patch")
    p.add_argument("file")
    p.add_argument("--struct", required=True, help="struct, union or member name")
    p.add_argument("--format", choices=("c", "markdown", "json"), default="c")
    p.set_defaults(func=_import)

    p = sub.add_parser("check", help="verify every layout with gcc (and a real header)")
    p.add_argument("--header", help="dir with usr/include/linux/kvm.h, or the kvm.h file")
    p.add_argument("--abi", default=DEFAULT_ABI, help="ABI compared with --header")
    p.set_defaults(func=_check)


# -- commands -------------------------------------------------------------------------


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, default=int))


def _list(args: argparse.Namespace) -> int:
    from coco_core.review.show import abi_list, render_abi_list

    reg: Registry = args.registry
    if args.format == "json":
        print(json.dumps({"abis": abi_list(reg)}, indent=2))
    else:
        print(render_abi_list(reg))
    return 0


def _show(args: argparse.Namespace) -> int:
    from coco_core.review.show import abi_json, render_abi

    abi = args.registry.abi(args.name)
    if args.format == "json":
        _print_json(abi_json(abi))
    else:
        print(render_abi(abi, args.format))
    return 0


def _offsets(args: argparse.Namespace) -> int:
    from coco_core.review.show import abi_offsets

    out = abi_offsets(args.registry.abi(args.abi), as_json=args.format == "json")
    print(json.dumps(out, indent=2) if isinstance(out, dict) else out)
    return 0


def _exits(args: argparse.Namespace) -> int:
    from coco_core.review.show import abi_exits

    out = abi_exits(args.registry.abi(args.abi), as_json=args.format == "json")
    print(json.dumps(out, indent=2) if isinstance(out, dict) else out)
    return 0


def _history(args: argparse.Namespace) -> int:
    import attrs

    from coco_core.review.history import history, render_history

    entries = history(args.registry)
    if args.format == "json":
        print(json.dumps({"history": [attrs.asdict(e) for e in entries]}, indent=2))
        return 0
    print(render_history(entries, markdown=args.format == "markdown").rstrip())
    return 0


def _parse_pairs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        x, sep, y = item.partition(":")
        if not sep or not x or not y:
            raise ConfigurationError(f"--pair {item!r}: expected MEMBER_A:MEMBER_B")
        out[x] = y
    return out


def _compare(args: argparse.Namespace) -> int:
    from coco_core.review.compare import compare_abis
    from coco_core.review.files import load_abi_or_file

    reg: Registry = args.registry
    a = load_abi_or_file(reg, args.a, args.struct)
    b = load_abi_or_file(reg, args.b, args.struct)
    result = compare_abis(a, b, pairs=_parse_pairs(args.pair))
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2, default=str))
        return 0
    print(result.render(markdown=args.format == "markdown").rstrip())
    return 0


def _import(args: argparse.Namespace) -> int:
    from coco_core.review.files import import_file
    from coco_core.review.show import imported_json, render_imported

    imported = import_file(Path(args.file), args.struct)
    if args.format == "json":
        print(json.dumps(imported_json(imported, args.struct), indent=2))
    else:
        print(render_imported(imported, args.format))
    return 0


def _check(args: argparse.Namespace) -> int:
    from coco_core.review.show import check_layouts

    summary, problems = check_layouts(args.registry, args.header, args.abi)
    for line in summary:
        print(line)
    for p in problems:
        print(f"MISMATCH {p}")
    return 1 if problems else 0
