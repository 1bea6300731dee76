# SPDX-License-Identifier: Apache-2.0
"""The ``coco`` command.

Subcommands come from three places: the core (``plugins``, ``errors``,
``abi``, ``demo``), and each vendor plugin's command group (``snp``, ``tdx``),
which is imported only when it runs so that ``coco --help`` stays fast and
never imports cryptography. A user error prints one line, ``coco: error: ...``,
and exits 1 (2 for bad arguments); no traceback unless ``-v``, which may stand
anywhere on the command line.

Exit codes of every command: 0 done (a check passed), 1 an error or a check that
failed (one line on stderr says which), 2 bad arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from coco_core.errors import CoCoError

if TYPE_CHECKING:
    from coco_core.registry import Registry

__all__ = ["EXIT_CODES", "VERBOSE_FLAGS", "CoCoArgumentParser", "main", "version_text"]

#: what each exit status of ``coco`` means (docs/reference/cli.md prints this table)
EXIT_CODES: dict[int, str] = {
    0: "done, or the check passed",
    1: "an error, or the check failed (one line on stderr; -v adds the traceback)",
    2: "bad arguments (one line on stderr)",
    130: "interrupted",
}
#: the verbose switch, accepted anywhere before a ``--``
VERBOSE_FLAGS = ("-v", "--verbose")


class _OneLineFormatter(logging.Formatter):
    """Log records as one line each; an exception shows as its type and message only."""

    def formatException(self, ei: Any) -> str:
        _, exc, _ = ei
        return f"({type(exc).__name__}: {exc})"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace("\n", " ")


def _configure_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if root.handlers:  # an embedding application configured logging already
        return
    handler = logging.StreamHandler(sys.stderr)
    fmt = "coco: %(levelname)s: %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if verbose else _OneLineFormatter(fmt))
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)


class CoCoArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``coco: error: ...`` on one line, naming the command, and exit 2."""
        self.exit(2, f"coco: error: {self.prog}: {message} (see '{self.prog} --help')\n")


CommandFn = Callable[[argparse.Namespace], int]

_CORE_GROUPS: dict[str, tuple[str, str]] = {
    # name: (module:function that configures the parser, help)
    "abi": (
        "coco_core.cli.abi:configure_parser",
        "compare CoCo exit ABIs: layouts, numbers, errors",
    ),
    "demo": ("coco_core.cli.demo:configure_parser", "run the SNP and TDX scenarios end to end"),
    "golden": ("coco_core.cli.golden:configure_parser", "record golden exits from a kernel model"),
}


def _load(target: str) -> Callable[[argparse.ArgumentParser], None]:
    module, _, func = target.partition(":")
    fn: Callable[[argparse.ArgumentParser], None] = getattr(importlib.import_module(module), func)
    return fn


def _registry() -> Registry:
    """Every installed plugin (the ``coco`` command trusts what is installed)."""
    from coco_core.registry import Registry

    return Registry.from_entry_points()


def version_text() -> str:
    """``coco X.Y.Z``, then each installed plugin distribution and its version.

    Read from the installed metadata only: no plugin is imported.
    """
    from importlib.metadata import PackageNotFoundError, entry_points, version

    from coco_core.hookspecs import NAME

    try:
        core = version("coco-core")
    except PackageNotFoundError:  # run from a source tree that was never installed
        core = "unknown (not installed)"
    plugins = sorted(
        {f"{ep.dist.name} {ep.dist.version}" for ep in entry_points(group=NAME) if ep.dist}
    )
    return f"coco {core} (plugins: {', '.join(plugins) or 'none'})"


class _VersionAction(argparse.Action):
    """``--version``: print :func:`version_text` and exit 0."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(version_text())
        parser.exit(0)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The full parser; only the command group named in ``argv`` is imported."""
    reg = _registry()
    parser = CoCoArgumentParser(
        prog="coco",
        description="coco: the vendor-neutral framework for the confidential-computing "
        "(CoCo) userspace exits of Linux KVM.",
        epilog="Run 'coco COMMAND --help' for a command's options. Exit status: "
        + "; ".join(f"{code} {what.split(' (')[0]}" for code, what in EXIT_CODES.items())
        + ".",
    )
    parser.add_argument(
        *VERBOSE_FLAGS,
        action="store_true",
        help="log more, with full tracebacks (anywhere on the command line)",
    )
    parser.add_argument("--version", action=_VersionAction, help="show the versions and exit")
    parser.set_defaults(func=None, registry=reg)
    sub = parser.add_subparsers(
        title="commands", metavar="COMMAND", parser_class=CoCoArgumentParser
    )

    p_plugins = sub.add_parser("plugins", help="list the installed plugins")
    psub = p_plugins.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    p_list = psub.add_parser("list", help="name, version, exits, ABIs and error spaces per plugin")
    p_list.add_argument("--format", choices=("text", "json"), default="text")
    p_list.set_defaults(func=_plugins_list)

    p_errors = sub.add_parser("errors", help="show error spaces")
    esub = p_errors.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    p_table = esub.add_parser(
        "table", help="neutral status <-> raw value table of one or all spaces"
    )
    p_table.add_argument("space", nargs="?", help="error-space id (default: all)")
    p_table.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p_table.set_defaults(func=_errors_table)

    wanted = next((a for a in argv if not a.startswith("-")), None)
    groups = dict(_CORE_GROUPS)
    for name, spec in reg.commands.items():
        groups[name] = (spec.target, spec.help)
    for name, (target, help_text) in groups.items():
        p = sub.add_parser(name, help=help_text)
        if name == wanted:
            _load(target)(p)
    return parser


def _plugins_list(args: argparse.Namespace) -> int:
    import json

    import attrs

    reg: Registry = args.registry
    rows = [attrs.asdict(s) for s in reg.plugin_summaries()]
    failures = [{"name": f.name, "target": f.target, "error": f.error} for f in reg.failures]
    if args.format == "json":
        print(json.dumps({"plugins": rows, "failures": failures}, indent=2))
        return 0
    for r in rows:
        ver = f"{r['distribution']} {r['version']}" if r["distribution"] else "built in"
        print(f"{r['name']} ({ver}) vendors: {', '.join(r['vendors']) or '-'}")
        print(f"  ABIs:         {', '.join(r['abis']) or '-'}")
        print(f"  exits:        {', '.join(r['exits']) or '-'}")
        print(f"  error spaces: {', '.join(r['error_spaces']) or '-'}")
    for f in failures:
        print(f"{f['name']} FAILED to load ({f['target']}): {f['error']}")
    return 0


def _errors_table(args: argparse.Namespace) -> int:
    import json

    from coco_core.errorspace import ErrorSpace

    reg: Registry = args.registry
    spaces: list[ErrorSpace] = [reg.space(args.space)] if args.space else list(reg.spaces.values())
    if args.format == "json":
        print(json.dumps({"spaces": [s.to_json() for s in spaces]}, indent=2, default=int))
        return 0
    from coco_core.review.render import render_space

    out = [render_space(s, markdown=args.format == "markdown") for s in spaces]
    print("\n\n".join(out))
    return 0


def _split_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without the verbose flags before any ``--``, and whether one was there."""
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [a for a in argv[:end] if a not in VERBOSE_FLAGS]
    return kept + argv[end:], len(kept) != end


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``coco``; return the exit status (:data:`EXIT_CODES`)."""
    args_list, verbose = _split_verbose(list(sys.argv[1:] if argv is None else argv))
    _configure_logging(verbose)
    try:
        parser = build_parser(args_list)
        args = parser.parse_args(args_list)
        args.verbose = verbose
        func: CommandFn | None = args.func
        if func is None:
            parser.print_help()
            return 0 if not args_list else 2
        return func(args)
    except CoCoError as exc:
        if verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"coco: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("coco: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
