# SPDX-License-Identifier: Apache-2.0
"""The ``coco snp`` subcommands.

Contract with the core CLI: :func:`configure_parser` adds subcommands to the ``coco snp``
parser; every leaf sets ``func=handler`` where ``handler(args) -> int`` prints to stdout and
returns the exit code. User errors raise :class:`SnpCliError` (a ``CoCoError``), which the core
prints as ``coco: error: <message>`` with exit status 1.

Commands::

    coco snp report show FILE [--format text|json] [--product milan|genoa|turin]
    coco snp certs inspect PATH... [--format text|json] [--at ISO-DATE]
    coco snp vcek-for REPORT --certs DIR [--chain DIR]... [--at ISO-DATE]
    coco snp cert-table build --ark F --ask F (--vcek F | --vlek F) -o OUT
    coco snp cert-table show FILE [--format text|json]

``certs inspect`` verifies chains against every certificate given on the command line *plus*
every certificate file in the directories of the given files (so ``inspect vcek.der`` next to
``ask_ark_milan.pem`` just works). Without ``--at`` validity is checked at the current time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from coco_core.plugin import CoCoError
from coco_snp.certs.certificate import CertKind, StoredCertificate, load_certificates
from coco_snp.certs.store import CertificateStore
from coco_snp.certs.table import CertTableKind, build_cert_table, parse_cert_table, required_pages
from coco_snp.certs.tcb import Product, TcbVersion
from coco_snp.report import AttestationReport, load_report

__all__ = ["NoSignerError", "SnpCliError", "configure_parser"]


class SnpCliError(CoCoError):
    """A ``coco snp`` command cannot do what was asked (bad file, bad option value)."""


class NoSignerError(SnpCliError):
    """No certificate in the given directory signs the report."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``coco snp`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="snp_command", metavar="COMMAND", required=True)

    report = sub.add_parser("report", help="attestation reports")
    report_sub = report.add_subparsers(dest="snp_report_command", metavar="COMMAND", required=True)
    show = report_sub.add_parser("show", help="decode an attestation report")
    show.add_argument("file", type=Path, help="raw report, Azure HCL container or hex text")
    _format(show)
    show.add_argument(
        "--product",
        choices=[p.value.lower() for p in Product],
        help="product for TCB decoding when the report has no CPUID (version < 3)",
    )
    show.set_defaults(func=cmd_report_show)

    certs = sub.add_parser("certs", help="AMD certificates")
    certs_sub = certs.add_subparsers(dest="snp_certs_command", metavar="COMMAND", required=True)
    inspect = certs_sub.add_parser("inspect", help="show certificates and verify their chains")
    inspect.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or dirs")
    _format(inspect)
    _at(inspect)
    inspect.set_defaults(func=cmd_certs_inspect)

    vcek = sub.add_parser("vcek-for", help="find the certificate that signs a report")
    vcek.add_argument("report", type=Path, help="raw report, Azure HCL container or hex text")
    vcek.add_argument(
        "--certs",
        type=Path,
        required=True,
        metavar="DIR",
        help="directory of VCEK/VLEK certificates (PEM/DER, bundles allowed)",
    )
    vcek.add_argument(
        "--chain",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra directory of ARK/ASK/ASVK certificates (repeatable)",
    )
    _at(vcek)
    vcek.set_defaults(func=cmd_vcek_for)

    table = sub.add_parser("cert-table", help="GHCB certificate tables")
    table_sub = table.add_subparsers(dest="snp_table_command", metavar="COMMAND", required=True)
    build = table_sub.add_parser("build", help="build a certificate table")
    build.add_argument("--ark", type=Path, required=True, metavar="F")
    build.add_argument(
        "--ask", type=Path, required=True, metavar="F", help="ASK (or the ASVK with --vlek)"
    )
    leaf = build.add_mutually_exclusive_group(required=True)
    leaf.add_argument("--vcek", type=Path, metavar="F")
    leaf.add_argument("--vlek", type=Path, metavar="F")
    build.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    build.set_defaults(func=cmd_cert_table_build)
    tshow = table_sub.add_parser("show", help="parse and show a certificate table")
    tshow.add_argument("file", type=Path)
    _format(tshow)
    tshow.set_defaults(func=cmd_cert_table_show)


def _format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["text", "json"], default="text")


def _at(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--at",
        metavar="ISO-DATE",
        help="verification time, e.g. 2025-06-01 or 2025-06-01T12:00:00Z (UTC)",
    )


def _parse_at(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SnpCliError(
            f"--at {text!r} is not an ISO date; expected e.g. 2025-06-01 or 2025-06-01T12:00:00Z"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SnpCliError(f"{path}: cannot read: {e.strerror}") from None


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


# -- report show ---------------------------------------------------------------------------
def _tcb_line(report: AttestationReport, raw: int) -> str:
    if report.product is None:
        return f"0x{raw:016X} (layout unknown: pass --product)"
    return TcbVersion.from_raw(raw, report.product).describe()


def cmd_report_show(args: argparse.Namespace) -> int:
    """``coco snp report show``."""
    product = None if args.product is None else Product.from_text(args.product)
    report = load_report(_read(args.file), product=product)
    if args.format == "json":
        _print_json({"file": str(args.file), **report.as_dict()})
        return 0
    chip = report.chip_id.hex()
    if report.product is Product.TURIN:
        chip = f"{report.chip_id[:8].hex()} (Turin: only the first 8 bytes are significant)"
    elif report.chip_id_is_zero:
        chip = "all zero (VLEK-signed or MASK_CHIP_ID)"
    lines = [
        f"file:              {args.file}",
        f"version:           {report.version}",
        f"guest_svn:         {report.guest_svn}",
        f"policy:            0x{report.policy:X}",
        f"vmpl:              {report.vmpl}",
        f"signing key:       {report.signing_key_name} (FLAGS bits 4:2 = {report.signing_key_raw})",
        f"platform_info:     0x{report.platform_info:X}",
        f"cpuid:             {report.cpuid if report.cpuid else 'absent (version < 3)'}",
        f"product:           {report.product.value if report.product else 'unknown'} "
        f"({report.product_source})",
        f"reported_tcb:      {_tcb_line(report, report.reported_tcb_raw)}",
        f"current_tcb:       {_tcb_line(report, report.current_tcb_raw)}",
        f"committed_tcb:     {_tcb_line(report, report.committed_tcb_raw)}",
        f"launch_tcb:        {_tcb_line(report, report.launch_tcb_raw)}",
        f"firmware:          current {report.current_version}, committed "
        f"{report.committed_version}",
        f"chip_id:           {chip}",
        f"report_data:       {report.report_data.hex()}",
        f"measurement:       {report.measurement.hex()}",
    ]
    print("\n".join(lines))
    return 0


# -- certs inspect -------------------------------------------------------------------------
def _load_inspect(paths: list[Path]) -> tuple[list[StoredCertificate], CertificateStore]:
    shown = CertificateStore()
    for p in paths:
        if not p.exists():
            raise SnpCliError(f"{p}: no such file or directory")
        shown.load_paths([p])
    store = CertificateStore(list(shown.certificates))
    seen = {c.der for c in store}
    for d in sorted({p.parent for p in paths if p.is_file()}):
        extra = CertificateStore()
        try:
            extra.load_dir(d)
        except CoCoError:
            continue  # a neighbour that is not a certificate must not break inspect
        store.add(c for c in extra if c.der not in seen)
    return list(shown.certificates), store


def cmd_certs_inspect(args: argparse.Namespace) -> int:
    """``coco snp certs inspect``."""
    at = _parse_at(args.at)
    shown, store = _load_inspect(list(args.paths))
    items: list[dict[str, Any]] = []
    for cert in shown:
        status = store.verify_chain(cert, at=at)
        d = cert.as_dict()
        d["chain"] = {
            "ok": status.ok,
            "path": [f"{c.kind.value}:{c.subject_cn}" for c in status.path],
            "signatures_ok": status.signatures_ok,
            "complete": status.complete,
            "time_ok": status.time_ok,
            "at": status.at.isoformat(),
            "problems": list(status.problems),
        }
        items.append(d)
        if args.format == "text":
            print(_cert_text(cert, status.summary()))
    if args.format == "json":
        _print_json(items)
    return 0


def _cert_text(cert: StoredCertificate, chain: str) -> str:
    where = cert.source or "<bytes>"
    if cert.count_in_source > 1:
        where += f" [certificate {cert.index + 1} of {cert.count_in_source}]"
    lines = [
        f"{where}",
        f"  kind:      {cert.kind.value}",
        f"  subject:   CN={cert.subject_cn}",
        f"  issuer:    CN={cert.issuer_cn}",
        f"  product:   {cert.product.value if cert.product else 'unknown'}",
        f"  serial:    {cert.serial}",
        f"  validity:  {cert.not_before.isoformat()} .. {cert.not_after.isoformat()}",
    ]
    a = cert.amd
    if a.present:
        spl = [
            f"{n}={v}"
            for n, v in (
                ("fmcSPL", a.fmc_spl),
                ("blSPL", a.bl_spl),
                ("teeSPL", a.tee_spl),
                ("snpSPL", a.snp_spl),
                ("ucodeSPL", a.ucode_spl),
            )
            if v is not None
        ]
        lines.append(f"  structVersion: {a.struct_version}  productName: {a.product_name}")
        lines.append(f"  SPLs:      {' '.join(spl)}")
        tcb = cert.tcb()
        if tcb is not None:
            lines.append(f"  TCB:       {tcb.describe()}")
        if a.hw_id is not None:
            lines.append(f"  hwID:      {a.hw_id.hex()} ({len(a.hw_id)} bytes)")
        if a.csp_id is not None:
            lines.append(f"  cspID:     {a.csp_id}")
    lines.append(f"  chain:     {chain}")
    return "\n".join(lines)


# -- vcek-for ------------------------------------------------------------------------------
def cmd_vcek_for(args: argparse.Namespace) -> int:
    """``coco snp vcek-for``: print the path of the certificate that signs the report."""
    at = _parse_at(args.at)
    report = load_report(_read(args.report))
    if not args.certs.is_dir():
        raise SnpCliError(f"--certs {args.certs}: not a directory")
    store = CertificateStore()
    store.load_dir(args.certs)
    for d in args.chain:
        store.load_dir(d)
    search = store.find_signer(report, at=at)
    cert = search.certificate
    if cert is None:
        raise NoSignerError(
            f"no certificate in {args.certs} signs {args.report}: {search.reason()}"
        )
    print(cert.source)
    if cert.count_in_source > 1:
        print(
            f"  certificate {cert.index + 1} of {cert.count_in_source} in this bundle "
            f"({cert.kind.value}, CN={cert.subject_cn})"
        )
    else:
        print(f"  {cert.kind.value}, CN={cert.subject_cn}")
    product = report.product or cert.product
    tcb = TcbVersion.from_raw(report.reported_tcb_raw, product) if product else None
    print(
        f"  matched: {report.signing_key_name} signer, reported_tcb "
        f"{tcb.describe() if tcb else hex(report.reported_tcb_raw)}, report signature verified"
    )
    status = store.verify_chain(cert, at=at)
    print(f"  chain: {status.summary()}")
    return 0


# -- cert-table ----------------------------------------------------------------------------
def _pick(path: Path, kinds: tuple[CertKind, ...], option: str) -> StoredCertificate:
    certs = load_certificates(_read(path), source=str(path))
    for cert in certs:
        if cert.kind in kinds:
            return cert
    found = ", ".join(c.kind.value for c in certs)
    want = " or ".join(k.value for k in kinds)
    raise SnpCliError(f"{option} {path}: holds {found}; expected a {want} certificate")


def cmd_cert_table_build(args: argparse.Namespace) -> int:
    """``coco snp cert-table build``."""
    ark = _pick(args.ark, (CertKind.ARK,), "--ark")
    if args.vcek is not None:
        ask = _pick(args.ask, (CertKind.ASK,), "--ask")
        leaf = _pick(args.vcek, (CertKind.VCEK,), "--vcek")
        leaf_kind = CertTableKind.VCEK
    else:
        ask = _pick(args.ask, (CertKind.ASVK, CertKind.ASK), "--ask")
        leaf = _pick(args.vlek, (CertKind.VLEK,), "--vlek")
        leaf_kind = CertTableKind.VLEK
    # ARK, ASK, leaf: the order go-sev-guest abi.CertsFromProto uses. The ASVK goes under the
    # ASK GUID (go-sev-guest abi.AskGUID "Used for the ASVK as well").
    data = build_cert_table(
        [(CertTableKind.ARK, ark.der), (CertTableKind.ASK, ask.der), (leaf_kind, leaf.der)]
    )
    try:
        args.output.write_bytes(data)
    except OSError as e:
        raise SnpCliError(f"-o {args.output}: cannot write: {e.strerror}") from None
    print(
        f"wrote {args.output}: 3 entries (ARK, {ask.kind.value}, {leaf.kind.value}), "
        f"{len(data)} bytes, {required_pages(len(data))} page(s) of 4 KiB"
    )
    return 0


def cmd_cert_table_show(args: argparse.Namespace) -> int:
    """``coco snp cert-table show``."""
    table = parse_cert_table(_read(args.file))
    rows: list[dict[str, Any]] = []
    for e in table.entries:
        row = e.as_dict()
        try:
            cert = load_certificates(e.data)[0]
            row["certificate"] = {
                "kind": cert.kind.value,
                "subject_cn": cert.subject_cn,
                "issuer_cn": cert.issuer_cn,
            }
        except CoCoError as err:
            row["certificate"] = {"error": str(err)}
        rows.append(row)
    if args.format == "json":
        _print_json({"file": str(args.file), **table.as_dict(), "entries": rows})
        return 0
    print(
        f"{args.file}: {len(rows)} entries, table {table.header_size} bytes, "
        f"data ends at {table.data_end} of {table.buffer_size} bytes "
        f"({required_pages(table.data_end)} page(s)); trailing bytes "
        f"{'zero' if table.trailing_zero else 'NOT zero'}"
    )
    for row in rows:
        c = row["certificate"]
        what = c.get("error") or f"{c['kind']} CN={c['subject_cn']} (issuer {c['issuer_cn']})"
        print(
            f"  [{row['index']}] {row['kind'] or 'unknown GUID'} {row['guid']} "
            f"offset={row['offset']} length={row['length']}: {what}"
        )
    return 0
