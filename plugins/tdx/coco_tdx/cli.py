# SPDX-License-Identifier: Apache-2.0
"""The ``coco tdx`` subcommands.

Contract with the core CLI: :func:`configure_parser` adds subcommands to the
``coco tdx`` parser; every leaf sets ``func`` to a handler taking the parsed
namespace and returning the exit code. User errors are raised as
:class:`~coco_core.errors.CoCoError`, which the core prints as one line.

- ``coco tdx quote show FILE [--format text|json]``
- ``coco tdx qgs-serve --socket PATH --quotes DIR [--mode ...]`` (development stand-in)
- ``coco tdx qgs-get-quote (--socket PATH | --vsock CID:PORT) REPORT_FILE [-o OUT]``
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import types
from pathlib import Path
from typing import Any

from coco_core.plugin import CoCoError

__all__ = ["configure_parser"]

#: REPORTMACSTRUCT.report_data is at offset 128, 64 bytes, in a TDREPORT
#: (TDX module ABI, TDREPORT_STRUCT; testdata/SOURCES.md "TDREPORTs").
_TDREPORT_REPORT_DATA = slice(128, 192)
#: go-tdx-guest abi.go: ``AttestationKeyType = 2 // (ECDSA-256-with-P-256 curve)``;
#: sgx_quote_3.h ``sgx_attestation_algorithm_id_t`` adds 3 = ECDSA P-384.
_KEY_TYPES = {2: "ECDSA-256-with-P-256", 3: "ECDSA-384-with-P-384"}
_BODY_TYPES = {2: "TD 1.0", 3: "TD 1.5"}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``quote``, ``qgs-serve`` and ``qgs-get-quote`` subcommands to ``coco tdx``."""
    from coco_tdx.qgs.client import DEFAULT_READ_TIMEOUT, DEFAULT_UNIX_PATH
    from coco_tdx.qgs.dev import DevQgsMode, MalformedKind
    from coco_tdx.qgs.wire import QgsMsgError

    sub = parser.add_subparsers(dest="tdx_command", metavar="COMMAND", required=True)

    quote = sub.add_parser("quote", help="inspect TDX quotes", description="Inspect TDX quotes.")
    quote_sub = quote.add_subparsers(dest="tdx_quote_command", metavar="COMMAND", required=True)
    show = quote_sub.add_parser(
        "show",
        help="decode a TDX quote file (v4 or v5)",
        description="Decode a TDX quote; its size comes from the structure, "
        "so padded files are fine.",
    )
    show.add_argument("file", metavar="FILE", type=Path, help="quote file")
    show.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    show.set_defaults(func=_cmd_quote_show)

    serve = sub.add_parser(
        "qgs-serve",
        help="run a DEVELOPMENT stand-in for Intel's QGS (serves recorded quotes)",
        description="Run a development stand-in for Intel's QGS on a unix socket. It answers "
        "GET_QUOTE requests with recorded real quotes; it does not sign anything. On a TDX "
        "host use the real QGS (tdx-qgs) instead.",
    )
    serve.add_argument("--socket", required=True, type=Path, metavar="PATH", help="unix socket")
    serve.add_argument(
        "--quotes", required=True, type=Path, metavar="DIR", help="directory of quote files"
    )
    serve.add_argument("--mode", choices=[m.value for m in DevQgsMode], default=DevQgsMode.OK.value)
    serve.add_argument(
        "--malformed",
        choices=[k.value for k in MalformedKind],
        default=MalformedKind.QUOTE_SIZE.value,
        help="defect used by --mode malformed",
    )
    serve.add_argument("--delay", type=float, default=0.0, metavar="S", help="for --mode delay")
    serve.add_argument(
        "--error-code",
        type=_int_auto,
        default=int(QgsMsgError.UNEXPECTED),
        metavar="N",
        help="for --mode error (default 0x12001, QGS_MSG_ERROR_UNEXPECTED)",
    )
    serve.set_defaults(func=_cmd_qgs_serve)

    get = sub.add_parser(
        "qgs-get-quote",
        help="ask a QGS for a quote of a TDREPORT",
        description="Send a TDREPORT to a QGS (real or development) and receive the quote.",
    )
    where = get.add_mutually_exclusive_group()
    where.add_argument(
        "--socket",
        type=Path,
        metavar="PATH",
        help=f"QGS unix socket (default {DEFAULT_UNIX_PATH})",
    )
    where.add_argument("--vsock", metavar="CID:PORT", help="QGS on AF_VSOCK, e.g. 2:4050")
    get.add_argument("report", metavar="REPORT_FILE", type=Path, help="1024-byte TDREPORT")
    get.add_argument("-o", "--output", type=Path, metavar="OUT", help="write the quote here")
    get.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_READ_TIMEOUT,
        metavar="S",
        help="seconds to wait for the response",
    )
    get.add_argument(
        "--accept-minor0",
        action="store_true",
        help="accept protocol 1.0 responses (QGS before DCAP 1.21)",
    )
    get.set_defaults(func=_cmd_qgs_get_quote)


def _int_auto(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (e.g. 0x12001)") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CoCoError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _cmd_quote_show(args: argparse.Namespace) -> int:
    from coco_tdx.quote import Quote

    data = _read(args.file)
    quote = Quote.from_bytes(data)
    trailing = data[quote.size :]
    if args.format == "json":
        out: dict[str, Any] = {"file": str(args.file), "file_length": len(data)}
        out["trailing_bytes"] = len(trailing)
        out.update(quote.to_dict())
        print(json.dumps(out, indent=2))
        return 0
    body = quote.body
    h = quote.header
    rows: list[tuple[str, str]] = [
        ("file", str(args.file)),
        ("file length", str(len(data))),
        ("size", f"{quote.size} (from the structure)"),
        ("trailing bytes", _trailing(trailing)),
        ("version", str(h.version)),
        (
            "attestation key type",
            f"{h.attestation_key_type} ({_KEY_TYPES.get(h.attestation_key_type, 'unknown')})",
        ),
        ("tee type", f"{h.tee_type:#x} (TDX)"),
        ("qe vendor id", h.qe_vendor_id.hex()),
        ("user data", h.user_data.hex()),
        ("body type", f"{int(quote.body_type)} ({_BODY_TYPES.get(quote.body_type, '?')})"),
        ("body size", str(quote.body_size)),
        ("tee_tcb_svn", body.tee_tcb_svn.hex()),
    ]
    if body.tee_tcb_svn2 is not None:
        rows.append(("tee_tcb_svn2", body.tee_tcb_svn2.hex()))
    rows += [
        ("mrseam", body.mrseam.hex()),
        ("mrsignerseam", body.mrsignerseam.hex()),
        ("seam_attributes", body.seam_attributes.hex()),
        ("td_attributes", body.td_attributes.hex()),
        ("xfam", body.xfam.hex()),
        ("mrtd", body.mrtd.hex()),
        ("mrconfigid", body.mrconfigid.hex()),
        ("mrowner", body.mrowner.hex()),
        ("mrownerconfig", body.mrownerconfig.hex()),
        ("rtmr0", body.rtmr0.hex()),
        ("rtmr1", body.rtmr1.hex()),
        ("rtmr2", body.rtmr2.hex()),
        ("rtmr3", body.rtmr3.hex()),
        ("report_data", body.report_data.hex()),
    ]
    if body.mrservicetd is not None:
        rows.append(("mrservicetd", body.mrservicetd.hex()))
    rows.append(("signature data", f"{quote.signature_data_len} bytes"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key + ':':<{width + 1}} {value}")
    return 0


def _trailing(tail: bytes) -> str:
    if not tail:
        return "0"
    what = "all zero" if not tail.strip(b"\0") else "NOT zero"
    return f"{len(tail)} ({what}; ignored)"


def _cmd_qgs_serve(args: argparse.Namespace) -> int:
    from coco_tdx.qgs.dev import DevQgsServer
    from coco_tdx.quote import QuoteError

    try:
        server = DevQgsServer(
            args.socket,
            args.quotes,
            mode=args.mode,
            delay=args.delay,
            error_code=args.error_code,
            malformed=args.malformed,
        )
    except (OSError, ValueError) as exc:
        raise CoCoError(f"qgs-serve: {exc}") from exc
    except QuoteError as exc:
        raise CoCoError(f"qgs-serve: {args.quotes}: {exc}") from exc

    def _on_signal(signum: int, frame: types.FrameType | None) -> None:
        server.request_stop()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server.bind()
        except OSError as exc:
            raise CoCoError(f"qgs-serve: cannot listen on {args.socket}: {exc}") from exc
        print(
            f"coco dev QGS listening on unix:{args.socket} (DEVELOPMENT STAND-IN, not Intel's "
            f"QGS: answers with {len(server.quotes)} recorded quotes; mode {args.mode}); "
            "Ctrl-C to stop",
            flush=True,
        )
        server.serve_forever()
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _cmd_qgs_get_quote(args: argparse.Namespace) -> int:
    from coco_tdx.qgs.client import QgsAddress, QgsClient, UnixAddress, parse_vsock
    from coco_tdx.qgs.dev import TDREPORT_SIZE
    from coco_tdx.quote import Quote

    address: QgsAddress
    if args.vsock is not None:
        try:
            address = parse_vsock(args.vsock)
        except ValueError as exc:
            raise CoCoError(str(exc)) from exc
    elif args.socket is not None:
        address = UnixAddress(str(args.socket))
    else:
        address = UnixAddress()
    if not args.timeout > 0:
        raise CoCoError(f"--timeout is {args.timeout}, expected a positive number of seconds")
    report = _read(args.report)
    if len(report) != TDREPORT_SIZE:
        raise CoCoError(
            f"{args.report} is {len(report)} bytes; expected a {TDREPORT_SIZE}-byte TDREPORT "
            "(sizeof(tdx_report_t)); nothing was sent to the QGS"
        )
    client = QgsClient(address, read_timeout=args.timeout, accept_minor0=args.accept_minor0)
    raw = client.get_quote(report)
    quote = Quote.from_bytes(raw)
    print(f"quote: {quote.size} bytes from {address}, version {quote.version}, "
          f"body type {int(quote.body_type)}")  # fmt: skip
    if len(report) >= _TDREPORT_REPORT_DATA.stop:
        same = quote.body.report_data == report[_TDREPORT_REPORT_DATA]
        print(f"report_data matches the TDREPORT: {'yes' if same else 'no'}")
    if args.output is not None:
        try:
            args.output.write_bytes(raw)
        except OSError as exc:
            raise CoCoError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        print(f"written to {args.output}")
    sys.stdout.flush()
    return 0
