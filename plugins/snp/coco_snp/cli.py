# SPDX-License-Identifier: Apache-2.0
"""The ``coco snp`` subcommands.

Contract with the core CLI: :func:`configure_parser` adds subcommands to the ``coco snp``
parser; every leaf sets ``func=handler`` where ``handler(args) -> int`` prints to stdout and
returns the exit code. User errors raise :class:`SnpCliError` (a ``CoCoError``), which the core
prints as ``coco: error: <message>`` with exit status 1.

Commands::

    coco snp report show FILE [--format text|json] [--product milan|genoa|turin] [--force]
    coco snp certs inspect PATH... [--trust-root FILE]... [--format text|json] [--at ISO-DATE]
    coco snp certs publish DIR --blob FILE (--tcb HEX [--chip-id HEX] | --report FILE) [--vlek]
                           [--trust-root FILE]... [--run CMD] [--no-wait] [--at ISO-DATE]
    coco snp vcek-for REPORT --certs DIR [--chain DIR]... [--trust-root FILE]... [--at ISO-DATE]
    coco snp cert-table build --ark F --ask F (--vcek F | --vlek F) -o OUT
    coco snp cert-table show FILE [--format text|json]

Trust: ``certs inspect``, ``certs publish`` and ``vcek-for`` verify chains against AMD's
pinned roots (:mod:`coco_snp.certs.roots`) and the roots given with ``--trust-root`` only.
The certificates given (files, directories, ``--chain``) are chain material, never trust,
and nothing is read from neighbouring files. ``certs inspect`` exits 1 when a chain is not
verified or an input holds no certificate. Without ``--at`` validity is checked now.

``certs publish`` is the updater's side of the certificate lock (``KVM_SEV_SNP_ENABLE_REQ_CERTS``,
:mod:`coco_snp.certs.lock`): it picks the VCEK (or VLEK) of the chip and TCB the platform
reports, checks its chain against the pinned roots, builds the GHCB table (leaf, ASK or
ASVK, ARK) and replaces the blob under the exclusive lock, atomically; ``--run`` runs the
firmware change (e.g. ``snphost commit``) under the same lock, before the replace.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

from coco_core.plugin import CoCoError
from coco_snp.certs.certificate import CertKind, StoredCertificate, load_certificates
from coco_snp.certs.lock import publish_blob
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
    show.add_argument(
        "--force",
        action="store_true",
        help="show it even if it breaks what the spec fixes (it is then not a report)",
    )
    show.set_defaults(func=cmd_report_show)

    certs = sub.add_parser("certs", help="AMD certificates")
    certs_sub = certs.add_subparsers(dest="snp_certs_command", metavar="COMMAND", required=True)
    inspect = certs_sub.add_parser("inspect", help="show certificates and verify their chains")
    inspect.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or dirs")
    _trust_root(inspect)
    _format(inspect)
    _at(inspect)
    inspect.set_defaults(func=cmd_certs_inspect)

    publish = certs_sub.add_parser(
        "publish", help="replace the certificate blob a VMM serves, under the exclusive lock"
    )
    publish.add_argument("dir", type=Path, metavar="DIR", help="directory of certificates")
    publish.add_argument(
        "--blob", type=Path, required=True, metavar="FILE", help="the blob the VMMs read"
    )
    source = publish.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--tcb", metavar="HEX", help="the platform's reported TCB (SNP_PLATFORM_STATUS), a u64"
    )
    source.add_argument(
        "--report", type=Path, metavar="FILE", help="take TCB and chip id from a fresh report"
    )
    publish.add_argument("--chip-id", metavar="HEX", help="the chip id (64 bytes) with --tcb")
    publish.add_argument("--vlek", action="store_true", help="publish the VLEK, not a VCEK")
    publish.add_argument(
        "--run",
        metavar="CMD",
        help="run CMD under the exclusive lock before the replace (the firmware change)",
    )
    publish.add_argument(
        "--no-wait",
        action="store_true",
        help="fail at once if a VMM holds the shared lock, instead of waiting",
    )
    _trust_root(publish)
    _at(publish)
    publish.set_defaults(func=cmd_certs_publish)

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
    _trust_root(vcek)
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


def _trust_root(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-root",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="also trust this root certificate (a test chain); AMD's roots are pinned",
    )


def _store_with_roots(paths: list[Path]) -> CertificateStore:
    """An empty store trusting the ``--trust-root`` certificates besides AMD's pins."""
    store = CertificateStore()
    for path in paths:
        certs = load_certificates(_read(path), source=str(path))
        for cert in certs:
            store.trust(cert)
    return store


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
    report = load_report(_read(args.file), product=product, strict=not args.force)
    problems = report.format_problems()
    if args.format == "json":
        _print_json({"file": str(args.file), "format_problems": list(problems), **report.as_dict()})
        return 0
    chip = report.chip_id.hex()
    if report.product is Product.TURIN:
        chip = f"{report.chip_id[:8].hex()} (Turin: only the first 8 bytes are significant)"
    elif report.chip_id_is_zero:
        chip = "all zero (VLEK-signed or MASK_CHIP_ID)"
    lines = [f"NOT a well-formed report (--force): {problem}" for problem in problems]
    lines += [
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
def _load_inspect(
    paths: list[Path], roots: list[Path]
) -> tuple[list[StoredCertificate], CertificateStore]:
    """The certificates to show, and a store of them trusting only the pins and ``roots``.

    Nothing beside the given paths is read: a neighbouring file is not trust material.
    """
    store = _store_with_roots(roots)
    shown: list[StoredCertificate] = []
    for p in paths:
        if not p.exists():
            raise SnpCliError(f"{p}: no such file or directory")
        loaded = CertificateStore().load_paths([p])
        if not loaded:
            raise SnpCliError(f"{p}: holds no certificate; expected PEM or DER certificates")
        shown += loaded
    seen = {c.der for c in store}
    store.add(c for c in shown if c.der not in seen)
    return shown, store


def cmd_certs_inspect(args: argparse.Namespace) -> int:
    """``coco snp certs inspect``: exits 1 unless every certificate's chain is verified."""
    at = _parse_at(args.at)
    shown, store = _load_inspect(list(args.paths), list(args.trust_root))
    items: list[dict[str, Any]] = []
    failed: list[str] = []
    for cert in shown:
        status = store.verify_chain(cert, at=at)
        d = cert.as_dict()
        d["chain"] = {
            "ok": status.ok,
            "path": [f"{c.kind.value}:{c.subject_cn}" for c in status.path],
            "signatures_ok": status.signatures_ok,
            "complete": status.complete,
            "anchor": status.anchor,
            "time_ok": status.time_ok,
            "at": status.at.isoformat(),
            "problems": list(status.problems),
        }
        items.append(d)
        if not status.ok:
            failed.append(cert.label)
        if args.format == "text":
            print(_cert_text(cert, status.summary()))
    if args.format == "json":
        _print_json(items)
    if failed:
        raise SnpCliError(
            f"chain not verified for {len(failed)} of {len(shown)} certificate(s): "
            + ", ".join(failed)
        )
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
    store = _store_with_roots(list(args.trust_root))
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


# -- certs publish -------------------------------------------------------------------------
def _hex_int(option: str, text: str, bits: int) -> int:
    try:
        value = int(text, 16)
    except ValueError:
        raise SnpCliError(
            f"{option} {text!r} is not hex; expected e.g. 0x7308000000000003"
        ) from None
    if not 0 <= value < 1 << bits:
        raise SnpCliError(f"{option} {text!r} does not fit {bits} bits")
    return value


def _platform(args: argparse.Namespace) -> tuple[int, bytes | None]:
    """The reported TCB and chip id the platform signs with (from --report or the options)."""
    if args.report is not None:
        if args.chip_id is not None:
            raise SnpCliError("--chip-id goes with --tcb; --report carries its own CHIP_ID")
        report = load_report(_read(args.report))
        chip = None if report.chip_id_is_zero else report.chip_id
        return report.reported_tcb_raw, chip
    tcb = _hex_int("--tcb", args.tcb, 64)
    if args.chip_id is None:
        return tcb, None
    try:
        chip = bytes.fromhex(args.chip_id.removeprefix("0x"))
    except ValueError:
        raise SnpCliError(f"--chip-id {args.chip_id!r} is not hex") from None
    if len(chip) != 64:
        raise SnpCliError(f"--chip-id is {len(chip)} bytes; expected 64 (the report CHIP_ID)")
    return tcb, chip


def cmd_certs_publish(args: argparse.Namespace) -> int:
    """``coco snp certs publish``: check, build and atomically replace the certificate blob."""
    at = _parse_at(args.at) or dt.datetime.now(dt.UTC)
    tcb, chip = _platform(args)
    if not args.dir.is_dir():
        raise SnpCliError(f"{args.dir}: not a directory; expected a directory of certificates")
    store = _store_with_roots(list(args.trust_root))
    store.load_dir(args.dir)
    kind = CertKind.VLEK if args.vlek else CertKind.VCEK
    if kind is CertKind.VCEK and chip is None:
        raise SnpCliError("a VCEK is chip-specific: give --chip-id, or a --report with CHIP_ID")
    leaf = store.for_tcb(tcb, chip_id=chip if kind is CertKind.VCEK else None, kind=kind)
    if leaf is None:
        candidates = store.of_kind(kind)
        reasons = "; ".join(
            f"{c.label}: {store.untrusted_reason(c) or 'SPLs or hwID differ'}" for c in candidates
        )
        raise SnpCliError(
            f"no {kind.value} in {args.dir} matches reported TCB 0x{tcb:016X}"
            + ("" if chip is None else f" and chip {chip.hex()[:16]}...")
            + f" with a chain to a trusted root ({reasons or 'none there'})"
        )
    status = store.verify_chain(leaf, at=at)
    if not status.ok:
        raise SnpCliError(f"{leaf.label}: chain not verified: {'; '.join(status.problems)}")
    slots = (
        CertTableKind.VCEK if kind is CertKind.VCEK else CertTableKind.VLEK,
        CertTableKind.ASK,
        CertTableKind.ARK,
    )
    table = build_cert_table([(slot, c.der) for slot, c in zip(slots, status.path, strict=False)])

    def firmware_change() -> None:
        if args.run is None:
            return
        done = subprocess.run(shlex.split(args.run), check=False)
        if done.returncode != 0:
            raise SnpCliError(
                f"--run {args.run!r} exited {done.returncode}; the old blob stays in place"
            )

    publish_blob(args.blob, table, wait=not args.no_wait, during=firmware_change)
    chain = " -> ".join(f"{c.kind.value}({c.subject_cn})" for c in status.path)
    print(
        f"published {args.blob}: {chain}, {len(table)} bytes "
        f"({required_pages(len(table))} page(s)), anchored in {status.anchor}"
    )
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
