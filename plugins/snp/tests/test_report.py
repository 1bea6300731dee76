# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_snp.report against the real reports in testdata/snp/reports."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coco_core.errors import CoCoError
from coco_snp.certs.certificate import load_certificates
from coco_snp.certs.tcb import Product, TcbLayout
from coco_snp.report import (
    REPORT_SIZE,
    AttestationReport,
    ReportError,
    ReportSignatureError,
    SigningKey,
    load_report,
)

TESTDATA = Path(__file__).resolve().parents[3] / "testdata"
REPORTS = TESTDATA / "snp" / "reports"

# Values from testdata/SOURCES.md. Columns: file, version, guest_svn, policy, vmpl, signing
# key, platform_info (None: not listed), cpuid, reported_tcb, chip_id prefix, firmware, signer.
CASES = [
    (
        "genoa_v3_azure_report.bin",
        3,
        65547,
        0x3001F,
        0,
        SigningKey.VCEK,
        0x24,
        (0x19, 0x11, 1),
        0x541700000000000A,
        "0506ffba875e939c",
        "1.55.40",
        "genoa_v3_azure_vcek.pem",
    ),
    (
        "genoa_v5_oak_report.bin",
        5,
        0,
        0x30000,
        0,
        SigningKey.VCEK,
        0x25,
        (0x19, 0x11, 1),
        0x541900000000000A,
        "d2421d976f95ce0b",
        "1.55.43",
        "genoa_v5_oak_vcek.der",
    ),
    (
        "milan_v2_azure_hcl_report.bin",
        2,
        5,
        0x3001F,
        0,
        SigningKey.VCEK,
        None,
        None,
        0x7308000000000003,
        "19752a447db501a3",
        "1.52.4",
        "milan_v2_azure_vcek_ask_ark.pem",
    ),
    (
        "milan_v2_coco_report.bin",
        2,
        4,
        0x3001F,
        0,
        SigningKey.VCEK,
        None,
        None,
        0x7308000000000003,
        "c38427a30d4c7af9",
        "1.52.4",
        "milan_v2_coco_vcek.der",
    ),
    (
        "milan_v2_gsg_report.bin",
        2,
        0,
        0xB0000,
        0,
        SigningKey.VCEK,
        0x1,
        None,
        0x4405000000000002,
        "3ac3fe21e13fb099",
        "1.49.3",
        "milan_v2_gsg_vcek.der",
    ),
    (
        "milan_v2_virtee_report.hex",
        2,
        0,
        0x30000,
        0,
        SigningKey.VCEK,
        None,
        None,
        0x7308000000000003,
        "d49554ec717f4e5b",
        "1.52.4",
        "milan_v2_virtee_vcek.der",
    ),
    (
        "milan_v2_virtee_report.bin",
        2,
        0,
        0x30000,
        0,
        SigningKey.VCEK,
        None,
        None,
        0x7308000000000003,
        "d49554ec717f4e5b",
        "1.52.4",
        "milan_v2_virtee_vcek.der",
    ),
    (
        "milan_v3_coco_vlek_report.bin",
        3,
        0,
        0x30000,
        1,
        SigningKey.VLEK,
        0x27,
        (0x19, 0x01, 1),
        0xD918000000000004,
        "0000000000000000",
        "1.55.29",
        "milan_v3_coco_vlek.der",
    ),
    (
        "milan_v3_oak_report.bin",
        3,
        0,
        0x30000,
        0,
        SigningKey.VCEK,
        0x25,
        (0x19, 0x01, 1),
        0xDB18000000000004,
        "a3fdc2c64dc299ab",
        "1.55.29",
        "milan_v3_oak_vcek.der",
    ),
    (
        "turin_v5_oak_report.bin",
        5,
        0,
        0x30000,
        0,
        SigningKey.VCEK,
        0x67,
        (0x1A, 0x02, 1),
        0x4700000002000100,
        "3b42092f69c656d3",
        "1.55.61",
        "turin_v5_oak_vcek.der",
    ),
]


def _load(name: str) -> AttestationReport:
    return load_report((REPORTS / name).read_bytes())


def test_every_report_file_is_covered() -> None:
    """The table lists every report in testdata/snp/reports."""
    names = {p.name for p in REPORTS.iterdir() if "report" in p.name}
    assert names == {c[0] for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_real_report_fields(case: tuple) -> None:  # type: ignore[type-arg]
    """Each real report decodes to the values recorded in SOURCES.md."""
    name, version, svn, policy, vmpl, key, pinfo, cpuid, tcb, chip, fw, _ = case
    r = _load(name)
    assert r.version == version
    assert r.guest_svn == svn
    assert r.policy == policy
    assert r.vmpl == vmpl
    assert r.signing_key is key
    if pinfo is not None:
        assert r.platform_info == pinfo
    if cpuid is None:
        assert r.cpuid is None
    else:
        assert r.cpuid is not None
        assert (r.cpuid.family, r.cpuid.model, r.cpuid.stepping) == cpuid
    assert r.reported_tcb_raw == tcb
    assert r.chip_id.hex().startswith(chip)
    assert str(r.current_version) == fw
    assert r.signature_algo == 1


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_real_report_signature_verifies_with_its_certificate(case: tuple) -> None:  # type: ignore[type-arg]
    """Each report verifies with the first certificate of its paired file."""
    r = _load(case[0])
    cert = load_certificates((REPORTS / case[11]).read_bytes())[0]
    r.verify_signature(cert.public_key())


def test_signature_fails_on_a_flipped_byte() -> None:
    """Changing one signed byte makes the signature fail with a clear message."""
    raw = bytearray((REPORTS / "milan_v2_gsg_report.bin").read_bytes())
    raw[0x50] ^= 1
    cert = load_certificates((REPORTS / "milan_v2_gsg_vcek.der").read_bytes())[0]
    with pytest.raises(ReportSignatureError, match=r"\[0, 0x2A0\)"):
        AttestationReport.from_bytes(bytes(raw)).verify_signature(cert.public_key())


def test_signature_fails_with_another_vcek() -> None:
    """A different chip's VCEK does not verify the report."""
    cert = load_certificates((REPORTS / "milan_v2_coco_vcek.der").read_bytes())[0]
    assert not _load("milan_v2_gsg_report.bin").signature_verifies(cert.public_key())


def test_signature_rejects_an_rsa_key() -> None:
    """An RSA key (the ASK) is rejected naming the expected key type."""
    ask = load_certificates((TESTDATA / "snp" / "certs" / "ask_milan.pem").read_bytes())[0]
    with pytest.raises(ReportSignatureError, match="EC P-384"):
        _load("milan_v2_gsg_report.bin").verify_signature(ask.public_key())


def test_turin_report_uses_the_turin_layout() -> None:
    """CPUID family 0x1A selects Turin and its TCB layout."""
    r = _load("turin_v5_oak_report.bin")
    assert r.product is Product.TURIN
    assert r.reported_tcb is not None
    assert r.reported_tcb.layout is TcbLayout.TURIN
    assert (r.reported_tcb.fmc, r.reported_tcb.boot_loader, r.reported_tcb.snp) == (0, 1, 2)
    assert r.reported_tcb.microcode == 71
    assert r.chip_id_significant.hex() == "3b42092f69c656d3"
    assert not any(r.chip_id[8:])


def test_v2_report_product_is_unknown_until_given() -> None:
    """A version-2 report has no CPUID, so TCBs stay undecoded until a product is given."""
    r = _load("milan_v2_gsg_report.bin")
    assert r.product is None
    assert r.reported_tcb is None
    assert "no CPUID" in r.product_source
    m = r.with_product(Product.MILAN)
    assert m.reported_tcb is not None
    assert (m.reported_tcb.boot_loader, m.reported_tcb.snp, m.reported_tcb.microcode) == (2, 5, 68)
    assert "caller" in m.product_source


def test_cpuid_wins_and_conflicting_product_is_an_error() -> None:
    """Giving Milan for a Turin report raises naming both products."""
    with pytest.raises(ReportError, match=r"Milan.*Turin"):
        load_report((REPORTS / "turin_v5_oak_report.bin").read_bytes(), product=Product.MILAN)


def test_coco_report_current_tcb_differs_from_reported() -> None:
    """milan_v2_coco has current ucode 206 but reported ucode 115."""
    r = _load("milan_v2_coco_report.bin").with_product(Product.MILAN)
    assert r.current_tcb is not None
    assert r.reported_tcb is not None
    assert (r.current_tcb.microcode, r.reported_tcb.microcode) == (206, 115)


def test_vlek_report_flags() -> None:
    """The VLEK report has signing key 1 and an all-zero chip id."""
    r = _load("milan_v3_coco_vlek_report.bin")
    assert r.signing_key_raw == 1
    assert r.chip_id_is_zero


def test_hcl_container_and_raw_give_the_same_report() -> None:
    """The HCL container's report is bytes [0x20, 0x4C0)."""
    hcl = (REPORTS / "milan_v2_azure_hcl_report.bin").read_bytes()
    assert load_report(hcl).raw == hcl[0x20:0x4C0]


def test_truncated_hcl_container_is_an_error() -> None:
    """An HCLA container too short to hold a report is rejected with its length."""
    with pytest.raises(ReportError, match="HCL report container is 100 bytes"):
        load_report(b"HCLA" + bytes(96))


def test_hex_text_with_whitespace_and_prefix() -> None:
    """Hex text may have a 0x prefix, newlines and spaces."""
    raw = (REPORTS / "milan_v2_virtee_report.bin").read_bytes()
    text = "0x" + "\n".join(raw[i : i + 32].hex() + " " for i in range(0, len(raw), 32))
    assert load_report(text).raw == raw
    assert load_report((REPORTS / "milan_v2_virtee_report.hex").read_text()).raw == raw


def test_wrong_length_names_the_length() -> None:
    """A 100-byte buffer is rejected naming 100 and 1184."""
    with pytest.raises(ReportError, match=r"100 bytes.*1184"):
        load_report(b"\x01" * 100)


def test_from_bytes_requires_exact_size() -> None:
    """from_bytes rejects a report with trailing bytes."""
    with pytest.raises(ReportError, match="1185 bytes"):
        AttestationReport.from_bytes(bytes(REPORT_SIZE + 1))


def test_as_dict_is_json_friendly() -> None:
    """as_dict renders TCBs decoded for the product and the product source."""
    d = _load("genoa_v5_oak_report.bin").as_dict()
    assert d["reported_tcb"]["snp"] == 25
    assert d["product"] == "Genoa"
    assert "CPUID" in d["product_source"]


@settings(max_examples=200)
@given(st.binary(min_size=REPORT_SIZE, max_size=REPORT_SIZE))
def test_random_1184_byte_buffers_decode(data: bytes) -> None:
    """Any 1184 bytes decode; signature checks fail only with ReportSignatureError."""
    r = AttestationReport.from_bytes(data)
    r.as_dict()
    cert = load_certificates((REPORTS / "milan_v2_gsg_vcek.der").read_bytes())[0]
    assert not r.signature_verifies(cert.public_key())


@given(
    st.one_of(
        st.binary(max_size=3000),
        st.text(max_size=3000),
        st.binary(max_size=2000).map(lambda b: b"HCLA" + b),
    )
)
def test_load_report_raises_only_documented_errors(data: bytes | str) -> None:
    """load_report on arbitrary input returns a report or raises a CoCoError."""
    with contextlib.suppress(CoCoError):
        load_report(data)


def _field(raw: bytes, offset: int, value: bytes) -> bytes:
    return raw[:offset] + value + raw[offset + len(value) :]


GOOD = (REPORTS / "milan_v3_oak_report.bin").read_bytes()  # version 3, policy 0x30000

# (what breaks, offset, bytes written, the problem named); each is one step outside the spec
BROKEN = [
    ("version 1", 0x00, (1).to_bytes(4, "little"), "VERSION is 1"),
    ("version 6", 0x00, (6).to_bytes(4, "little"), "VERSION is 6"),
    ("signature_algo 2", 0x34, (2).to_bytes(4, "little"), "SIGNATURE_ALGO is 2"),
    ("policy bit 17 clear", 0x08, (0x10000).to_bytes(8, "little"), "bit 17 clear"),
    ("policy bit 26", 0x08, (0x30000 | 1 << 26).to_bytes(8, "little"), "bits 63:26"),
    ("flags bit 5", 0x48, (1 << 5).to_bytes(4, "little"), "FLAGS 0x20"),
    ("signing key 2", 0x48, (2 << 2).to_bytes(4, "little"), "SIGNING_KEY is 2"),
    ("reserved 0x04C", 0x4F, b"\x01", "0x04C..0x050"),
    ("reserved 0x18B", 0x18B, b"\x01", "0x18B..0x1A0"),
    ("reserved 0x19F", 0x19F, b"\x01", "0x18B..0x1A0"),
    ("reserved 0x1EB", 0x1EB, b"\x01", "0x1EB..0x1EC"),
    ("reserved 0x1EF", 0x1EF, b"\x01", "0x1EF..0x1F0"),
    ("reserved 0x208", 0x208, b"\x01", "0x208..0x2A0"),
    ("reserved 0x29F", 0x29F, b"\x01", "0x208..0x2A0"),
    ("after the signature", 0x330, b"\x01", "0x330..0x4A0"),
    ("last byte", 0x49F, b"\x01", "0x330..0x4A0"),
]


@pytest.mark.parametrize(("label", "offset", "value", "problem"), BROKEN)
def test_bytes_breaking_the_spec_are_not_a_report(
    label: str, offset: int, value: bytes, problem: str
) -> None:
    """Each field one step outside what the spec fixes is named, and load_report refuses it."""
    raw = _field(GOOD, offset, value)
    problems = AttestationReport.from_bytes(raw).format_problems()
    assert any(problem in p for p in problems), problems
    with pytest.raises(ReportError, match="not an SEV-SNP attestation report"):
        load_report(raw)
    assert load_report(raw, strict=False).raw == raw


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (0x00, (4).to_bytes(4, "little")),  # version 4 (2, the lowest: the real v2 reports)
        (0x00, (5).to_bytes(4, "little")),  # version 5: the highest
        (0x48, (1 << 2).to_bytes(4, "little")),  # SIGNING_KEY VLEK
        (0x48, (7 << 2 | 3).to_bytes(4, "little")),  # NONE, MASK_CHIP_KEY, AUTHOR_KEY_EN
        (0x08, ((1 << 26) - 1).to_bytes(8, "little")),  # every policy bit below 26
        (0x188, b"\x19\x01\x01"),  # v3 CPUID bytes are not reserved
        (0x32F, b"\x01"),  # the last byte of S
    ],
)
def test_values_just_inside_the_spec_are_a_report(offset: int, value: bytes) -> None:
    """Boundary values the spec allows leave no format problem."""
    assert AttestationReport.from_bytes(_field(GOOD, offset, value)).format_problems() == ()


def test_every_real_report_is_well_formed() -> None:
    """All the real reports in testdata pass the format checks."""
    for path in REPORTS.glob("*report*"):
        assert load_report(path).format_problems() == (), path.name


def test_load_report_reads_a_path_as_bytes(tmp_path: Path) -> None:
    """A pathlib.Path is read as the file's bytes, whatever its form (raw, HCL, hex)."""
    raw = (REPORTS / "milan_v2_virtee_report.bin").read_bytes()
    assert load_report(REPORTS / "milan_v2_virtee_report.bin").raw == raw
    assert load_report(REPORTS / "milan_v2_virtee_report.hex").raw == raw
    with pytest.raises(ReportError, match=r"load_report: .*missing\.bin: cannot read"):
        load_report(tmp_path / "missing.bin")


def test_load_report_str_that_is_not_hex_names_the_argument() -> None:
    """A str that is a file name, not hex text, is an error naming it and what to pass."""
    with pytest.raises(ReportError, match=r"the str 'report\.bin' is not hex text; pass a pathlib"):
        load_report("report.bin")
