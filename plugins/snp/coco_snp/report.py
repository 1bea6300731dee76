# SPDX-License-Identifier: Apache-2.0
"""The SEV-SNP ``ATTESTATION_REPORT`` (0x4A0 = 1184 bytes, little-endian) and its signature.

Offsets follow the AMD SEV-SNP ABI specification (pub. 56860) table "ATTESTATION_REPORT
Structure", cross-checked against google/go-sev-guest ``abi/abi.go`` (``ReportToProto``,
``signatureOffset = 0x2A0``, ``ecdsaRSsize = 72``) and virtee/sev
``src/firmware/guest/types/snp.rs`` (``AttestationReport``). The CPUID bytes at 0x188..0x18A
exist from report version 3 on (reserved before); see ``testdata/SOURCES.md`` for the real
reports these offsets were checked against.

The TCB fields are product-dependent (:mod:`coco_snp.certs.tcb`). The product comes from the CPUID
family/model for version 3+, otherwise from the caller (normally the VCEK ``productName``);
when neither is available :attr:`AttestationReport.product` is ``None`` and the raw u64 values
are all that can be shown.

**What makes 1184 bytes a report.** Decoding accepts any 0x4A0 bytes;
:meth:`AttestationReport.format_problems` lists what the spec fixes and the bytes break,
with the checks google/go-sev-guest ``abi.ReportToProto`` / ``ValidateReportFormat``
(@ af1c107a) applies: VERSION 2..5, SIGNATURE_ALGO 1, guest POLICY bit 17 set and bits
63:26 zero, FLAGS bits 31:5 zero and SIGNING_KEY not 2..6, and the reserved ranges
0x04C..0x050, 0x188 (0x18B from version 3)..0x1A0, 0x1EB, 0x1EF, 0x208..0x2A0 and, after the
144-byte ECDSA signature, 0x330..0x4A0 all zero. :func:`load_report` refuses bytes with a
problem unless ``strict=False``.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import struct
from pathlib import Path
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from coco_core.plugin import CoCoError, DecodeError
from coco_snp.certs.tcb import Product, TcbVersion, UnknownProductError

__all__ = [
    "HCL_MAGIC",
    "HCL_REPORT_OFFSET",
    "REPORT_SIZE",
    "REPORT_VERSIONS",
    "SIGNED_LENGTH",
    "AttestationReport",
    "Cpuid",
    "FirmwareVersion",
    "ReportError",
    "ReportSignatureError",
    "SigningKey",
    "load_report",
]

# AMD SEV-SNP ABI spec (56860) "ATTESTATION_REPORT Structure"; go-sev-guest abi.ReportSize.
REPORT_SIZE = 0x4A0
# The signature covers bytes [0, 0x2A0) (go-sev-guest abi.SignedComponent, virtee ..[..0x2a0]).
SIGNED_LENGTH = 0x2A0
# ECDSA P-384 R and S: 72-byte little-endian fields at 0x2A0 and 0x2E8 (go-sev-guest ecdsaRSsize).
_SIG_R = 0x2A0
_SIG_S = 0x2E8
_RS_SIZE = 72
# SIGNATURE_ALGO 1 = ECDSA P-384 with SHA-384 (go-sev-guest abi.SignEcdsaP384Sha384).
SIG_ALGO_ECDSA_P384_SHA384 = 1
# Azure vTPM "HCL report": magic "HCLA", SNP report at 0x20 for 0x4A0 bytes
# (testdata/SOURCES.md, trustee deps/verifier/test_data/az-snp-vtpm/hcl-report.bin).
HCL_MAGIC = b"HCLA"
HCL_REPORT_OFFSET = 0x20
# Report versions the spec defines so far (go-sev-guest abi.MinSupportedReportVersion ..
# MaxSupportedReportVersion = 2..5 @ af1c107a).
REPORT_VERSIONS = range(2, 6)
# Guest POLICY: bit 17 is reserved and must be 1, bits 63:26 must be zero (SEV-SNP ABI
# spec 56860 "GUEST_POLICY"; go-sev-guest abi.ParseSnpPolicy).
_POLICY_ONE_BIT = 1 << 17
_POLICY_MBZ = ~((1 << 26) - 1) & ((1 << 64) - 1)
# FLAGS @0x48: bits 31:5 must be zero (go-sev-guest abi.ParseSignerInfo).
_FLAGS_MBZ = ~((1 << 5) - 1) & 0xFFFFFFFF
# The end of the ECDSA P-384 signature (R, S: 2 x 72 bytes from 0x2A0).
_SIG_END = _SIG_S + _RS_SIZE

# One unpack for the fixed fields. Offsets (hex) as in the spec table:
# 0x000 version u32, 0x004 guest_svn u32, 0x008 policy u64, 0x010 family_id[16],
# 0x020 image_id[16], 0x030 vmpl u32, 0x034 signature_algo u32, 0x038 current_tcb u64,
# 0x040 platform_info u64, 0x048 flags u32, 0x04C reserved u32, 0x050 report_data[64],
# 0x090 measurement[48], 0x0C0 host_data[32], 0x0E0 id_key_digest[48],
# 0x110 author_key_digest[48], 0x140 report_id[32], 0x160 report_id_ma[32],
# 0x180 reported_tcb u64, 0x188 cpuid_fam u8, 0x189 cpuid_mod u8, 0x18A cpuid_step u8,
# 0x18B reserved[21], 0x1A0 chip_id[64], 0x1E0 committed_tcb u64,
# 0x1E8 current_build/minor/major u8, 0x1EB reserved, 0x1EC committed_build/minor/major u8,
# 0x1EF reserved, 0x1F0 launch_tcb u64.
_FIXED = struct.Struct("<IIQ16s16sIIQQII64s48s32s48s48s32s32sQBBB21s64sQBBBxBBBxQ")
assert _FIXED.size == 0x1F8, _FIXED.size  # launch_tcb ends at 0x1F8


class ReportError(DecodeError):
    """Bytes are not an SEV-SNP attestation report (or a container holding one)."""


class ReportSignatureError(CoCoError):
    """The report signature does not verify against the given key."""


@enum.unique
class SigningKey(enum.IntEnum):
    """FLAGS bits 4:2 (go-sev-guest ``abi.ReportSigner``); 2..6 are reserved."""

    VCEK = 0
    VLEK = 1
    NONE = 7


@attrs.frozen
class FirmwareVersion:
    """A firmware version from the report's build/minor/major bytes."""

    major: int
    minor: int
    build: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.build}"


@attrs.frozen
class Cpuid:
    """CPUID family/model/stepping from report bytes 0x188..0x18A (version 3+)."""

    family: int
    model: int
    stepping: int

    def __str__(self) -> str:
        return f"family 0x{self.family:02X} model 0x{self.model:02X} stepping 0x{self.stepping:02X}"


@attrs.frozen
class AttestationReport:
    """A decoded attestation report. Build with :meth:`from_bytes` or :func:`load_report`."""

    raw: bytes = attrs.field(repr=False)
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb_raw: int
    platform_info: int
    flags: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb_raw: int
    cpuid: Cpuid | None
    chip_id: bytes
    committed_tcb_raw: int
    current_version: FirmwareVersion
    committed_version: FirmwareVersion
    launch_tcb_raw: int
    signature_r: int
    signature_s: int
    product: Product | None
    product_source: str  # why `product` is what it is, in words

    @classmethod
    def from_bytes(cls, data: bytes, *, product: Product | None = None) -> AttestationReport:
        """Decode exactly one 0x4A0-byte report.

        :param product: the product from the VCEK (used when the report has no CPUID bytes,
            i.e. version < 3, or its CPUID is not a known product).
        :raises ReportError: if ``data`` is not 0x4A0 bytes, or ``product`` contradicts CPUID.
        """
        data = bytes(data)
        if len(data) != REPORT_SIZE:
            raise ReportError(
                f"attestation report is {len(data)} bytes; expected {REPORT_SIZE} (0x4A0)"
            )
        f = _FIXED.unpack_from(data, 0)
        version = f[0]
        cpuid = Cpuid(f[19], f[20], f[21]) if version >= 3 else None
        chosen, source = _choose_product(cpuid, product)
        return cls(
            raw=data,
            version=version,
            guest_svn=f[1],
            policy=f[2],
            family_id=f[3],
            image_id=f[4],
            vmpl=f[5],
            signature_algo=f[6],
            current_tcb_raw=f[7],
            platform_info=f[8],
            flags=f[9],
            report_data=f[11],
            measurement=f[12],
            host_data=f[13],
            id_key_digest=f[14],
            author_key_digest=f[15],
            report_id=f[16],
            report_id_ma=f[17],
            reported_tcb_raw=f[18],
            cpuid=cpuid,
            chip_id=f[23],
            committed_tcb_raw=f[24],
            current_version=FirmwareVersion(major=f[27], minor=f[26], build=f[25]),
            committed_version=FirmwareVersion(major=f[30], minor=f[29], build=f[28]),
            launch_tcb_raw=f[31],
            signature_r=int.from_bytes(data[_SIG_R : _SIG_R + _RS_SIZE], "little"),
            signature_s=int.from_bytes(data[_SIG_S : _SIG_S + _RS_SIZE], "little"),
            product=chosen,
            product_source=source,
        )

    def with_product(self, product: Product) -> AttestationReport:
        """The same report decoded with ``product`` (e.g. taken from a candidate VCEK)."""
        return AttestationReport.from_bytes(self.raw, product=product)

    def format_problems(self) -> tuple[str, ...]:
        """What the spec fixes and these bytes break (empty for a well-formed report).

        See the module notes for the checks and their source.
        """
        problems: list[str] = []
        if self.version not in REPORT_VERSIONS:
            problems.append(
                f"VERSION is {self.version}; expected {REPORT_VERSIONS[0]}..{REPORT_VERSIONS[-1]}"
            )
        if self.signature_algo != SIG_ALGO_ECDSA_P384_SHA384:
            problems.append(
                f"SIGNATURE_ALGO is {self.signature_algo}; expected "
                f"{SIG_ALGO_ECDSA_P384_SHA384} (ECDSA P-384 with SHA-384)"
            )
        if not self.policy & _POLICY_ONE_BIT:
            problems.append(f"POLICY 0x{self.policy:X} has bit 17 clear; it is reserved, must be 1")
        if self.policy & _POLICY_MBZ:
            problems.append(f"POLICY 0x{self.policy:X} sets reserved bits 63:26; must be zero")
        if self.flags & _FLAGS_MBZ:
            problems.append(f"FLAGS 0x{self.flags:X} sets reserved bits 31:5; must be zero")
        if self.signing_key is None:
            problems.append(f"SIGNING_KEY is {self.signing_key_raw}; values 2..6 are reserved")
        low = 0x18B if self.version >= 3 else 0x188
        reserved = (
            (0x4C, 0x50),
            (low, 0x1A0),
            (0x1EB, 0x1EC),
            (0x1EF, 0x1F0),
            (0x208, SIGNED_LENGTH),
            (_SIG_END, REPORT_SIZE),
        )
        for start, end in reserved:
            chunk = self.raw[start:end]
            if any(chunk):
                first = start + next(i for i, b in enumerate(chunk) if b)
                problems.append(
                    f"reserved bytes 0x{start:03X}..0x{end:03X} are not zero "
                    f"(first at 0x{first:03X})"
                )
        return tuple(problems)

    # -- flags (FLAGS @0x48; go-sev-guest abi.ParseSignerInfo) ---------------------------
    @property
    def author_key_en(self) -> bool:
        """FLAGS bit 0: an author key signed the ID key."""
        return bool(self.flags & 1)

    @property
    def mask_chip_key(self) -> bool:
        """FLAGS bit 1: MASK_CHIP_KEY was set."""
        return bool(self.flags & 2)

    @property
    def signing_key_raw(self) -> int:
        """FLAGS bits 4:2, the raw SIGNING_KEY value."""
        return (self.flags >> 2) & 7

    @property
    def signing_key(self) -> SigningKey | None:
        """SIGNING_KEY as an enum, ``None`` for the reserved values 2..6."""
        raw = self.signing_key_raw
        return SigningKey(raw) if raw in (0, 1, 7) else None

    @property
    def signing_key_name(self) -> str:
        """``VCEK``, ``VLEK``, ``NONE`` or ``reserved(n)``."""
        key = self.signing_key
        return key.name if key is not None else f"reserved({self.signing_key_raw})"

    # -- TCBs ------------------------------------------------------------------------------
    def _tcb(self, raw: int) -> TcbVersion | None:
        return None if self.product is None else TcbVersion.from_raw(raw, self.product)

    @property
    def reported_tcb(self) -> TcbVersion | None:
        """REPORTED_TCB decoded for :attr:`product`; ``None`` when the product is unknown."""
        return self._tcb(self.reported_tcb_raw)

    @property
    def current_tcb(self) -> TcbVersion | None:
        """CURRENT_TCB (@0x38) decoded for :attr:`product`."""
        return self._tcb(self.current_tcb_raw)

    @property
    def committed_tcb(self) -> TcbVersion | None:
        """COMMITTED_TCB (@0x1E0) decoded for :attr:`product`."""
        return self._tcb(self.committed_tcb_raw)

    @property
    def launch_tcb(self) -> TcbVersion | None:
        """LAUNCH_TCB (@0x1F0) decoded for :attr:`product`."""
        return self._tcb(self.launch_tcb_raw)

    # -- chip id ---------------------------------------------------------------------------
    @property
    def chip_id_significant(self) -> bytes:
        """The significant part of CHIP_ID: 8 bytes on Turin (KDS hwID), 64 otherwise."""
        return self.chip_id[:8] if self.product is Product.TURIN else self.chip_id

    @property
    def chip_id_is_zero(self) -> bool:
        """True when CHIP_ID is all zero (VLEK-signed or MASK_CHIP_ID)."""
        return not any(self.chip_id)

    # -- signature -------------------------------------------------------------------------
    @property
    def signed_bytes(self) -> bytes:
        """Bytes [0, 0x2A0), the part the signature covers."""
        return self.raw[:SIGNED_LENGTH]

    def verify_signature(self, public_key: object) -> None:
        """Verify the ECDSA P-384/SHA-384 signature against a VCEK/VLEK public key.

        :raises ReportSignatureError: naming what did not match.
        """
        if self.signature_algo != SIG_ALGO_ECDSA_P384_SHA384:
            raise ReportSignatureError(
                f"report signature_algo is {self.signature_algo}; expected "
                f"{SIG_ALGO_ECDSA_P384_SHA384} (ECDSA P-384 with SHA-384)"
            )
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ReportSignatureError(
                f"signing key is a {type(public_key).__name__}; expected an EC P-384 public key"
            )
        if public_key.curve.name != "secp384r1":
            raise ReportSignatureError(
                f"signing key curve is {public_key.curve.name}; expected secp384r1 (P-384)"
            )
        signature = encode_dss_signature(self.signature_r, self.signature_s)
        try:
            public_key.verify(signature, self.signed_bytes, ec.ECDSA(hashes.SHA384()))
        except InvalidSignature:
            raise ReportSignatureError(
                "report signature (R, S at 0x2A0/0x2E8) does not verify with this key over "
                "bytes [0, 0x2A0) with ECDSA P-384/SHA-384"
            ) from None

    def signature_verifies(self, public_key: object) -> bool:
        """:meth:`verify_signature` as a boolean."""
        try:
            self.verify_signature(public_key)
        except ReportSignatureError:
            return False
        return True

    @property
    def sha384(self) -> str:
        """SHA-384 of the whole report, hex (handy for logs)."""
        return hashlib.sha384(self.raw).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary of the key fields."""

        def tcb(raw: int) -> dict[str, Any]:
            decoded = self._tcb(raw)
            return {"raw": f"0x{raw:016X}"} if decoded is None else decoded.as_dict()

        return {
            "version": self.version,
            "guest_svn": self.guest_svn,
            "policy": f"0x{self.policy:X}",
            "vmpl": self.vmpl,
            "signature_algo": self.signature_algo,
            "platform_info": f"0x{self.platform_info:X}",
            "flags": f"0x{self.flags:X}",
            "signing_key": self.signing_key_name,
            "product": None if self.product is None else self.product.value,
            "product_source": self.product_source,
            "cpuid": None
            if self.cpuid is None
            else {
                "family": self.cpuid.family,
                "model": self.cpuid.model,
                "stepping": self.cpuid.stepping,
            },
            "reported_tcb": tcb(self.reported_tcb_raw),
            "current_tcb": tcb(self.current_tcb_raw),
            "committed_tcb": tcb(self.committed_tcb_raw),
            "launch_tcb": tcb(self.launch_tcb_raw),
            "chip_id": self.chip_id.hex(),
            "current_version": str(self.current_version),
            "committed_version": str(self.committed_version),
            "report_data": self.report_data.hex(),
            "measurement": self.measurement.hex(),
            "host_data": self.host_data.hex(),
            "report_id": self.report_id.hex(),
        }


def _choose_product(cpuid: Cpuid | None, given: Product | None) -> tuple[Product | None, str]:
    if cpuid is not None:
        try:
            from_cpuid = Product.from_cpuid(cpuid.family, cpuid.model)
        except UnknownProductError:
            if given is not None:
                return given, (
                    f"given by the caller ({given.value}); the report CPUID ({cpuid}) is not a "
                    "known product"
                )
            return None, f"the report CPUID ({cpuid}) is not a known SEV-SNP product"
        if given is not None and given is not from_cpuid:
            raise ReportError(
                f"product {given.value} was given but the report CPUID ({cpuid}) says "
                f"{from_cpuid.value}; expected them to agree"
            )
        return from_cpuid, f"from the report CPUID ({cpuid})"
    if given is not None:
        return given, f"given by the caller ({given.value}); report version < 3 has no CPUID"
    return None, (
        "report version < 3 has no CPUID bytes and no product was given "
        "(pass the VCEK's productName)"
    )


_HEX_RE = re.compile(rb"\A(?:0[xX])?[0-9a-fA-F\s]+\Z")


def load_report(
    data: bytes | bytearray | memoryview | str | os.PathLike[str],
    *,
    product: Product | None = None,
    strict: bool = True,
) -> AttestationReport:
    """Decode a report from a raw 0x4A0-byte report, an Azure HCL container or hex text.

    * raw: exactly 0x4A0 bytes;
    * Azure HCL report: starts with ``HCLA``; the SNP report is at 0x20 for 0x4A0 bytes;
    * hex text (e.g. ``milan_v2_virtee_report.hex``): hex digits, whitespace allowed,
      optional ``0x`` prefix; it must decode to one of the two forms above.

    :param data: the bytes, the hex text as a ``str``, or a path (``pathlib.Path``) whose
        file is read as bytes, in any of the forms above.
    :param strict: refuse bytes that break what the spec fixes
        (:meth:`AttestationReport.format_problems`); False decodes them anyway.
    :raises ReportError: naming the length and the forms that were expected, what makes the
        bytes not a report, or a ``str`` that is neither hex text nor anything else accepted.
    """
    if isinstance(data, os.PathLike):
        path = Path(data)
        try:
            buf = path.read_bytes()
        except OSError as exc:
            raise ReportError(f"load_report: {path}: cannot read: {exc.strerror}") from None
    elif isinstance(data, str):
        buf = data.encode("ascii", "replace")
        if not _HEX_RE.match(buf):
            shown = data if len(data) <= 60 else data[:57] + "..."
            raise ReportError(
                f"load_report: the str {shown!r} is not hex text; pass a pathlib.Path to read "
                "a file, or the report's bytes"
            )
    else:
        buf = bytes(data)
    report = _load(buf, product)
    if strict:
        problems = report.format_problems()
        if problems:
            raise ReportError(
                "not an SEV-SNP attestation report: " + "; ".join(problems) + " (strict=False, "
                "or --force on the command line, decodes it anyway)"
            )
    return report


def _load(buf: bytes, product: Product | None) -> AttestationReport:
    if buf.startswith(HCL_MAGIC):
        end = HCL_REPORT_OFFSET + REPORT_SIZE
        if len(buf) < end:
            raise ReportError(
                f"HCL report container is {len(buf)} bytes; expected at least {end} "
                f"(SNP report at 0x{HCL_REPORT_OFFSET:X} for 0x{REPORT_SIZE:X} bytes)"
            )
        return AttestationReport.from_bytes(buf[HCL_REPORT_OFFSET:end], product=product)
    if len(buf) == REPORT_SIZE:
        return AttestationReport.from_bytes(buf, product=product)
    if buf and _HEX_RE.match(buf):
        text = b"".join(buf.split())
        if text[:2] in (b"0x", b"0X"):
            text = text[2:]
        if len(text) % 2:
            raise ReportError(f"hex report text has {len(text)} digits; expected an even count")
        decoded = bytes.fromhex(text.decode("ascii"))
        if decoded.startswith(HCL_MAGIC) or len(decoded) == REPORT_SIZE:
            return _load(decoded, product)
        raise ReportError(
            f"hex report text decodes to {len(decoded)} bytes; expected {REPORT_SIZE} "
            "(a raw report) or an HCLA container"
        )
    raise ReportError(
        f"input is {len(buf)} bytes; expected a raw report of {REPORT_SIZE} (0x4A0) bytes, "
        "an Azure HCL container starting with 'HCLA', or hex text"
    )
