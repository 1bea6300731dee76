# SPDX-License-Identifier: Apache-2.0
"""AMD's roots of trust, pinned by the SHA-256 of their SubjectPublicKeyInfo.

A chain is trusted because it reaches one of these keys, never because a certificate is
*named* ``ARK-Milan``: anyone can make a self-signed RSASSA-PSS certificate with that name.
The pins are the SHA-256 of the DER ``SubjectPublicKeyInfo`` (the same value as
``openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256``).

**Where they come from.** AMD's Key Distribution Service serves each product's chain at
``https://kdsintf.amd.com/vcek/v1/<product>/cert_chain`` (ASK, then ARK) and
``https://kdsintf.amd.com/vlek/v1/<product>/cert_chain`` (ASVK, then ARK) (VCEK Certificate
and KDS Interface Specification, AMD pub. 57230). KDS cannot be reached from the machine
these pins were computed on, so they were computed on 2026-12-01 from three independent
public copies of those chains, which agree on every key:

* virtee/sev @ 9cf2adbffa209cc5becf7ff89ffdf624e7278ced
  ``src/certs/snp/builtin/{milan,genoa,turin}/{ark,ask}.pem``
  (testdata/snp/certs/ark_*.pem, ask_*.pem);
* google/go-sev-guest @ af1c107a648f47253da23a9de7a7c82ec073cfdb ``verify/trust/ask_ark_*.pem``
  and ``ask_ark_*_vlek.pem`` (testdata/snp/certs/ask_ark_*.pem, asvk_ark_*.pem);
* confidential-containers/trustee @ 78962cd416dcc8a32f9377e0066a28fe21420f69
  ``deps/verifier/src/snp/{milan,genoa,turin}_ask_ark_asvk.pem``.

The three ARK pins also appear, computed the same way, in several unrelated public
verifiers (found with a code search for the Milan value). Every signature in these
chains verifies (testdata/SOURCES.md). To trust another root (a test chain), add it
explicitly: :meth:`coco_snp.certs.store.CertificateStore.trust` or ``--trust-root FILE``.
"""

from __future__ import annotations

import attrs

from coco_snp.certs.certificate import CertKind
from coco_snp.certs.tcb import Product

__all__ = ["AMD_ROOTS", "PINNED_BY_SPKI", "PinnedKey"]

_READ = "2026-12-01"
_VCEK_CHAIN = "AMD KDS /vcek/v1/{}/cert_chain"
_VLEK_CHAIN = "AMD KDS /vlek/v1/{}/cert_chain"


@attrs.frozen
class PinnedKey:
    """One AMD key coco trusts: what it is, its SPKI SHA-256, and where it was read.

    :param kind: ARK, ASK or ASVK.
    :param product: the product line whose chains it anchors.
    :param subject_cn: the CN of AMD's certificate for it (a check, not the trust).
    :param spki_sha256: SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex.
    :param source: the KDS endpoint and the date the copies were read.
    """

    kind: CertKind
    product: Product
    subject_cn: str
    spki_sha256: str
    source: str


def _pin(kind: CertKind, product: Product, cn: str, sha: str) -> PinnedKey:
    chain = _VLEK_CHAIN if kind is CertKind.ASVK else _VCEK_CHAIN
    return PinnedKey(kind, product, cn, sha, f"{chain.format(product.value)}, read {_READ}")


#: The roots coco trusts by default: ARK and ASK of Milan, Genoa and Turin, and their ASVKs.
AMD_ROOTS: tuple[PinnedKey, ...] = (
    _pin(
        CertKind.ARK,
        Product.MILAN,
        "ARK-Milan",
        "9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9",
    ),
    _pin(
        CertKind.ASK,
        Product.MILAN,
        "SEV-Milan",
        "42491669ccb851d627ea9846cd24eccbeb7de7c2a62740120fff88001d38ebb6",
    ),
    _pin(
        CertKind.ASVK,
        Product.MILAN,
        "SEV-VLEK-Milan",
        "66450a123ea5876206df67f2514a4fea224c0f63b18313423078b0edc4535e33",
    ),
    _pin(
        CertKind.ARK,
        Product.GENOA,
        "ARK-Genoa",
        "429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831",
    ),
    _pin(
        CertKind.ASK,
        Product.GENOA,
        "SEV-Genoa",
        "0324d55bcd48ba877a8fd87c0e1b4934dec8448e3807a24384a34dc6a6c9ebb8",
    ),
    _pin(
        CertKind.ASVK,
        Product.GENOA,
        "SEV-VLEK-Genoa",
        "7d1633252ebbadaa75f96e9b4e6f7d43a90ceb3f843937482630f8da2459264e",
    ),
    _pin(
        CertKind.ARK,
        Product.TURIN,
        "ARK-Turin",
        "4f125410563a2ab9a50356f9243f6fe0b6f73de98603f53f90339c70e9d7ad08",
    ),
    _pin(
        CertKind.ASK,
        Product.TURIN,
        "SEV-Turin",
        "0000ead352025f208bf55297c4192c34cd1b878002107366d8f2065a9ae7d3a9",
    ),
    _pin(
        CertKind.ASVK,
        Product.TURIN,
        "SEV-VLEK-Turin",
        "bfc441408b2f806c5dbf180bd8920e6e60dd404d82141780d85dbf962954d386",
    ),
)

#: spki_sha256 -> the pinned key
PINNED_BY_SPKI: dict[str, PinnedKey] = {p.spki_sha256: p for p in AMD_ROOTS}
