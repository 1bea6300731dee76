# SPDX-License-Identifier: Apache-2.0
"""The AMD SEV-SNP certificate store: ARK, ASK, ASVK, VCEK and VLEK.

Chains (VCEK Certificate and KDS Interface Specification, AMD pub. 57230; the checks recorded
in ``testdata/SOURCES.md``)::

    ARK (self-signed) -> ASK  -> VCEK      ARK -> ASVK -> VLEK

Every AMD signature here is RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt
(go-sev-guest ``verify`` requires ``SHA384WithRSAPSS``); the VCEK/VLEK *key* is EC P-384.

**Why a DER reader of our own.** Every real VCEK/VLEK has serial number 0. ``cryptography``
(48..50) loads them with a ``CryptographyDeprecationWarning`` and announces that a future
release will raise instead. So certificate fields are read by the small, bounds-checked DER
reader below (:func:`_parse_certificate`), which never depends on that behaviour;
``cryptography`` is only given the SubjectPublicKeyInfo (to build keys) and the TBS bytes (to
verify signatures). :meth:`StoredCertificate.to_x509` still offers a ``cryptography`` object,
loaded with that one warning suppressed and ``None`` if loading raises.

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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from coco_core.plugin import CoCoError, DecodeError
from coco_snp.certs.tcb import Product, TcbVersion, UnknownProductError
from coco_snp.report import AttestationReport, SigningKey

__all__ = [
    "CERT_SUFFIXES",
    "AmbiguousCertificateError",
    "AmdExtensions",
    "CertKind",
    "CertificateError",
    "CertificateStore",
    "CertificateVerificationError",
    "ChainStatus",
    "SignerSearch",
    "StoredCertificate",
    "load_certificates",
    "verify_issued_by",
]

# RFC 4055 §3.1 (id-RSASSA-PSS) and RFC 5480 / SEC 2 (secp384r1).
OID_RSASSA_PSS = "1.2.840.113549.1.1.10"
OID_CN = "2.5.4.3"
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


class CertificateError(DecodeError):
    """Bytes are not a certificate this module can read."""


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
_ISSUER_KIND = {
    CertKind.VCEK: CertKind.ASK,
    CertKind.VLEK: CertKind.ASVK,
    CertKind.ASK: CertKind.ARK,
    CertKind.ASVK: CertKind.ARK,
}


# ---------------------------------------------------------------------------------------
# A minimal DER reader: definite lengths only, low tag numbers only, every length checked.
# ---------------------------------------------------------------------------------------
@attrs.frozen
class _Tlv:
    tag: int
    start: int  # first byte of the tag
    body: int  # first byte of the contents
    end: int  # one past the last content byte


def _tlv(buf: bytes, pos: int, limit: int, what: str) -> _Tlv:
    if pos + 2 > limit:
        raise CertificateError(f"{what}: DER element at byte {pos} is truncated (limit {limit})")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise CertificateError(f"{what}: DER tag 0x{tag:02X} at byte {pos} uses a high tag number")
    first = buf[pos + 1]
    body = pos + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise CertificateError(
                f"{what}: DER length byte 0x{first:02X} at byte {pos + 1}; expected a definite "
                "length of at most 4 length bytes"
            )
        if body + count > limit:
            raise CertificateError(f"{what}: DER length at byte {pos + 1} is truncated")
        length = int.from_bytes(buf[body : body + count], "big")
        body += count
    end = body + length
    if end > limit:
        raise CertificateError(
            f"{what}: DER element at byte {pos} has length {length}, ending at {end}; expected "
            f"it to end within {limit}"
        )
    return _Tlv(tag, pos, body, end)


def _expect(buf: bytes, pos: int, limit: int, tag: int, what: str) -> _Tlv:
    t = _tlv(buf, pos, limit, what)
    if t.tag != tag:
        raise CertificateError(f"{what}: DER tag is 0x{t.tag:02X}; expected 0x{tag:02X}")
    return t


def _children(buf: bytes, parent: _Tlv, what: str) -> list[_Tlv]:
    out: list[_Tlv] = []
    pos = parent.body
    while pos < parent.end:
        child = _tlv(buf, pos, parent.end, what)
        out.append(child)
        pos = child.end
    return out


def _oid(content: bytes, what: str) -> str:
    if not content or content[-1] & 0x80:
        raise CertificateError(f"{what}: OBJECT IDENTIFIER {content.hex()} is truncated")
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def _string(tag: int, content: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return content.decode("utf-16-be", "replace")
    if tag == 0x14:  # T61String, treated as Latin-1
        return content.decode("latin-1")
    return content.decode("utf-8", "replace")  # UTF8String, PrintableString, IA5String


def _time(buf: bytes, t: _Tlv, what: str) -> dt.datetime:
    text = buf[t.body : t.end].decode("ascii", "replace")
    try:
        if t.tag == 0x17:  # UTCTime: YYMMDDHHMMSSZ, years 50..99 are 19xx (RFC 5280 4.1.2.5.1)
            parsed = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
            if parsed.year >= 2050:
                parsed = parsed.replace(year=parsed.year - 100)
        elif t.tag == 0x18:  # GeneralizedTime: YYYYMMDDHHMMSSZ
            parsed = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
        else:
            raise CertificateError(
                f"{what}: tag 0x{t.tag:02X}; expected UTCTime or GeneralizedTime"
            )
    except ValueError:
        raise CertificateError(f"{what}: time {text!r} is not YYMMDDHHMMSSZ") from None
    return parsed.replace(tzinfo=dt.UTC)


Name = tuple[tuple[str, str], ...]


def _name(buf: bytes, t: _Tlv, what: str) -> Name:
    if t.tag != 0x30:
        raise CertificateError(f"{what}: Name tag 0x{t.tag:02X}; expected SEQUENCE 0x30")
    pairs: list[tuple[str, str]] = []
    for rdn in _children(buf, t, what):
        for atv in _children(buf, rdn, what):
            parts = _children(buf, atv, what)
            if len(parts) != 2 or parts[0].tag != 0x06:
                raise CertificateError(f"{what}: AttributeTypeAndValue is malformed")
            oid = _oid(buf[parts[0].body : parts[0].end], what)
            pairs.append((oid, _string(parts[1].tag, buf[parts[1].body : parts[1].end])))
    return tuple(pairs)


def _cn(name: Name) -> str:
    return next((v for k, v in name if k == OID_CN), "")


def _der_int(value: bytes, what: str) -> int:
    # The extnValue of an SPL extension is a DER INTEGER (e.g. 02 01 05).
    if len(value) < 3 or value[0] != 0x02 or value[1] != len(value) - 2:
        raise CertificateError(f"{what}: value {value.hex()} is not a DER INTEGER")
    return int.from_bytes(value[2:], "big", signed=True)


def _der_ia5(value: bytes, what: str) -> str:
    if len(value) < 2 or value[0] not in (0x16, 0x0C, 0x13) or value[1] != len(value) - 2:
        raise CertificateError(f"{what}: value {value.hex()} is not a short DER string")
    return value[2:].decode("ascii", "replace")


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
            return None if v is None else _der_int(v, f"extension {name} ({oid})")

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
            product_name=None if product is None else _der_ia5(product, "productName"),
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
            csp_id=None if csp is None else _der_ia5(csp, "cspID"),
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
    cert = _expect(der, 0, len(der), 0x30, what)
    if cert.end != len(der):
        raise CertificateError(f"{what}: {len(der) - cert.end} trailing bytes after the DER")
    parts = _children(der, cert, what)
    if len(parts) != 3 or parts[0].tag != 0x30 or parts[1].tag != 0x30 or parts[2].tag != 0x03:
        raise CertificateError(
            f"{what}: expected SEQUENCE {{tbsCertificate, signatureAlgorithm, signatureValue}}"
        )
    tbs_t, alg_t, sig_t = parts
    alg_parts = _children(der, alg_t, "signatureAlgorithm")
    if not alg_parts or alg_parts[0].tag != 0x06:
        raise CertificateError("signatureAlgorithm: expected an OBJECT IDENTIFIER first")
    sig_alg_oid = _oid(der[alg_parts[0].body : alg_parts[0].end], "signatureAlgorithm")
    sig_bits = der[sig_t.body : sig_t.end]
    if not sig_bits or sig_bits[0] != 0:
        raise CertificateError("signatureValue: expected a BIT STRING with 0 unused bits")
    fields = _children(der, tbs_t, "tbsCertificate")
    i = 1 if fields and fields[0].tag == 0xA0 else 0  # [0] EXPLICIT version
    if len(fields) < i + 6:
        raise CertificateError(
            f"tbsCertificate: {len(fields)} fields; expected serial, signature, issuer, "
            "validity, subject, subjectPublicKeyInfo"
        )
    serial_t, tsig_t, issuer_t, validity_t, subject_t, spki_t = fields[i : i + 6]
    if serial_t.tag != 0x02 or serial_t.body == serial_t.end:
        raise CertificateError("tbsCertificate.serialNumber: expected an INTEGER")
    validity = _children(der, validity_t, "validity")
    if len(validity) != 2:
        raise CertificateError("validity: expected notBefore and notAfter")
    extensions: dict[str, bytes] = {}
    for extra in fields[i + 6 :]:
        if extra.tag != 0xA3:  # [3] EXPLICIT Extensions; [1]/[2] unique IDs are skipped
            continue
        inner = _children(der, extra, "extensions")
        if len(inner) != 1 or inner[0].tag != 0x30:
            raise CertificateError("extensions: expected one SEQUENCE OF Extension")
        for ext in _children(der, inner[0], "extensions"):
            items = _children(der, ext, "extension")
            if len(items) not in (2, 3) or items[0].tag != 0x06 or items[-1].tag != 0x04:
                raise CertificateError("extension: expected {extnID, [critical], extnValue}")
            oid = _oid(der[items[0].body : items[0].end], "extension")
            extensions[oid] = der[items[-1].body : items[-1].end]
    return _Parsed(
        tbs=der[tbs_t.start : tbs_t.end],
        serial=int.from_bytes(der[serial_t.body : serial_t.end], "big", signed=True),
        tbs_sig_alg=der[tsig_t.start : tsig_t.end],
        sig_alg_oid=sig_alg_oid,
        sig_alg=der[alg_t.start : alg_t.end],
        signature=sig_bits[1:],
        issuer=_name(der, issuer_t, "issuer"),
        subject=_name(der, subject_t, "subject"),
        not_before=_time(der, validity[0], "validity.notBefore"),
        not_after=_time(der, validity[1], "validity.notAfter"),
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
    return _cn(name) or ",".join(f"{k}={v}" for k, v in name)


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
        subject_cn = _cn(p.subject)
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
            issuer_cn=_cn(p.issuer),
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
        at = _aware(at)
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


def _aware(at: dt.datetime) -> dt.datetime:
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


@attrs.frozen
class ChainStatus:
    """The result of :meth:`CertificateStore.verify_chain`."""

    certificate: StoredCertificate
    path: tuple[StoredCertificate, ...]  # leaf first, as far as issuers were found
    signatures_ok: bool  # every link that could be checked verified
    complete: bool  # reached a self-signed ARK whose self-signature verifies
    time_ok: bool
    at: dt.datetime
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Complete, every signature verified, every certificate valid at :attr:`at`."""
        return self.signatures_ok and self.complete and self.time_ok

    def summary(self) -> str:
        """One line for humans."""
        chain = " -> ".join(f"{c.kind.value}({c.subject_cn})" for c in self.path)
        if self.ok:
            return f"verified: {chain} at {self.at.isoformat()}"
        return f"NOT verified ({'; '.join(self.problems)}); path: {chain}"


@attrs.frozen
class SignerSearch:
    """Which certificate signed a report, and why every other candidate was rejected."""

    certificate: StoredCertificate | None
    rejected: tuple[tuple[StoredCertificate, str], ...]
    notes: tuple[str, ...]

    def reason(self) -> str:
        """Why nothing was found (empty when something was)."""
        if self.certificate is not None:
            return ""
        lines = list(self.notes)
        lines += [f"{cert.label}: {why}" for cert, why in self.rejected]
        if not lines:
            lines.append("the store holds no VCEK or VLEK")
        return "; ".join(lines)


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
        t = _expect(data, pos, len(data), 0x30, "DER certificate")
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


@attrs.define
class CertificateStore:
    """A mutable collection of AMD certificates with chain and report-signer lookups."""

    certificates: list[StoredCertificate] = attrs.field(factory=list)

    # -- loading ---------------------------------------------------------------------------
    def add(self, certs: Iterable[StoredCertificate]) -> tuple[StoredCertificate, ...]:
        """Add certificates; returns them."""
        added = tuple(certs)
        self.certificates.extend(added)
        return added

    def load_paths(self, paths: Iterable[str | Path]) -> tuple[StoredCertificate, ...]:
        """Load PEM/DER files; directories are loaded with :meth:`load_dir`."""
        out: list[StoredCertificate] = []
        for p in paths:
            path = Path(p)
            if path.is_dir():
                out += self.load_dir(path)
                continue
            try:
                data = path.read_bytes()
            except OSError as e:
                raise CertificateError(f"{path}: cannot read: {e.strerror}") from None
            out += self.add(load_certificates(data, source=str(path)))
        return tuple(out)

    def load_dir(self, directory: str | Path) -> tuple[StoredCertificate, ...]:
        """Load every file with a certificate suffix (:data:`CERT_SUFFIXES`), sorted by name."""
        d = Path(directory)
        if not d.is_dir():
            raise CertificateError(f"{d}: not a directory; expected a directory of certificates")
        files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in CERT_SUFFIXES)
        return self.load_paths(files)

    def __iter__(self) -> Iterator[StoredCertificate]:
        return iter(self.certificates)

    def __len__(self) -> int:
        return len(self.certificates)

    def of_kind(self, kind: CertKind) -> list[StoredCertificate]:
        """Certificates of one kind, in load order."""
        return [c for c in self.certificates if c.kind is kind]

    # -- chains ----------------------------------------------------------------------------
    def issuers_of(self, cert: StoredCertificate) -> list[StoredCertificate]:
        """Certificates whose subject is ``cert``'s issuer (excluding ``cert`` itself)."""
        return [c for c in self.certificates if c.subject == cert.issuer and c.der != cert.der]

    def issuer_problem(self, cert: StoredCertificate) -> str | None:
        """If issuers of ``cert`` are in the store and none verifies it: why. Else ``None``."""
        issuers = self.issuers_of(cert)
        if not issuers:
            return None
        errors: list[str] = []
        for issuer in issuers:
            try:
                verify_issued_by(cert, issuer)
            except CertificateVerificationError as e:
                errors.append(str(e))
            else:
                return None
        return errors[0]

    def verify_chain(
        self, cert: StoredCertificate, *, at: dt.datetime | None = None
    ) -> ChainStatus:
        """Walk ``cert`` up to a self-signed ARK, verifying each signature and validity.

        :param at: verification time (default: now, UTC); pin it for expired samples.
        """
        when = _aware(at) if at is not None else dt.datetime.now(dt.UTC)
        problems: list[str] = []
        path = [cert]
        signatures_ok = True
        complete = False
        current = cert
        for _ in range(4):  # ARK -> ASK/ASVK -> VCEK/VLEK is at most 3 links
            if current.is_self_issued:
                try:
                    verify_issued_by(current, current)
                except CertificateVerificationError as e:
                    signatures_ok = False
                    problems.append(f"self-signature: {e}")
                else:
                    complete = current.kind is CertKind.ARK
                    if not complete:
                        problems.append(f"{current.label} is self-signed but not an ARK")
                break
            expected = _ISSUER_KIND.get(current.kind)
            candidates = self.issuers_of(current)
            if expected is not None:
                candidates = [c for c in candidates if c.kind is expected]
            if not candidates:
                want = expected.value if expected else "issuer"
                problems.append(
                    f"{want} {current.issuer_cn!r} for {current.label} is not in the store"
                )
                break
            found: StoredCertificate | None = None
            errors: list[str] = []
            for candidate in candidates:
                try:
                    verify_issued_by(current, candidate)
                except CertificateVerificationError as e:
                    errors.append(str(e))
                else:
                    found = candidate
                    break
            if found is None:
                signatures_ok = False
                problems.append(errors[0])
                break
            path.append(found)
            current = found
        if cert.kind in (CertKind.VCEK, CertKind.VLEK):
            try:
                leaf_ok = _is_ec_p384(cert.public_key())
            except CertificateError:
                leaf_ok = False
            if not leaf_ok:
                signatures_ok = False
                problems.append(f"{cert.label}: key is not EC P-384; expected a P-384 leaf key")
        time_ok = True
        for c in path:
            why = c.validity_problem(when)
            if why is not None:
                time_ok = False
                problems.append(why)
        return ChainStatus(
            certificate=cert,
            path=tuple(path),
            signatures_ok=signatures_ok,
            complete=complete,
            time_ok=time_ok,
            at=when,
            problems=tuple(problems),
        )

    # -- lookups ---------------------------------------------------------------------------
    def vcek_for(self, chip_id: bytes, tcb: int | TcbVersion) -> StoredCertificate | None:
        """The first VCEK whose hwID matches ``chip_id`` and whose SPLs equal ``tcb``."""
        return next(
            (
                c
                for c in self.of_kind(CertKind.VCEK)
                if c.matches_chip_id(chip_id) and c.matches_tcb(tcb)
            ),
            None,
        )

    def for_tcb(
        self,
        tcb: int | TcbVersion,
        *,
        chip_id: bytes | None = None,
        kind: CertKind = CertKind.VCEK,
    ) -> StoredCertificate | None:
        """The VCEK (or VLEK) for a reported TCB the VMM learnt from firmware.

        This is the TCB-keyed answer to the certificate/TCB race (see :mod:`coco_snp.race`):
        the store keeps one leaf per TCB and serves the one matching the TCB the firmware
        will sign with. With ``chip_id`` the hwID must match too.

        :raises AmbiguousCertificateError: if leaves with different hwIDs/keys match and no
            ``chip_id`` narrows them down.
        """
        matches = [
            c
            for c in self.of_kind(kind)
            if c.matches_tcb(tcb) and (chip_id is None or c.matches_chip_id(chip_id))
        ]
        if len({c.spki for c in matches}) > 1:
            labels = ", ".join(c.label for c in matches)
            raise AmbiguousCertificateError(
                f"{len(matches)} {kind.value}s with different keys match TCB {tcb!s}: {labels}; "
                "expected one (pass chip_id)"
            )
        return matches[0] if matches else None

    def find_signer(
        self, report: AttestationReport, *, at: dt.datetime | None = None
    ) -> SignerSearch:
        """Find the VCEK/VLEK that signed ``report``, explaining every rejection.

        VCEK: hwID == CHIP_ID (first 8 bytes on Turin) and SPLs == REPORTED_TCB. If CHIP_ID
        is all zero (MASK_CHIP_ID) the hwID cannot be compared and only the TCB and the
        signature decide. VLEK: SIGNING_KEY 1, CHIP_ID all zero, SPLs == REPORTED_TCB.
        In both cases a candidate whose issuer is in the store must verify against it, and
        the report signature must verify with its key. With ``at``, the certificate must be
        valid at that time; without it validity is not part of the match.
        """
        rejected: list[tuple[StoredCertificate, str]] = []
        notes: list[str] = []
        key = report.signing_key
        wanted = {SigningKey.VCEK: CertKind.VCEK, SigningKey.VLEK: CertKind.VLEK}.get(
            key if key is not None else SigningKey.NONE
        )
        if wanted is None:
            notes.append(
                f"report SIGNING_KEY is {report.signing_key_name}; expected VCEK (0) or VLEK (1)"
            )
            return SignerSearch(None, (), tuple(notes))
        if wanted is CertKind.VLEK and not report.chip_id_is_zero:
            notes.append("report is VLEK-signed but CHIP_ID is not all zero; expected zero")
            return SignerSearch(None, (), tuple(notes))
        if wanted is CertKind.VCEK and report.chip_id_is_zero:
            notes.append("CHIP_ID is all zero (masked); matched by TCB and signature only")
        for cert in self.certificates:
            if cert.kind not in (CertKind.VCEK, CertKind.VLEK):
                continue
            why = self._reject_reason(report, cert, wanted, at)
            if why is None:
                return SignerSearch(cert, tuple(rejected), tuple(notes))
            rejected.append((cert, why))
        return SignerSearch(None, tuple(rejected), tuple(notes))

    def _reject_reason(
        self,
        report: AttestationReport,
        cert: StoredCertificate,
        wanted: CertKind,
        at: dt.datetime | None,
    ) -> str | None:
        if cert.kind is not wanted:
            return f"is a {cert.kind.value}; report SIGNING_KEY is {wanted.value}"
        if cert.product is None:
            return f"productName {cert.amd.product_name!r} is not a known product"
        if report.product is not None and report.product is not cert.product:
            return f"product {cert.product.value}; the report is {report.product.value}"
        masked = report.chip_id_is_zero
        if wanted is CertKind.VCEK and not masked and not cert.matches_chip_id(report.chip_id):
            hw = "absent" if cert.amd.hw_id is None else cert.amd.hw_id.hex()[:16] + "…"
            return f"hwID {hw} != report CHIP_ID {report.chip_id.hex()[:16]}…"
        if not cert.matches_tcb(report.reported_tcb_raw):
            tcb = TcbVersion.from_raw(report.reported_tcb_raw, cert.product)
            mine = cert.tcb()
            have = "missing SPL extensions" if mine is None else mine.describe()
            return f"SPLs {have} != REPORTED_TCB {tcb.describe()}"
        if at is not None:
            why = cert.validity_problem(at)
            if why is not None:
                return why
        chain = self.issuer_problem(cert)
        if chain is not None:
            return chain
        try:
            report.verify_signature(cert.public_key())
        except (CoCoError, ValueError) as e:
            return str(e)
        return None

    def signer_for_report(
        self, report: AttestationReport, *, at: dt.datetime | None = None
    ) -> StoredCertificate | None:
        """The certificate that signed ``report`` (see :meth:`find_signer`), or ``None``."""
        return self.find_signer(report, at=at).certificate


def _is_ec_p384(key: object) -> bool:
    return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
