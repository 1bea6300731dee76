# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_snp.certs.store: loading, extensions, chains and report-signer selection."""

from __future__ import annotations

import contextlib
import datetime as dt
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coco_core.errors import CoCoError
from coco_snp.certs.certificate import (
    AmbiguousCertificateError,
    CertificateError,
    CertificateVerificationError,
    CertKind,
    StoredCertificate,
    load_certificates,
    verify_issued_by,
)
from coco_snp.certs.store import CertificateStore
from coco_snp.certs.tcb import Product, TcbVersion
from coco_snp.report import load_report

TESTDATA = Path(__file__).resolve().parents[3] / "testdata"
REPORTS = TESTDATA / "snp" / "reports"
CERTS = TESTDATA / "snp" / "certs"
PINNED = dt.datetime(2025, 9, 1, tzinfo=dt.UTC)  # every sample, including the VLEK, is valid

SIGNERS = {
    "genoa_v3_azure_report.bin": ("genoa_v3_azure_vcek.pem", 0),
    "genoa_v5_oak_report.bin": ("genoa_v5_oak_vcek.der", 0),
    "milan_v2_azure_hcl_report.bin": ("milan_v2_azure_vcek_ask_ark.pem", 0),
    "milan_v2_coco_report.bin": ("milan_v2_coco_vcek.der", 0),
    "milan_v2_gsg_report.bin": ("milan_v2_gsg_vcek.der", 0),
    "milan_v2_virtee_report.hex": ("milan_v2_virtee_vcek.der", 0),
    "milan_v2_virtee_report.bin": ("milan_v2_virtee_vcek.der", 0),
    "milan_v3_coco_vlek_report.bin": ("milan_v3_coco_vlek.der", 0),
    "milan_v3_oak_report.bin": ("milan_v3_oak_vcek.der", 0),
    "turin_v5_oak_report.bin": ("turin_v5_oak_vcek.der", 0),
}


def _one(path: Path) -> StoredCertificate:
    return load_certificates(path.read_bytes(), source=str(path))[0]


@pytest.fixture(scope="module")
def store() -> CertificateStore:
    s = CertificateStore()
    s.load_dir(REPORTS)
    s.load_dir(CERTS)
    return s


def test_loading_never_leaks_the_serial_zero_warning() -> None:
    """Loading, inspecting and verifying serial-0 VCEKs emits no warning at all."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        s = CertificateStore()
        s.load_dir(REPORTS)
        s.load_dir(CERTS)
        for c in s:
            s.verify_chain(c, at=PINNED)
            c.as_dict()
    assert [str(w.message) for w in seen] == []


def test_to_x509_suppresses_the_warning_on_load() -> None:
    """to_x509 loads a serial-0 VCEK without a warning (or returns None if refused)."""
    cert = _one(REPORTS / "milan_v2_gsg_vcek.der")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        obj = cert.to_x509()
    assert seen == []
    assert obj is None or obj.tbs_certificate_bytes == cert.tbs


def test_vcek_serial_is_zero_and_fields_decode() -> None:
    """The go-sev-guest VCEK has serial 0, CN SEV-VCEK and the SOURCES.md extensions."""
    c = _one(REPORTS / "milan_v2_gsg_vcek.der")
    assert c.serial == 0
    assert c.kind is CertKind.VCEK
    assert (c.subject_cn, c.issuer_cn) == ("SEV-VCEK", "SEV-Milan")
    a = c.amd
    assert a.product_name == "Milan-B0"
    assert (a.bl_spl, a.tee_spl, a.snp_spl, a.ucode_spl) == (2, 0, 5, 68)
    assert a.hw_id is not None
    assert a.hw_id.hex().startswith("3ac3fe21")
    assert len(a.hw_id) == 64
    assert c.product is Product.MILAN
    assert c.not_before == dt.datetime(2022, 9, 24, tzinfo=dt.UTC).replace(
        hour=c.not_before.hour, minute=c.not_before.minute, second=c.not_before.second
    )


def test_vlek_extensions() -> None:
    """The AWS VLEK has a cspID, no hwID, product Milan and SPLs 4/0/24/217."""
    c = _one(REPORTS / "milan_v3_coco_vlek.der")
    assert c.kind is CertKind.VLEK
    assert c.amd.csp_id == "CN=cc-us-east-2.amazonaws.com"
    assert c.amd.hw_id is None
    assert (c.amd.bl_spl, c.amd.tee_spl, c.amd.snp_spl, c.amd.ucode_spl) == (4, 0, 24, 217)
    assert c.issuer_cn == "SEV-VLEK-Milan"


def test_turin_vcek_extensions() -> None:
    """The Turin VCEK has structVersion 1, fmcSPL 0 and an 8-byte hwID."""
    c = _one(REPORTS / "turin_v5_oak_vcek.der")
    assert c.amd.struct_version == 1
    assert c.amd.fmc_spl == 0
    assert c.amd.hw_id == bytes.fromhex("3b42092f69c656d3")
    tcb = c.tcb()
    assert tcb is not None
    assert tcb.raw == 0x4700000002000100


def test_wrapped_hwid_is_unwrapped() -> None:
    """The 'new' tampered VCEK wraps hwID in an OCTET STRING (04 40 ...), read as 64 bytes."""
    c = _one(REPORTS / "milan_coco_vcek_invalid_new.der")
    assert c.amd.hw_id == bytes(range(64))


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("ask_ark_milan.pem", [CertKind.ASK, CertKind.ARK]),
        ("ask_ark_turin.pem", [CertKind.ASK, CertKind.ARK]),
        ("asvk_ark_genoa.pem", [CertKind.ASVK, CertKind.ARK]),
        ("asvk_ark_turin.pem", [CertKind.ASVK, CertKind.ARK]),
        ("ark_genoa.pem", [CertKind.ARK]),
    ],
)
def test_bundle_kinds_in_file_order(name: str, kinds: list[CertKind]) -> None:
    """PEM bundles (LF or CRLF) load in file order and classify by CN."""
    assert [c.kind for c in load_certificates((CERTS / name).read_bytes())] == kinds


def test_crlf_bundle_matches_lf_certificates() -> None:
    """The CRLF Turin bundle holds the same DER as the LF single-cert files."""
    bundle = load_certificates((CERTS / "ask_ark_turin.pem").read_bytes())
    assert bundle[0].der == _one(CERTS / "ask_turin.pem").der
    assert bundle[1].der == _one(CERTS / "ark_turin.pem").der


def test_azure_bundle_is_vcek_ask_ark() -> None:
    """Azure's bundle is VCEK, ASK, ARK and labels say which certificate of the file."""
    certs = load_certificates(
        (REPORTS / "milan_v2_azure_vcek_ask_ark.pem").read_bytes(), source="azure.pem"
    )
    assert [c.kind for c in certs] == [CertKind.VCEK, CertKind.ASK, CertKind.ARK]
    assert "certificate 1 of 3" in certs[0].label


def test_concatenated_der_loads() -> None:
    """Two DER certificates back to back load as two certificates."""
    a = (REPORTS / "milan_v2_gsg_vcek.der").read_bytes()
    b = (REPORTS / "turin_v5_oak_vcek.der").read_bytes()
    assert len(load_certificates(a + b)) == 2


@pytest.mark.parametrize("name", sorted(p.name for p in CERTS.iterdir()))
def test_amd_chain_certificates_verify(store: CertificateStore, name: str) -> None:
    """Every ARK/ASK/ASVK verifies up to its self-signed ARK (RSASSA-PSS SHA-384)."""
    for cert in load_certificates((CERTS / name).read_bytes()):
        status = store.verify_chain(cert, at=PINNED)
        assert status.ok, status.summary()
        assert status.path[-1].kind is CertKind.ARK


@pytest.mark.parametrize("name", sorted({v[0] for v in SIGNERS.values()}))
def test_leaf_chains_verify_at_pinned_time(store: CertificateStore, name: str) -> None:
    """Every real VCEK/VLEK chains to its ASK/ASVK and ARK at a pinned time."""
    status = store.verify_chain(_one(REPORTS / name), at=PINNED)
    assert status.ok, status.summary()
    assert len(status.path) == 3


def test_vlek_expired_after_2025_12_10(store: CertificateStore) -> None:
    """The VLEK sample verifies in 2025 but fails the time check in 2026, naming the expiry."""
    vlek = _one(REPORTS / "milan_v3_coco_vlek.der")
    assert store.verify_chain(vlek, at=dt.datetime(2025, 6, 1, tzinfo=dt.UTC)).ok
    late = store.verify_chain(vlek, at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert late.signatures_ok
    assert late.complete
    assert not late.time_ok
    assert any("expired 2025-12-10" in p for p in late.problems)


@pytest.mark.parametrize(
    "name", ["milan_coco_vcek_invalid_legacy.der", "milan_coco_vcek_invalid_new.der"]
)
def test_tampered_vceks_fail_verification(store: CertificateStore, name: str) -> None:
    """Tampered VCEKs fail the ASK signature check with a message saying so."""
    cert = _one(REPORTS / name)
    status = store.verify_chain(cert, at=PINNED)
    assert not status.ok
    assert not status.signatures_ok
    assert "does not verify" in status.summary()
    ask = _one(CERTS / "ask_milan.pem")
    with pytest.raises(CertificateVerificationError, match="altered"):
        verify_issued_by(cert, ask)


def test_missing_issuer_is_reported() -> None:
    """A VCEK alone has an incomplete chain naming the missing ASK."""
    s = CertificateStore()
    s.load_paths([REPORTS / "milan_v2_gsg_vcek.der"])
    status = s.verify_chain(s.certificates[0], at=PINNED)
    assert not status.complete
    assert "ASK 'SEV-Milan'" in status.summary()


@pytest.mark.parametrize(
    ("leaf", "wrong", "right"), [("vcek", "asvk", "ask"), ("vlek", "ask", "asvk")]
)
def test_wrong_issuer_kind_is_not_used(certgen: Any, leaf: str, wrong: str, right: str) -> None:
    """A VCEK signed by an ASVK, or a VLEK by an ASK, never verifies, though names and key match."""
    chain = certgen.make_chain()
    issuer = chain.stored(wrong)  # subject is the leaf's issuer, and its key signed the leaf
    forged_leaf = StoredCertificate.from_der(
        certgen.issue(
            "SEV-VCEK" if leaf == "vcek" else "SEV-VLEK",
            issuer.subject_cn,
            certgen.ec_key("wrong-kind").public_key(),
            certgen.rsa_key(wrong),
            serial=1,
            amd=certgen.vcek_extensions() if leaf == "vcek" else certgen.vlek_extensions(),
        ),
        source=f"{leaf}-by-{wrong}.der",
    )
    s = CertificateStore()
    s.trust(chain.stored("ark"))
    s.add([chain.stored("ask"), chain.stored("asvk"), forged_leaf])
    status = s.verify_chain(forged_leaf)
    assert not status.ok
    assert status.path == (forged_leaf,)
    assert f"{right.upper()} {issuer.subject_cn!r}" in status.summary()
    # just inside: the same leaf issued by the right kind verifies
    assert s.verify_chain(chain.stored(leaf)).ok


def test_forged_root_named_ark_milan_is_not_trusted(forged: Any) -> None:
    """A self-made ARK-Milan and the ASK it signed do not verify: trust is by pinned key."""
    s = CertificateStore()
    s.add([forged.stored("ark"), forged.stored("ask"), forged.stored("vcek")])
    for name in ("ark", "ask", "vcek"):
        status = s.verify_chain(forged.stored(name))
        assert status.signatures_ok
        assert not status.complete
        assert "not one of AMD's pinned roots" in status.summary()
    s.trust(forged.stored("ark"))
    assert s.verify_chain(forged.stored("vcek")).ok


@pytest.mark.parametrize("kind", ["ask", "asvk"])
def test_self_signed_intermediate_is_not_a_root(certgen: Any, kind: str) -> None:
    """A self-signed ASK or ASVK is not a complete chain; AMD's real ASK under its ARK is."""
    cn = "SEV-Milan" if kind == "ask" else "SEV-VLEK-Milan"
    key = certgen.rsa_key(f"self-{kind}")
    cert = StoredCertificate.from_der(certgen.issue(cn, cn, key.public_key(), key))
    s = CertificateStore([cert])
    status = s.verify_chain(cert)
    assert status.signatures_ok
    assert not status.complete
    real = _one(CERTS / ("ask_milan.pem" if kind == "ask" else "asvk_ark_milan.pem"))
    s.add(load_certificates((CERTS / "ark_milan.pem").read_bytes()))
    assert s.verify_chain(real, at=PINNED).ok


def test_every_pin_is_the_key_of_the_real_amd_certificate() -> None:
    """Each of the 9 pins equals the SPKI SHA-256 of the AMD certificate in testdata."""
    from coco_snp.certs.roots import AMD_ROOTS
    from coco_snp.certs.store import spki_sha256

    found = {}
    for path in CERTS.iterdir():
        for cert in load_certificates(path.read_bytes()):
            found[(cert.kind, cert.product)] = spki_sha256(cert)
    assert len(AMD_ROOTS) == 9
    for pin in AMD_ROOTS:
        assert found[(pin.kind, pin.product)] == pin.spki_sha256, pin.subject_cn


def test_pinned_key_in_a_certificate_of_another_kind_does_not_anchor(certgen: Any) -> None:
    """AMD's Milan ASK key inside a certificate claiming to be ARK-Genoa anchors nothing."""
    amd_ask = _one(CERTS / "ask_milan.pem")
    posing = StoredCertificate.from_der(
        certgen.issue("ARK-Genoa", "ARK-Genoa", amd_ask.public_key(), certgen.rsa_key("poser"))
    )
    s = CertificateStore([posing])
    what, why = s.anchor_of(posing)
    assert what is not None
    assert why is not None
    assert "expected the ASK of Milan" in why
    assert not s.verify_chain(posing).complete
    assert s.anchor_of(amd_ask)[1] is None  # the real one, just inside
    genoa_vcek = _one(REPORTS / "genoa_v5_oak_vcek.der")
    s2 = CertificateStore([genoa_vcek, _one(CERTS / "ask_genoa.pem")])
    assert s2.verify_chain(genoa_vcek, at=PINNED).ok  # anchored in the pinned Genoa ASK


def test_store_refuses_to_serve_an_unpinned_vcek(forged: Any, caplog: Any) -> None:
    """for_tcb, vcek_for and the table skip a forged chain's VCEK; the opt-out serves and logs."""
    from coco_snp.service import table_from_store

    certs = [forged.stored(n) for n in ("ark", "ask", "vcek")]
    s = CertificateStore(list(certs))
    assert s.for_tcb(0x7308000000000003, chip_id=bytes(range(64))) is None
    assert s.vcek_for(bytes(range(64)), 0x7308000000000003) is None
    with pytest.raises(CertificateVerificationError, match="no certificate to serve"):
        table_from_store(s)
    lenient = CertificateStore(list(certs), allow_untrusted=True)
    assert lenient.for_tcb(0x7308000000000003, chip_id=bytes(range(64))) is not None
    assert "allow_untrusted=True" in caplog.text
    trusting = CertificateStore(list(certs))
    trusting.trust(forged.stored("ark"))
    assert trusting.for_tcb(0x7308000000000003, chip_id=bytes(range(64))) is not None
    assert table_from_store(trusting)


def test_outer_signature_algorithm_must_equal_tbs_signature(forged: Any) -> None:
    """A signatureAlgorithm differing from tbsCertificate.signature (salt 48 -> 32) is refused."""
    der = bytearray(forged.ask)
    salt = bytes.fromhex("a203020130")  # [2] { INTEGER 48 }: the PSS saltLength
    outer = der.rindex(salt)
    assert der.index(salt) != outer  # the tbs copy comes first
    verify_issued_by(StoredCertificate.from_der(bytes(der)), forged.stored("ark"))  # inside
    der[outer + 4] = 0x20
    with pytest.raises(CertificateVerificationError, match=r"RFC 5280 4\.1\.1\.2"):
        verify_issued_by(StoredCertificate.from_der(bytes(der)), forged.stored("ark"))


def test_validity_bounds_are_inclusive(forged: Any) -> None:
    """Valid at notBefore and notAfter exactly; not one second outside either."""
    cert = forged.stored("ask")
    second = dt.timedelta(seconds=1)
    assert cert.is_valid_at(cert.not_before)
    assert cert.is_valid_at(cert.not_after)
    assert not cert.is_valid_at(cert.not_before - second)
    assert not cert.is_valid_at(cert.not_after + second)


def test_inner_element_overrunning_its_parent_by_one_byte_is_refused() -> None:
    """The tbsCertificate's last field made one byte longer than the tbs raises CertificateError."""
    from coco_snp.certs.der import children, expect

    der = bytearray((REPORTS / "milan_v2_gsg_vcek.der").read_bytes())
    cert = expect(bytes(der), 0, len(der), 0x30, "certificate")
    tbs = children(bytes(der), cert, "certificate")[0]
    last = children(bytes(der), tbs, "tbs")[-1]  # [3] extensions, ends where tbs ends
    assert last.end == tbs.end
    length_at = last.start + 1
    first = der[length_at]
    assert first & 0x80  # long form: 0x82 hi lo
    n = first & 0x7F
    value = int.from_bytes(der[length_at + 1 : length_at + 1 + n], "big")
    der[length_at + 1 : length_at + 1 + n] = (value + 1).to_bytes(n, "big")
    with pytest.raises(
        CertificateError, match=f"ending at {tbs.end + 1}; expected it to end within {tbs.end}"
    ):
        load_certificates(bytes(der))


def test_leaf_on_another_curve_than_p384_is_refused(forged: Any, certgen: Any) -> None:
    """A VCEK whose key is P-256 fails the chain check; the P-384 one beside it passes."""
    p256 = StoredCertificate.from_der(
        certgen.issue(
            "SEV-VCEK",
            "SEV-Milan",
            certgen.ec_key("p256", "secp256r1").public_key(),
            certgen.rsa_key("ask"),
            serial=1,
            amd=certgen.vcek_extensions(),
        )
    )
    s = CertificateStore([forged.stored("ask"), p256])
    s.trust(forged.stored("ark"))
    status = s.verify_chain(p256)
    assert not status.ok
    assert "not EC P-384" in status.summary()
    assert s.verify_chain(forged.stored("vcek")).ok


def test_vlek_report_with_a_chip_id_has_no_signer(store: CertificateStore) -> None:
    """A VLEK-signed report whose CHIP_ID is not all zero is refused; all zero, it is found."""
    raw = bytearray((REPORTS / "milan_v3_coco_vlek_report.bin").read_bytes())
    assert store.find_signer(load_report(bytes(raw)), at=PINNED).certificate is not None
    raw[0x1A0 + 63] = 1  # the last CHIP_ID byte
    search = store.find_signer(load_report(bytes(raw)), at=PINNED)
    assert search.certificate is None
    assert "CHIP_ID is not all zero" in search.reason()


@pytest.mark.parametrize("report_name", sorted(SIGNERS))
def test_signer_for_every_real_report(store: CertificateStore, report_name: str) -> None:
    """Each report's signer is its own certificate, never a tampered one."""
    report = load_report((REPORTS / report_name).read_bytes())
    found = store.signer_for_report(report)
    assert found is not None
    file, index = SIGNERS[report_name]
    assert Path(found.source or "").name == file
    assert found.index == index


def test_signer_rejects_tampered_even_if_it_matches() -> None:
    """A tampered VCEK whose issuer is present is rejected by the chain check."""
    s = CertificateStore()
    s.load_paths([REPORTS / "milan_coco_vcek_invalid_legacy.der", CERTS / "ask_ark_milan.pem"])
    tampered = s.certificates[0]
    assert s.issuer_problem(tampered) is not None
    report = load_report((REPORTS / "milan_v2_coco_report.bin").read_bytes())
    search = s.find_signer(report)
    assert search.certificate is None
    assert "hwID" in search.reason() or "does not verify" in search.reason()


def test_signer_with_pinned_time_rejects_expired_vlek(store: CertificateStore) -> None:
    """With at= after the VLEK expiry the VLEK report has no signer, and the reason says why."""
    report = load_report((REPORTS / "milan_v3_coco_vlek_report.bin").read_bytes())
    search = store.find_signer(report, at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert search.certificate is None
    assert "expired" in search.reason()


def test_signer_none_when_signature_broken(store: CertificateStore) -> None:
    """A report with a corrupted signature has no signer; the reason names the signature."""
    raw = bytearray((REPORTS / "milan_v2_gsg_report.bin").read_bytes())
    raw[0x2A0] ^= 0xFF
    search = store.find_signer(load_report(bytes(raw)))
    assert search.certificate is None
    assert "does not verify" in search.reason()


def test_vcek_for_chip_and_tcb(store: CertificateStore) -> None:
    """vcek_for finds a VCEK by chip id and TCB; a different TCB finds nothing."""
    report = load_report((REPORTS / "milan_v3_oak_report.bin").read_bytes())
    found = store.vcek_for(report.chip_id, report.reported_tcb_raw)
    assert found is not None
    assert Path(found.source or "").name == "milan_v3_oak_vcek.der"
    assert store.vcek_for(report.chip_id, report.reported_tcb_raw + 1) is None


def test_vcek_for_turin_compares_8_bytes(store: CertificateStore) -> None:
    """A Turin VCEK matches on the first 8 chip-id bytes only."""
    report = load_report((REPORTS / "turin_v5_oak_report.bin").read_bytes())
    chip = report.chip_id[:8] + b"\xff" * 56
    found = store.vcek_for(chip, report.reported_tcb)  # type: ignore[arg-type]
    assert found is not None
    assert found.product is Product.TURIN


def test_for_tcb_serves_the_matching_vcek(store: CertificateStore) -> None:
    """for_tcb picks the VCEK for a TCB; the same Milan TCB on several chips is ambiguous."""
    turin = TcbVersion.from_fields(Product.TURIN, fmc=0, boot_loader=0, tee=0, snp=0, microcode=9)
    found = store.for_tcb(turin)
    assert found is not None
    assert Path(found.source or "").name == "turin_virtee_vcek.der"
    with pytest.raises(AmbiguousCertificateError, match="pass chip_id"):
        store.for_tcb(0x7308000000000003)
    chip = load_report((REPORTS / "milan_v2_coco_report.bin").read_bytes()).chip_id
    pick = store.for_tcb(0x7308000000000003, chip_id=chip)
    assert pick is not None
    assert Path(pick.source or "").name == "milan_v2_coco_vcek.der"
    vlek = store.for_tcb(0xD918000000000004, kind=CertKind.VLEK)
    assert vlek is not None
    assert vlek.kind is CertKind.VLEK


def test_no_certificate_in_pem_is_an_error() -> None:
    """A PEM without certificate blocks is rejected with a message naming the form."""
    with pytest.raises(CertificateError, match="no certificate"):
        load_certificates(b"", source="empty.pem")


def test_bad_base64_is_an_error() -> None:
    """A PEM block with invalid base64 raises CertificateError."""
    with pytest.raises(CertificateError, match="base64"):
        load_certificates(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    """A missing path raises CertificateError naming it."""
    with pytest.raises(CertificateError, match=r"nope.pem"):
        CertificateStore().load_paths([tmp_path / "nope.pem"])


def test_truncated_der_is_an_error() -> None:
    """Truncated DER raises CertificateError naming the element."""
    der = (REPORTS / "milan_v2_gsg_vcek.der").read_bytes()
    with pytest.raises(CertificateError, match="length"):
        load_certificates(der[:-10])


@settings(max_examples=200)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_certificate_errors(data: bytes) -> None:
    """Random bytes are rejected with CertificateError only."""
    with contextlib.suppress(CertificateError):
        load_certificates(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 1359), st.integers(1, 255))
def test_bit_flipped_vcek_is_parsed_or_rejected_cleanly(pos: int, xor: int) -> None:
    """A corrupted real VCEK either fails to load with a CoCoError or fails verification."""
    der = bytearray((REPORTS / "milan_v2_gsg_vcek.der").read_bytes())
    der[pos] ^= xor
    try:
        cert = load_certificates(bytes(der))[0]
    except CoCoError:
        return  # rejected cleanly, with coco's own error
    ask = _one(CERTS / "ask_milan.pem")
    with pytest.raises(CertificateVerificationError):
        verify_issued_by(cert, ask)
    s = CertificateStore([cert, ask, _one(CERTS / "ark_milan.pem")])
    assert not s.verify_chain(cert, at=PINNED).ok
