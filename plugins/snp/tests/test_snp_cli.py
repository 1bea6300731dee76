# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_snp.cli: the ``coco snp`` subcommands, run through their handlers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from coco_core.errors import CoCoError
from coco_snp.certs.table import CertTableError, CertTableKind, parse_cert_table
from coco_snp.cli import NoSignerError, SnpCliError, configure_parser

TESTDATA = Path(__file__).resolve().parents[3] / "testdata"
REPORTS = TESTDATA / "snp" / "reports"
CERTS = TESTDATA / "snp" / "certs"

SIGNERS = {
    "genoa_v3_azure_report.bin": "genoa_v3_azure_vcek.pem",
    "genoa_v5_oak_report.bin": "genoa_v5_oak_vcek.der",
    "milan_v2_azure_hcl_report.bin": "milan_v2_azure_vcek_ask_ark.pem",
    "milan_v2_coco_report.bin": "milan_v2_coco_vcek.der",
    "milan_v2_gsg_report.bin": "milan_v2_gsg_vcek.der",
    "milan_v2_virtee_report.hex": "milan_v2_virtee_vcek.der",
    "milan_v2_virtee_report.bin": "milan_v2_virtee_vcek.der",
    "milan_v3_coco_vlek_report.bin": "milan_v3_coco_vlek.der",
    "milan_v3_oak_report.bin": "milan_v3_oak_vcek.der",
    "turin_v5_oak_report.bin": "turin_v5_oak_vcek.der",
}


def run(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="coco snp")
    configure_parser(parser)
    args = parser.parse_args([str(a) for a in argv])
    result: int = args.func(args)
    return result


def test_report_show_turin_text(capsys: pytest.CaptureFixture[str]) -> None:
    """report show decodes Turin TCBs with the Turin layout and says why."""
    assert run("report", "show", REPORTS / "turin_v5_oak_report.bin") == 0
    out = capsys.readouterr().out
    assert "turin: FMC 0, BL 1, TEE 0, SNP 2, ucode 71" in out
    assert "Turin (from the report CPUID" in out
    assert "current 1.55.61" in out
    assert "only the first 8 bytes" in out


def test_report_show_v2_needs_product(capsys: pytest.CaptureFixture[str]) -> None:
    """A v2 report shows raw TCBs until --product is given."""
    run("report", "show", REPORTS / "milan_v2_gsg_report.bin")
    assert "layout unknown" in capsys.readouterr().out
    run("report", "show", REPORTS / "milan_v2_gsg_report.bin", "--product", "milan")
    out = capsys.readouterr().out
    assert "BL 2, TEE 0, SNP 5, ucode 68" in out
    assert "given by the caller" in out


def test_report_show_json_hcl(capsys: pytest.CaptureFixture[str]) -> None:
    """JSON output of the Azure HCL container carries the embedded report's fields."""
    run(
        "report",
        "show",
        REPORTS / "milan_v2_azure_hcl_report.bin",
        "--format",
        "json",
        "--product",
        "milan",
    )
    data = json.loads(capsys.readouterr().out)
    assert data["guest_svn"] == 5
    assert data["reported_tcb"]["raw"] == "0x7308000000000003"
    assert data["chip_id"].startswith("19752a447db501a3")


def test_report_show_bad_file_is_a_user_error(tmp_path: Path) -> None:
    """A non-report file raises a CoCoError naming the length."""
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(CoCoError, match="10 bytes"):
        run("report", "show", bad)
    with pytest.raises(SnpCliError, match="cannot read"):
        run("report", "show", tmp_path / "missing.bin")


@pytest.mark.parametrize("report", sorted(SIGNERS))
def test_vcek_for_every_report(report: str, capsys: pytest.CaptureFixture[str]) -> None:
    """vcek-for prints the path of each report's own certificate first."""
    assert run("vcek-for", REPORTS / report, "--certs", REPORTS, "--chain", CERTS) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert Path(first).name == SIGNERS[report]


def test_vcek_for_bundle_names_the_certificate(capsys: pytest.CaptureFixture[str]) -> None:
    """For the Azure bundle vcek-for says which certificate of the bundle signs."""
    run("vcek-for", REPORTS / "milan_v2_azure_hcl_report.bin", "--certs", REPORTS)
    out = capsys.readouterr().out
    assert "certificate 1 of 3 in this bundle" in out
    assert "verified: VCEK(SEV-VCEK) -> ASK(SEV-Milan) -> ARK(ARK-Milan)" in out


def test_vcek_for_never_picks_tampered(tmp_path: Path) -> None:
    """With only the tampered VCEKs, vcek-for fails with the reasons."""
    for name in ("milan_coco_vcek_invalid_legacy.der", "milan_coco_vcek_invalid_new.der"):
        (tmp_path / name).write_bytes((REPORTS / name).read_bytes())
    with pytest.raises(NoSignerError, match="hwID"):
        run("vcek-for", REPORTS / "milan_v2_coco_report.bin", "--certs", tmp_path)


def test_vcek_for_pinned_time_rejects_expired_vlek() -> None:
    """--at after the VLEK expiry finds no signer and says it expired."""
    with pytest.raises(NoSignerError, match="expired"):
        run(
            "vcek-for",
            REPORTS / "milan_v3_coco_vlek_report.bin",
            "--certs",
            REPORTS,
            "--at",
            "2026-01-01",
        )


def test_bad_at_is_a_user_error() -> None:
    """An unparsable --at names the value and the expected form."""
    with pytest.raises(SnpCliError, match="not an ISO date"):
        run("vcek-for", REPORTS / "milan_v2_gsg_report.bin", "--certs", REPORTS, "--at", "soon")


def test_certs_inspect_text(capsys: pytest.CaptureFixture[str]) -> None:
    """inspect shows kind, SPLs, hwID and the chain verified from the chain given with it."""
    args = ("certs", "inspect", REPORTS / "milan_v2_gsg_vcek.der", CERTS / "ask_ark_milan.pem")
    assert run(*args, "--at", "2025-01-01") == 0
    out = capsys.readouterr().out
    assert "kind:      VCEK" in out
    assert "blSPL=2 teeSPL=0 snpSPL=5 ucodeSPL=68" in out
    assert "hwID:      3ac3fe21" in out
    assert "verified: VCEK(SEV-VCEK) -> ASK(SEV-Milan) -> ARK(ARK-Milan)" in out
    assert "anchored in AMD" in out


def test_certs_inspect_never_reads_neighbouring_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A VCEK next to its ASK and ARK is not verified unless they are named: exit 1, one line."""
    for name in ("milan_v2_gsg_vcek.der",):
        (tmp_path / name).write_bytes((REPORTS / name).read_bytes())
    (tmp_path / "ask_ark_milan.pem").write_bytes((CERTS / "ask_ark_milan.pem").read_bytes())
    with pytest.raises(SnpCliError, match="chain not verified for 1 of 1"):
        run("certs", "inspect", tmp_path / "milan_v2_gsg_vcek.der", "--at", "2025-01-01")
    assert "ASK 'SEV-Milan'" in capsys.readouterr().out


def test_certs_inspect_forged_root_is_not_verified(
    tmp_path: Path, forged: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A self-made ARK-Milan and its ASK exit 1; with --trust-root the same chain verifies."""
    ark, ask = tmp_path / "ark.pem", tmp_path / "ask.pem"
    ark.write_bytes(forged.pem("ark"))
    ask.write_bytes(forged.pem("ask"))
    with pytest.raises(SnpCliError, match="chain not verified for 2 of 2"):
        run("certs", "inspect", ark, ask)
    assert "chain: verified" not in capsys.readouterr().out
    assert run("certs", "inspect", ark, ask, "--trust-root", ark) == 0
    assert "anchored in trust root 'ARK-Milan'" in capsys.readouterr().out


def test_certs_inspect_input_without_certificates_is_an_error(tmp_path: Path) -> None:
    """An empty directory, or a file without a certificate, exits 1 naming it."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(SnpCliError, match="holds no certificate"):
        run("certs", "inspect", tmp_path / "empty")
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate")
    with pytest.raises(CoCoError, match=r"junk\.pem"):
        run("certs", "inspect", junk)


def test_certs_inspect_json_tampered_and_vlek(capsys: pytest.CaptureFixture[str]) -> None:
    """JSON inspect reports the tampered VCEK's failed signature, the VLEK's cspID, and exits 1."""
    with pytest.raises(SnpCliError, match="chain not verified for 1 of 5"):
        run(
            "certs",
            "inspect",
            REPORTS / "milan_coco_vcek_invalid_legacy.der",
            REPORTS / "milan_v3_coco_vlek.der",
            CERTS / "asvk_ark_milan.pem",
            CERTS / "ask_milan.pem",
            "--format",
            "json",
            "--at",
            "2025-06-01",
        )
    items = json.loads(capsys.readouterr().out)
    tampered, vlek = items[0], items[1]
    assert tampered["chain"]["signatures_ok"] is False
    assert vlek["extensions"]["csp_id"] == "CN=cc-us-east-2.amazonaws.com"
    assert vlek["chain"]["ok"] is True


def test_certs_inspect_directory(capsys: pytest.CaptureFixture[str]) -> None:
    """inspect accepts a directory and lists every certificate in it, all verified."""
    assert run("certs", "inspect", CERTS, "--format", "json") == 0
    items = json.loads(capsys.readouterr().out)
    assert len(items) == 18
    assert all(i["chain"]["ok"] for i in items)


def test_cert_table_build_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """build writes ARK, ASK, VCEK entries; show lists them with certificate names."""
    out = tmp_path / "table.bin"
    assert (
        run(
            "cert-table",
            "build",
            "--ark",
            CERTS / "ark_milan.pem",
            "--ask",
            CERTS / "ask_ark_milan.pem",
            "--vcek",
            REPORTS / "milan_v2_gsg_vcek.der",
            "-o",
            out,
        )
        == 0
    )
    table = parse_cert_table(out.read_bytes())
    assert [e.kind for e in table.entries] == [
        CertTableKind.ARK,
        CertTableKind.ASK,
        CertTableKind.VCEK,
    ]
    capsys.readouterr()
    run("cert-table", "show", out)
    text = capsys.readouterr().out
    assert "VCEK CN=SEV-VCEK (issuer SEV-Milan)" in text
    run("cert-table", "show", out, "--format", "json")
    assert json.loads(capsys.readouterr().out)["entries"][1]["certificate"]["kind"] == "ASK"


def test_cert_table_build_vlek_uses_asvk(tmp_path: Path) -> None:
    """With --vlek the ASVK goes under the ASK GUID and the VLEK under its own."""
    out = tmp_path / "t.bin"
    run(
        "cert-table",
        "build",
        "--ark",
        CERTS / "ark_milan.pem",
        "--ask",
        CERTS / "asvk_ark_milan.pem",
        "--vlek",
        REPORTS / "milan_v3_coco_vlek.der",
        "-o",
        out,
    )
    table = parse_cert_table(out.read_bytes())
    assert table.get(CertTableKind.VLEK) is not None


def test_cert_table_build_wrong_kind_is_a_user_error(tmp_path: Path) -> None:
    """Passing a VCEK as --ark names the file, what it holds and what was expected."""
    with pytest.raises(SnpCliError, match="expected a ARK"):
        run(
            "cert-table",
            "build",
            "--ark",
            REPORTS / "milan_v2_gsg_vcek.der",
            "--ask",
            CERTS / "ask_milan.pem",
            "--vcek",
            REPORTS / "milan_v2_gsg_vcek.der",
            "-o",
            tmp_path / "x",
        )


def test_cert_table_show_rejects_garbage(tmp_path: Path) -> None:
    """show on a malformed table raises CertTableError."""
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01" * 30)
    with pytest.raises(CertTableError, match="terminator"):
        run("cert-table", "show", bad)


def _publish_dir(tmp_path: Path) -> Path:
    d = tmp_path / "certs"
    d.mkdir()
    (d / "vcek.der").write_bytes((REPORTS / "milan_v2_coco_vcek.der").read_bytes())
    (d / "ask_ark_milan.pem").write_bytes((CERTS / "ask_ark_milan.pem").read_bytes())
    (d / "other_vcek.der").write_bytes((REPORTS / "milan_v2_virtee_vcek.der").read_bytes())
    return d


def test_certs_publish_picks_the_chip_and_tcb_and_replaces_the_blob(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """publish --report writes leaf, ASK, ARK for that chip and TCB; VMMs then serve it."""
    from coco_core.kvm.vm import GuestMemory
    from coco_core.requests import CertificateRequest
    from coco_core.status import CoCoStatus
    from coco_snp.service import CertificateService

    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"old")
    report = REPORTS / "milan_v2_coco_report.bin"
    assert run("certs", "publish", _publish_dir(tmp_path), "--blob", blob, "--report", report) == 0
    assert "published" in capsys.readouterr().out
    table = parse_cert_table(blob.read_bytes())
    assert [e.kind for e in table.entries] == [
        CertTableKind.VCEK,
        CertTableKind.ASK,
        CertTableKind.ARK,
    ]
    assert table.entries[0].data == (REPORTS / "milan_v2_coco_vcek.der").read_bytes()
    ram = bytearray(0x10000)
    svc = CertificateService(GuestMemory.from_buffer(0, ram), blob=blob)
    out = svc(CertificateRequest(0x1000, 4), None)
    assert out.status is CoCoStatus.OK
    out.run_after_completion()


def test_certs_publish_refuses_a_tcb_no_vcek_has(tmp_path: Path) -> None:
    """A reported TCB no VCEK matches is an error naming it; the blob stays as it was."""
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"old")
    chip = "c38427a30d4c7af9" + "00" * 56
    with pytest.raises(SnpCliError, match="0x7308000000000004"):
        run(
            "certs", "publish", _publish_dir(tmp_path), "--blob", blob,
            "--tcb", "0x7308000000000004", "--chip-id", chip,
        )  # fmt: skip
    assert blob.read_bytes() == b"old"


def test_certs_publish_refuses_a_forged_chain_unless_trusted(
    tmp_path: Path, forged: Any, certgen: Any
) -> None:
    """A VCEK under a self-made ARK-Milan is not published; with --trust-root it is."""
    d = tmp_path / "forged"
    d.mkdir()
    (d / "vcek.der").write_bytes(forged.vcek)
    (d / "chain.pem").write_bytes(forged.pem("ask", "ark"))
    blob = tmp_path / "blob.bin"
    args = ("certs", "publish", d, "--blob", blob, "--tcb", hex(certgen.TCB))
    args += ("--chip-id", certgen.HWID.hex())
    with pytest.raises(SnpCliError, match="not one of AMD's pinned roots"):
        run(*args)
    assert not blob.exists() or blob.read_bytes() == b""
    (tmp_path / "ark.pem").write_bytes(forged.pem("ark"))
    assert run(*args, "--trust-root", tmp_path / "ark.pem") == 0
    assert parse_cert_table(blob.read_bytes()).entries[0].data == forged.vcek


def test_certs_publish_runs_the_firmware_change_under_the_exclusive_lock(tmp_path: Path) -> None:
    """--run sees the blob exclusively locked; a failing --run leaves the old blob in place."""
    import sys

    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"old")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys\n"
        "from coco_snp.certs.lock import CertificatesBusy, read_certificates_locked\n"
        "try:\n"
        f"    read_certificates_locked({str(blob)!r}, wait=False).release()\n"
        "except CertificatesBusy:\n"
        "    sys.exit(0)\n"
        "sys.exit(5)\n"
    )
    base = ("certs", "publish", _publish_dir(tmp_path), "--blob", blob)
    base += ("--report", REPORTS / "milan_v2_coco_report.bin")
    assert run(*base, "--run", f"{sys.executable} {probe}") == 0
    published = blob.read_bytes()
    assert published != b"old"
    with pytest.raises(SnpCliError, match="exited 3; the old blob stays"):
        run(*base, "--run", f"{sys.executable} -c 'raise SystemExit(3)'")
    assert blob.read_bytes() == published


def test_certs_publish_no_wait_while_a_vmm_holds_the_lock(tmp_path: Path) -> None:
    """--no-wait fails with CertificatesBusy while a VMM holds the shared lock."""
    from coco_snp.certs.lock import CertificatesBusy, read_certificates_locked

    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"old")
    args = ("certs", "publish", _publish_dir(tmp_path), "--blob", blob, "--no-wait")
    args += ("--report", REPORTS / "milan_v2_coco_report.bin")
    with read_certificates_locked(blob), pytest.raises(CertificatesBusy):
        run(*args)
    assert blob.read_bytes() == b"old"


def test_report_show_refuses_random_bytes_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1184 random bytes are not a report (the error says why); --force shows them, warned."""
    import random

    junk = tmp_path / "junk.bin"
    junk.write_bytes(random.Random(7).randbytes(0x4A0))
    with pytest.raises(CoCoError, match="not an SEV-SNP attestation report: VERSION is"):
        run("report", "show", junk)
    assert run("report", "show", junk, "--force") == 0
    assert "NOT a well-formed report (--force): VERSION is" in capsys.readouterr().out
