# SPDX-License-Identifier: Apache-2.0
"""Generated AMD-shaped certificate chains for the SNP tests (made here, never AMD's).

:func:`make_chain` issues an ARK, an ASK, an ASVK, a VCEK and a VLEK the way AMD's KDS
shapes them (CN conventions, RSASSA-PSS/SHA-384 with MGF1-SHA-384 and a 48-byte salt,
EC P-384 leaves, the AMD extensions the store matches on). Keys are made once per session
(RSA-2048, not AMD's 4096, so the tests stay fast); every chain made here is a forgery as far
as coco is concerned, and is trusted only where a test says so with ``store.trust()``.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from coco_snp.certs.certificate import StoredCertificate

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
_AMD = "1.3.6.1.4.1.3704.1."
NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2034, 1, 1, tzinfo=dt.UTC)
#: hwID of every generated VCEK (64 bytes, as Milan's)
HWID = bytes(range(64))
#: blSPL 3, teeSPL 0, snpSPL 8, ucodeSPL 115 in the Milan layout
TCB = 0x7308000000000003


@functools.cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """An RSA-2048 key per name, made once per session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def ec_key(name: str, curve: str = "secp384r1") -> ec.EllipticCurvePrivateKey:
    """An EC key per name and curve, made once per session."""
    return ec.generate_private_key(
        {"secp384r1": ec.SECP384R1(), "secp256r1": ec.SECP256R1()}[curve]
    )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Advanced Micro Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _der_int(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return bytes([0x02, len(body)]) + body


def _ia5(text: str) -> bytes:
    return bytes([0x16, len(text)]) + text.encode()


def issue(
    subject: str,
    issuer: str,
    public_key: Any,
    signer: Any,
    *,
    serial: int = 0x10000,
    amd: dict[str, bytes] | None = None,
    not_before: dt.datetime = NOT_BEFORE,
    not_after: dt.datetime = NOT_AFTER,
) -> bytes:
    """One DER certificate, signed RSASSA-PSS/SHA-384 (salt 48) by ``signer``."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for oid, value in (amd or {}).items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(_AMD + oid), value), critical=False
        )
    cert = builder.sign(signer, hashes.SHA384(), rsa_padding=_PSS)
    return cert.public_bytes(serialization.Encoding.DER)


def vcek_extensions(product: str = "Milan", tcb: int = TCB, hwid: bytes = HWID) -> dict[str, bytes]:
    """The AMD extensions of a VCEK: productName, the SPLs of a Milan TCB, hwID."""
    b = tcb.to_bytes(8, "little")
    return {
        "1": _der_int(1),
        "2": _ia5(product),
        "3.1": _der_int(b[0]),
        "3.2": _der_int(b[1]),
        "3.3": _der_int(b[6]),
        "3.8": _der_int(b[7]),
        "4": hwid,
    }


def vlek_extensions(product: str = "Milan", tcb: int = TCB) -> dict[str, bytes]:
    """The AMD extensions of a VLEK: productName, SPLs, cspID (no hwID)."""
    ext = vcek_extensions(product, tcb)
    del ext["4"]
    ext["5"] = _ia5("CN=csp.example")
    return ext


@attrs.frozen
class Chain:
    """A generated ARK -> ASK -> VCEK and ARK -> ASVK -> VLEK for one product name."""

    ark: bytes
    ask: bytes
    asvk: bytes
    vcek: bytes
    vlek: bytes

    def stored(self, name: str) -> StoredCertificate:
        """One of them as a StoredCertificate."""
        return StoredCertificate.from_der(getattr(self, name), source=f"generated-{name}.der")

    def pem(self, *names: str) -> bytes:
        """Some of them as one PEM bundle, in the order given."""
        return b"".join(
            x509.load_der_x509_certificate(getattr(self, n)).public_bytes(
                serialization.Encoding.PEM
            )
            for n in names
        )


def make_chain(product: str = "Milan", tag: str = "") -> Chain:
    """A chain named like AMD's for ``product``; ``tag`` picks other keys."""
    ark, ask, asvk = rsa_key(f"ark{tag}"), rsa_key(f"ask{tag}"), rsa_key(f"asvk{tag}")
    ark_cn, ask_cn, asvk_cn = f"ARK-{product}", f"SEV-{product}", f"SEV-VLEK-{product}"
    return Chain(
        ark=issue(ark_cn, ark_cn, ark.public_key(), ark),
        ask=issue(ask_cn, ark_cn, ask.public_key(), ark, serial=0x10001),
        asvk=issue(asvk_cn, ark_cn, asvk.public_key(), ark, serial=0x10101),
        vcek=_leaf("SEV-VCEK", ask_cn, f"vcek{tag}", ask, vcek_extensions(product)),
        vlek=_leaf("SEV-VLEK", asvk_cn, f"vlek{tag}", asvk, vlek_extensions(product)),
    )


def _leaf(cn: str, issuer: str, key: str, signer: Any, amd: dict[str, bytes]) -> bytes:
    """A VCEK/VLEK: EC P-384 key, serial 1 (AMD uses 0, which cryptography refuses to write)."""
    return issue(cn, issuer, ec_key(key).public_key(), signer, serial=1, amd=amd)


@pytest.fixture(scope="session")
def forged() -> Chain:
    """A Milan-shaped chain that is not AMD's (a forged root named ARK-Milan)."""
    return make_chain()


@pytest.fixture(scope="session")
def certgen() -> Any:
    """The generators above, for tests (test modules cannot import a conftest)."""
    import types

    return types.SimpleNamespace(
        issue=issue,
        make_chain=make_chain,
        rsa_key=rsa_key,
        ec_key=ec_key,
        vcek_extensions=vcek_extensions,
        vlek_extensions=vlek_extensions,
        HWID=HWID,
        TCB=TCB,
        NOT_BEFORE=NOT_BEFORE,
        NOT_AFTER=NOT_AFTER,
    )
