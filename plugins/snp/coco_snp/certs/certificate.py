# SPDX-License-Identifier: Apache-2.0
"""One AMD SEV-SNP certificate: ARK, ASK, ASVK, VCEK or VLEK, read, classified and verified.

Chains (VCEK Certificate and KDS Interface Specification, AMD pub. 57230; the checks recorded
in ``testdata/SOURCES.md``)::

    ARK (self-signed) -> ASK  -> VCEK      ARK -> ASVK -> VLEK

Every AMD signature here is RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt
(go-sev-guest ``verify`` requires ``SHA384WithRSAPSS``); the VCEK/VLEK *key* is EC P-384.

**Why a DER reader of our own.** Every real VCEK/VLEK has serial number 0. ``cryptography``
(48..50) loads them with a ``CryptographyDeprecationWarning`` and announces that a future
release will raise instead. So certificate fields are read by the small, bounds-checked DER
reader of :mod:`coco_snp.certs.der` (in :func:`_parse_certificate`), which never depends on
that behaviour; ``cryptography`` is only given the SubjectPublicKeyInfo (to build keys) and
the TBS bytes (to verify signatures). :meth:`StoredCertificate.to_x509` still offers a
``cryptography`` object, loaded with that one warning suppressed and ``None`` if loading
raises.

AMD extensions (OIDs 1.3.6.1.4.1.3704.1.x; google/go-sev-guest ``kds/kds.go`` ``OidStructVersion``
.. ``OidCspID``, ``OidFmcSpl``; virtee/sev ``src/certs/snp/cert.rs``): structVersion .1,
productName .2, blSPL .3.1, teeSPL .3.2, snpSPL .3.3, spl_4..7 .3.4-.3.7 (reserved),
ucodeSPL .3.8, fmcSPL .3.9 (Turin), hwID .4, cspID .5 (VLEK).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import re
import warnings
from collections.abc import Iterator
from typing import Any

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from coco_core.plugin import CoCoError
from coco_snp.certs.der import (
    CertificateError,
    Name,
    children,
    common_name,
    expect,
    read_ia5,
    read_int,
    read_name,
    read_oid,
    read_time,
)
from coco_snp.certs.tcb import Product, TcbVersion, UnknownProductError

__all__ = [
    "CERT_SUFFIXES",
    "ISSUER_KIND",
    "AmbiguousCertificateError",
    "AmdExtensions",
    "CertKind",
    "CertificateError",
    "CertificateVerificationError",
    "StoredCertificate",
    "as_aware",
    "is_ec_p384",
    "load_certificates",
    "verify_issued_by",
]

# RFC 4055 §3.1 (id-RSASSA-PSS) and RFC 5480 / SEC 2 (secp384r1).
OID_RSASSA_PSS = "1.2.840.113549.1.1.10"
# AMD KDS extension OIDs (go-sev-guest kds/kds.go).
_AMD = "1.3.6.1.4.1.3704.1."
OID_STRUCT_VERSION = _AMD + "1"
OID_PRODUCT_NAME = _AMD + "2"
OID_BL_SPL = _AMD + "3.1"
OID_TEE_SPL = _AMD + "3.2"
OID_SNP_SPL = _AMD + "3.3"
OID_SPL_4 = _AMD + "3.4"
OID_SPL_5 = _AMD + "3.5"
OID_SPL_6 = _AMD + "3.6"
OID_SPL_7 = _AMD + "3.7"
OID_UCODE_SPL = _AMD + "3.8"
OID_FMC_SPL = _AMD + "3.9"
OID_HW_ID = _AMD + "4"
OID_CSP_ID = _AMD + "5"
# KDS spec 57230: hwID is 64 bytes for Milan/Genoa, 8 bytes on Turin (go-sev-guest
# kds.TurinHWIDSize = 8); the report CHIP_ID is 64 bytes (report.py).
HWID_SIZE = 64
TURIN_HWID_SIZE = 8
# RSASSA-PSS parameters of every AMD certificate signature (SOURCES.md; go-sev-guest verify).
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
# File suffixes load_dir() reads.
CERT_SUFFIXES = frozenset({".pem", ".der", ".crt", ".cer", ".cert"})

_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)


class CertificateVerificationError(CoCoError):
    """A certificate signature, chain or validity check failed."""


class AmbiguousCertificateError(CoCoError):
    """Several different certificates match where exactly one was expected."""


@enum.unique
class CertKind(enum.Enum):
    """What an AMD certificate is."""

    ARK = "ARK"  # AMD Root Key, CN=ARK-<product>
    ASK = "ASK"  # AMD SEV Key, CN=SEV-<product>
    ASVK = "ASVK"  # AMD SEV VLEK Key, CN=SEV-VLEK-<product>
    VCEK = "VCEK"  # CN=SEV-VCEK
    VLEK = "VLEK"  # CN=SEV-VLEK
    UNKNOWN = "unknown"


# Which kind of certificate issues which (KDS spec 57230 chapter 2).
ISSUER_KIND = {
    CertKind.VCEK: CertKind.ASK,
    CertKind.VLEK: CertKind.ASVK,
    CertKind.ASK: CertKind.ARK,
    CertKind.ASVK: CertKind.ARK,
}


@attrs.frozen
class AmdExtensions:
    """The AMD KDS extensions of a VCEK/VLEK (``None`` where absent)."""

    struct_version: int | None = None
    product_name: str | None = None
    bl_spl: int | None = None
    tee_spl: int | None = None
    snp_spl: int | None = None
    spl_4: int | None = None
    spl_5: int | None = None
    spl_6: int | None = None
    spl_7: int | None = None
    ucode_spl: int | None = None
    fmc_spl: int | None = None
    hw_id: bytes | None = None
    csp_id: str | None = None

    @classmethod
    def from_values(cls, values: dict[str, bytes]) -> AmdExtensions:
        """Decode ``{oid: extnValue contents}``; unknown OIDs are ignored."""

        def spl(oid: str, name: str) -> int | None:
            v = values.get(oid)
            return None if v is None else read_int(v, f"extension {name} ({oid})")

        hw = values.get(OID_HW_ID)
        # hwID is the raw chip id (64 or 8 bytes); some issuers wrap it in an OCTET STRING
        # (04 40 .. / 04 08 ..), told apart by length so a raw id is never misread.
        wrapped = hw is not None and len(hw) in (HWID_SIZE + 2, TURIN_HWID_SIZE + 2)
        if hw is not None and wrapped and hw[0] == 0x04 and hw[1] == len(hw) - 2:
            hw = hw[2:]
        product = values.get(OID_PRODUCT_NAME)
        csp = values.get(OID_CSP_ID)
        return cls(
            struct_version=spl(OID_STRUCT_VERSION, "structVersion"),
            product_name=None if product is None else read_ia5(product, "productName"),
            bl_spl=spl(OID_BL_SPL, "blSPL"),
            tee_spl=spl(OID_TEE_SPL, "teeSPL"),
            snp_spl=spl(OID_SNP_SPL, "snpSPL"),
            spl_4=spl(OID_SPL_4, "spl_4"),
            spl_5=spl(OID_SPL_5, "spl_5"),
            spl_6=spl(OID_SPL_6, "spl_6"),
            spl_7=spl(OID_SPL_7, "spl_7"),
            ucode_spl=spl(OID_UCODE_SPL, "ucodeSPL"),
            fmc_spl=spl(OID_FMC_SPL, "fmcSPL"),
            hw_id=hw,
            csp_id=None if csp is None else read_ia5(csp, "cspID"),
        )

    @property
    def present(self) -> bool:
        """True if any AMD extension was found."""
        return any(v is not None for v in attrs.astuple(self))

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (absent extensions omitted)."""
        out: dict[str, Any] = {}
        for key, value in attrs.asdict(self).items():
            if value is not None:
                out[key] = value.hex() if isinstance(value, bytes) else value
        return out


@attrs.frozen
class _Parsed:
    tbs: bytes
    serial: int
    tbs_sig_alg: bytes
    sig_alg_oid: str
    sig_alg: bytes
    signature: bytes
    issuer: Name
    subject: Name
    not_before: dt.datetime
    not_after: dt.datetime
    spki: bytes
    extensions: dict[str, bytes]


def _parse_certificate(der: bytes) -> _Parsed:
    what = "certificate"
    cert = expect(der, 0, len(der), 0x30, what)
    if cert.end != len(der):
        raise CertificateError(f"{what}: {len(der) - cert.end} trailing bytes after the DER")
    parts = children(der, cert, what)
    if len(parts) != 3 or parts[0].tag != 0x30 or parts[1].tag != 0x30 or parts[2].tag != 0x03:
        raise CertificateError(
            f"{what}: expected SEQUENCE {{tbsCertificate, signatureAlgorithm, signatureValue}}"
        )
    tbs_t, alg_t, sig_t = parts
    alg_parts = children(der, alg_t, "signatureAlgorithm")
    if not alg_parts or alg_parts[0].tag != 0x06:
        raise CertificateError("signatureAlgorithm: expected an OBJECT IDENTIFIER first")
    sig_alg_oid = read_oid(der[alg_parts[0].body : alg_parts[0].end], "signatureAlgorithm")
    sig_bits = der[sig_t.body : sig_t.end]
    if not sig_bits or sig_bits[0] != 0:
        raise CertificateError("signatureValue: expected a BIT STRING with 0 unused bits")
    fields = children(der, tbs_t, "tbsCertificate")
    i = 1 if fields and fields[0].tag == 0xA0 else 0  # [0] EXPLICIT version
    if len(fields) < i + 6:
        raise CertificateError(
            f"tbsCertificate: {len(fields)} fields; expected serial, signature, issuer, "
            "validity, subject, subjectPublicKeyInfo"
        )
    serial_t, tsig_t, issuer_t, validity_t, subject_t, spki_t = fields[i : i + 6]
    if serial_t.tag != 0x02 or serial_t.body == serial_t.end:
        raise CertificateError("tbsCertificate.serialNumber: expected an INTEGER")
    validity = children(der, validity_t, "validity")
    if len(validity) != 2:
        raise CertificateError("validity: expected notBefore and notAfter")
    extensions: dict[str, bytes] = {}
    for extra in fields[i + 6 :]:
        if extra.tag != 0xA3:  # [3] EXPLICIT Extensions; [1]/[2] unique IDs are skipped
            continue
        inner = children(der, extra, "extensions")
        if len(inner) != 1 or inner[0].tag != 0x30:
            raise CertificateError("extensions: expected one SEQUENCE OF Extension")
        for ext in children(der, inner[0], "extensions"):
            items = children(der, ext, "extension")
            if len(items) not in (2, 3) or items[0].tag != 0x06 or items[-1].tag != 0x04:
                raise CertificateError("extension: expected {extnID, [critical], extnValue}")
            oid = read_oid(der[items[0].body : items[0].end], "extension")
            extensions[oid] = der[items[-1].body : items[-1].end]
    return _Parsed(
        tbs=der[tbs_t.start : tbs_t.end],
        serial=int.from_bytes(der[serial_t.body : serial_t.end], "big", signed=True),
        tbs_sig_alg=der[tsig_t.start : tsig_t.end],
        sig_alg_oid=sig_alg_oid,
        sig_alg=der[alg_t.start : alg_t.end],
        signature=sig_bits[1:],
        issuer=read_name(der, issuer_t, "issuer"),
        subject=read_name(der, subject_t, "subject"),
        not_before=read_time(der, validity[0], "validity.notBefore"),
        not_after=read_time(der, validity[1], "validity.notAfter"),
        spki=der[spki_t.start : spki_t.end],
        extensions=extensions,
    )


def _classify(subject_cn: str, issuer: Name, subject: Name, amd: AmdExtensions) -> CertKind:
    # CN conventions of AMD KDS (SOURCES.md): ARK-<p>, SEV-<p>, SEV-VLEK-<p>, SEV-VCEK, SEV-VLEK.
    if subject_cn.startswith("ARK-"):
        return CertKind.ARK
    if subject_cn == "SEV-VCEK":
        return CertKind.VCEK
    if subject_cn == "SEV-VLEK":
        return CertKind.VLEK
    if subject_cn.startswith("SEV-VLEK-"):
        return CertKind.ASVK
    if subject_cn.startswith("SEV-"):
        return CertKind.ASK
    # Fall back to extensions: a hwID means VCEK, a cspID means VLEK.
    if amd.hw_id is not None:
        return CertKind.VCEK
    if amd.csp_id is not None:
        return CertKind.VLEK
    if issuer == subject:
        return CertKind.ARK
    return CertKind.UNKNOWN


def _product_of(kind: CertKind, subject_cn: str, amd: AmdExtensions) -> Product | None:
    try:
        if amd.product_name is not None:
            return Product.from_product_name(amd.product_name)
        if kind in (CertKind.ARK, CertKind.ASK, CertKind.ASVK):
            return Product.from_product_name(subject_cn.rsplit("-", 1)[-1])
    except UnknownProductError:
        return None
    return None


def _fmt_name(name: Name) -> str:
    return common_name(name) or ",".join(f"{k}={v}" for k, v in name)


@attrs.frozen
class StoredCertificate:
    """A certificate with the fields coco needs, decoded by our own DER reader."""

    der: bytes = attrs.field(repr=False)
    source: str | None  # file it came from
    index: int  # position within that file (0 for single-cert files)
    count_in_source: int  # certificates in that file
    kind: CertKind
    subject: Name = attrs.field(repr=False)
    issuer: Name = attrs.field(repr=False)
    subject_cn: str
    issuer_cn: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    signature_algorithm: str
    signature_algorithm_der: bytes = attrs.field(repr=False)  # outer AlgorithmIdentifier
    tbs_signature_algorithm_der: bytes = attrs.field(repr=False)  # tbsCertificate.signature
    tbs: bytes = attrs.field(repr=False)
    signature: bytes = attrs.field(repr=False)
    spki: bytes = attrs.field(repr=False)
    amd: AmdExtensions
    product: Product | None

    @classmethod
    def from_der(
        cls, der: bytes, *, source: str | None = None, index: int = 0, count: int = 1
    ) -> StoredCertificate:
        """Decode one DER certificate. :raises CertificateError: naming what is malformed."""
        der = bytes(der)
        where = f"{source or '<bytes>'} certificate {index}"
        try:
            p = _parse_certificate(der)
            amd = AmdExtensions.from_values(p.extensions)
        except CertificateError as e:
            raise CertificateError(f"{where}: {e}") from None
        subject_cn = common_name(p.subject)
        kind = _classify(subject_cn, p.issuer, p.subject, amd)
        return cls(
            der=der,
            source=source,
            index=index,
            count_in_source=count,
            kind=kind,
            subject=p.subject,
            issuer=p.issuer,
            subject_cn=subject_cn,
            issuer_cn=common_name(p.issuer),
            serial=p.serial,
            not_before=p.not_before,
            not_after=p.not_after,
            signature_algorithm=p.sig_alg_oid,
            signature_algorithm_der=p.sig_alg,
            tbs_signature_algorithm_der=p.tbs_sig_alg,
            tbs=p.tbs,
            signature=p.signature,
            spki=p.spki,
            amd=amd,
            product=_product_of(kind, subject_cn, amd),
        )

    # -- identity --------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """``file`` or ``file[#i of n]`` for bundles, plus kind and CN."""
        where = self.source or "<bytes>"
        if self.count_in_source > 1:
            where += f" (certificate {self.index + 1} of {self.count_in_source})"
        return f"{self.kind.value} {self.subject_cn!r} from {where}"

    @property
    def sha256(self) -> str:
        """SHA-256 of the DER, hex."""
        return hashlib.sha256(self.der).hexdigest()

    @property
    def is_self_issued(self) -> bool:
        """Issuer name equals subject name."""
        return self.issuer == self.subject

    def public_key(self) -> Any:
        """The subject public key (``cryptography`` object) from the SubjectPublicKeyInfo."""
        try:
            return serialization.load_der_public_key(self.spki)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise CertificateError(f"{self.label}: public key cannot be loaded: {e}") from None

    def to_x509(self) -> x509.Certificate | None:
        """A ``cryptography`` certificate, or ``None`` if this version refuses it.

        The serial-number-0 ``CryptographyDeprecationWarning`` is suppressed here (and only
        here); it is raised lazily on attribute access too, so callers should not rely on
        this object beyond what ``cryptography`` guarantees.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            try:
                return x509.load_der_x509_certificate(self.der)
            except ValueError:
                return None

    # -- validity --------------------------------------------------------------------------
    def validity_problem(self, at: dt.datetime) -> str | None:
        """Why the certificate is not valid at ``at``, or ``None`` if it is."""
        at = as_aware(at)
        if at < self.not_before:
            start = self.not_before.isoformat()
            return f"{self.label} is not valid before {start} (at {at.isoformat()})"
        if at > self.not_after:
            return f"{self.label} expired {self.not_after.isoformat()} (at {at.isoformat()})"
        return None

    def is_valid_at(self, at: dt.datetime) -> bool:
        """notBefore <= at <= notAfter."""
        return self.validity_problem(at) is None

    # -- TCB and chip ----------------------------------------------------------------------
    def tcb(self) -> TcbVersion | None:
        """The SPL extensions encoded as a TCB_VERSION for this product (``None`` if missing)."""
        a = self.amd
        if self.product is None or None in (a.bl_spl, a.tee_spl, a.snp_spl, a.ucode_spl):
            return None
        fmc = a.fmc_spl if self.product is Product.TURIN else None
        try:
            return TcbVersion.from_fields(
                self.product,
                boot_loader=a.bl_spl or 0,
                tee=a.tee_spl or 0,
                snp=a.snp_spl or 0,
                microcode=a.ucode_spl or 0,
                fmc=fmc,
            )
        except CoCoError:
            return None

    def matches_tcb(self, tcb: int | TcbVersion) -> bool:
        """The SPLs equal ``tcb`` (a raw u64 is decoded with this certificate's product)."""
        mine = self.tcb()
        if mine is None or self.product is None:
            return False
        if isinstance(tcb, int):
            try:
                tcb = TcbVersion.from_raw(tcb, self.product)
            except CoCoError:
                return False
        return tcb.layout is mine.layout and tcb.spl_key() == mine.spl_key()

    def matches_chip_id(self, chip_id: bytes) -> bool:
        """hwID equals CHIP_ID (64 bytes), or its first 8 bytes for an 8-byte (Turin) hwID."""
        hw = self.amd.hw_id
        if hw is None:
            return False
        if len(hw) == TURIN_HWID_SIZE:
            return bytes(chip_id[:TURIN_HWID_SIZE]) == hw
        return len(hw) == HWID_SIZE and bytes(chip_id) == hw

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        tcb = self.tcb()
        return {
            "file": self.source,
            "index": self.index,
            "kind": self.kind.value,
            "subject_cn": self.subject_cn,
            "issuer_cn": self.issuer_cn,
            "serial": self.serial,
            "product": None if self.product is None else self.product.value,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "extensions": self.amd.as_dict(),
            "tcb": None if tcb is None else tcb.as_dict(),
            "sha256": self.sha256,
        }


def as_aware(at: dt.datetime) -> dt.datetime:
    """``at`` with UTC as its zone when it has none."""
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def verify_issued_by(cert: StoredCertificate, issuer: StoredCertificate) -> None:
    """Check that ``issuer``'s RSA key signed ``cert`` with RSASSA-PSS/SHA-384/salt 48.

    :raises CertificateVerificationError: naming both certificates and what failed.
    """
    if cert.signature_algorithm != OID_RSASSA_PSS:
        raise CertificateVerificationError(
            f"{cert.label}: signature algorithm {cert.signature_algorithm}; expected "
            f"RSASSA-PSS ({OID_RSASSA_PSS})"
        )
    if cert.signature_algorithm_der != cert.tbs_signature_algorithm_der:
        # RFC 5280 §4.1.1.2: signatureAlgorithm MUST equal tbsCertificate.signature; the
        # outer copy is not covered by the signature, so a mismatch means tampering.
        raise CertificateVerificationError(
            f"{cert.label}: signatureAlgorithm differs from tbsCertificate.signature; "
            "expected identical AlgorithmIdentifiers (RFC 5280 4.1.1.2)"
        )
    key = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateVerificationError(
            f"{issuer.label}: key is {type(key).__name__}; expected an RSA key to verify "
            f"{cert.label}"
        )
    try:
        key.verify(cert.signature, cert.tbs, _PSS, hashes.SHA384())
    except InvalidSignature:
        raise CertificateVerificationError(
            f"signature of {cert.label} does not verify with the key of {issuer.label} "
            "(RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48): the certificate was altered or "
            "was not issued by that key"
        ) from None


def _split_bundle(data: bytes) -> Iterator[bytes]:
    if b"-----BEGIN CERTIFICATE-----" in data:
        for m in _PEM_RE.finditer(data):
            body = b"".join(m.group(1).split())  # tolerates CRLF and indentation
            try:
                yield base64.b64decode(body, validate=True)
            except binascii.Error as e:
                raise CertificateError(f"PEM block is not valid base64: {e}") from None
        return
    pos = 0
    while pos < len(data):  # one or more concatenated DER certificates
        t = expect(data, pos, len(data), 0x30, "DER certificate")
        yield data[t.start : t.end]
        pos = t.end


def load_certificates(data: bytes, *, source: str | None = None) -> list[StoredCertificate]:
    """Every certificate in PEM (any number, any order, LF or CRLF) or DER bytes.

    :raises CertificateError: if the bytes hold no certificate or one is malformed.
    """
    try:
        ders = list(_split_bundle(bytes(data)))
    except CertificateError as e:
        raise CertificateError(f"{source or '<bytes>'}: {e}") from None
    if not ders:
        raise CertificateError(
            f"{source or '<bytes>'}: no certificate found; expected PEM "
            "'-----BEGIN CERTIFICATE-----' blocks or DER"
        )
    return [
        StoredCertificate.from_der(d, source=source, index=i, count=len(ders))
        for i, d in enumerate(ders)
    ]


def is_ec_p384(key: object) -> bool:
    """True for an elliptic-curve public key on P-384 (secp384r1), a VCEK/VLEK key."""
    return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
