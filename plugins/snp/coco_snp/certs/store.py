# SPDX-License-Identifier: Apache-2.0
"""The AMD SEV-SNP certificate store: chains to AMD's pinned roots and the signer of a report.

A :class:`CertificateStore` holds :class:`~coco_snp.certs.certificate.StoredCertificate`
values (ARK, ASK, ASVK, VCEK, VLEK), verifies a certificate's chain
(:meth:`CertificateStore.verify_chain`) and finds the certificate that signed an
attestation report (:meth:`CertificateStore.find_signer`), saying why every
other candidate was rejected.

**Trust.** A chain is complete only when it reaches a key the store trusts: one of
AMD's pinned keys (:data:`~coco_snp.certs.roots.AMD_ROOTS`, by SPKI SHA-256, for the
product of the certificate and the kind the pin names) or a root added explicitly
with :meth:`CertificateStore.trust`. A self-signed certificate that is neither is
reported as such, whatever its name. The certificates loaded into the store are
chain material only, never trust. A store serves a VCEK/VLEK (:meth:`~CertificateStore.vcek_for`,
:meth:`~CertificateStore.for_tcb`, :meth:`~CertificateStore.find_signer`,
:meth:`~CertificateStore.served_chain`) only if its chain reaches a trusted key with
every signature verified; ``allow_untrusted=True`` serves it anyway and logs each time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs

from coco_core.plugin import CoCoError
from coco_snp.certs.certificate import (
    CERT_SUFFIXES,
    ISSUER_KIND,
    AmbiguousCertificateError,
    CertificateError,
    CertificateVerificationError,
    CertKind,
    StoredCertificate,
    as_aware,
    is_ec_p384,
    load_certificates,
    verify_issued_by,
)
from coco_snp.certs.roots import PINNED_BY_SPKI, PinnedKey
from coco_snp.certs.tcb import TcbVersion
from coco_snp.report import AttestationReport, SigningKey

__all__ = ["CertificateStore", "ChainStatus", "SignerSearch", "spki_sha256"]

log = logging.getLogger("coco_snp.certs.store")


def spki_sha256(cert: StoredCertificate) -> str:
    """SHA-256 of the certificate's DER SubjectPublicKeyInfo, hex: what a pin names."""
    return hashlib.sha256(cert.spki).hexdigest()


@attrs.frozen
class ChainStatus:
    """The result of :meth:`CertificateStore.verify_chain`."""

    certificate: StoredCertificate
    path: tuple[StoredCertificate, ...]  # leaf first, as far as issuers were found
    signatures_ok: bool  # every link that could be checked verified
    complete: bool  # reached a trusted key: AMD's pinned ones or one added with trust()
    time_ok: bool
    at: dt.datetime
    problems: tuple[str, ...]
    anchor: str = ""  # what the chain ends in: "AMD ARK-Milan (pinned)", "trust root ..."

    @property
    def ok(self) -> bool:
        """Complete, every signature verified, every certificate valid at :attr:`at`."""
        return self.signatures_ok and self.complete and self.time_ok

    def summary(self) -> str:
        """One line for humans."""
        chain = " -> ".join(f"{c.kind.value}({c.subject_cn})" for c in self.path)
        if self.ok:
            return f"verified: {chain} at {self.at.isoformat()}, anchored in {self.anchor}"
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


@attrs.define
class CertificateStore:
    """A mutable collection of AMD certificates with chain and report-signer lookups.

    :param certificates: chain material (never trusted for being here).
    :param allow_untrusted: serve VCEKs/VLEKs whose chain does not reach a trusted key,
        logging each time (for tests and development; never in production).
    """

    certificates: list[StoredCertificate] = attrs.field(factory=list)
    allow_untrusted: bool = attrs.field(default=False, kw_only=True)
    #: SPKI SHA-256 -> a root added with trust()
    _extra_roots: dict[str, StoredCertificate] = attrs.field(factory=dict, init=False)
    #: DER -> why the store will not serve it (None: it will), cached until the store changes
    _untrusted: dict[bytes, str | None] = attrs.field(factory=dict, init=False, repr=False)

    # -- loading ---------------------------------------------------------------------------
    def add(self, certs: Iterable[StoredCertificate]) -> tuple[StoredCertificate, ...]:
        """Add certificates (chain material, not trust); returns them."""
        added = tuple(certs)
        self.certificates.extend(added)
        self._untrusted.clear()
        return added

    def trust(self, cert: StoredCertificate) -> None:
        """Trust ``cert``'s key as a root besides AMD's pinned ones (a test chain's ARK).

        Logged: a root that is not AMD's makes any chain it signs verify.
        """
        sha = spki_sha256(cert)
        log.warning(
            "trusting %s (SPKI sha256 %s) as a root besides AMD's pinned keys", cert.label, sha
        )
        self._extra_roots[sha] = cert
        if all(c.der != cert.der for c in self.certificates):
            self.certificates.append(cert)
        self._untrusted.clear()

    def anchor_of(self, cert: StoredCertificate) -> tuple[str | None, str | None]:
        """``(what the key is, why it cannot anchor)`` for ``cert``'s key; ``(None, None)``.

        A pinned key anchors only a certificate of the kind and product its pin names.
        """
        sha = spki_sha256(cert)
        extra = self._extra_roots.get(sha)
        if extra is not None:
            return f"trust root {extra.subject_cn!r} (added explicitly)", None
        pin: PinnedKey | None = PINNED_BY_SPKI.get(sha)
        if pin is None:
            return None, None
        what = f"AMD {pin.subject_cn} (pinned; {pin.source})"
        if cert.kind is not pin.kind or cert.product is not pin.product:
            product = cert.product.value if cert.product else "unknown product"
            return what, (
                f"{cert.label} carries the key of AMD {pin.subject_cn} but is a "
                f"{cert.kind.value} of {product}; expected the {pin.kind.value} of "
                f"{pin.product.value}"
            )
        return what, None

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
        when = as_aware(at) if at is not None else dt.datetime.now(dt.UTC)
        problems: list[str] = []
        path = [cert]
        signatures_ok = True
        complete = False
        anchor = ""
        current = cert
        for _ in range(4):  # ARK -> ASK/ASVK -> VCEK/VLEK is at most 3 links
            what, mismatch = self.anchor_of(current)
            if mismatch is not None:
                problems.append(mismatch)
                break
            if what is not None and not current.is_self_issued and not complete:
                # a pinned ASK/ASVK: its key signed the rest; walk on only to show the ARK
                complete, anchor = True, what
            if current.is_self_issued:
                try:
                    verify_issued_by(current, current)
                except CertificateVerificationError as e:
                    signatures_ok = False
                    problems.append(f"self-signature: {e}")
                    break
                if complete:
                    anchor = what or anchor
                elif what is None:
                    problems.append(
                        f"{current.label} is self-signed but its key is not one of AMD's pinned "
                        f"roots (SPKI sha256 {spki_sha256(current)}); a chain is trusted by its "
                        "key, not its name (add a test root with --trust-root FILE)"
                    )
                else:
                    complete, anchor = True, what
                break
            expected = ISSUER_KIND.get(current.kind)
            candidates = self.issuers_of(current)
            if expected is not None:
                candidates = [c for c in candidates if c.kind is expected]
            if not candidates:
                if complete:
                    break  # anchored already: the ARK is only for show
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
                if complete:
                    break  # a look-alike ARK does not undo a pinned ASK's signature
                signatures_ok = False
                problems.append(errors[0])
                break
            path.append(found)
            current = found
        if complete and cert.product is not None and current.product not in (None, cert.product):
            complete = False
            problems.append(
                f"{cert.label} is a {cert.product.value} certificate but its chain ends in "
                f"{current.label}; expected a {cert.product.value} root"
            )
        if cert.kind in (CertKind.VCEK, CertKind.VLEK):
            try:
                leaf_ok = is_ec_p384(cert.public_key())
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
            anchor=anchor,
        )

    # -- serving -------------------------------------------------------------------------
    def untrusted_reason(self, cert: StoredCertificate) -> str | None:
        """Why the store will not serve ``cert`` (its chain does not reach a trusted key with
        every signature verified), or None. Validity dates are not part of it.
        """
        if cert.der not in self._untrusted:
            status = self.verify_chain(cert)
            ok = status.signatures_ok and status.complete
            self._untrusted[cert.der] = (
                None if ok else "chain does not reach a trusted root: " + "; ".join(status.problems)
            )
        return self._untrusted[cert.der]

    def serves(self, cert: StoredCertificate) -> bool:
        """True if the store may hand ``cert`` out (see the module notes)."""
        why = self.untrusted_reason(cert)
        if why is None:
            return True
        if self.allow_untrusted:
            log.warning("serving %s although its %s (allow_untrusted=True)", cert.label, why)
            return True
        return False

    def served_chain(self, leaf: StoredCertificate) -> tuple[StoredCertificate, ...]:
        """``leaf`` and the issuers it verified against, leaf first, for a certificate table.

        :raises CertificateVerificationError: the store does not serve ``leaf``.
        """
        if not self.serves(leaf):
            raise CertificateVerificationError(
                f"refusing to serve {leaf.label}: {self.untrusted_reason(leaf)}"
            )
        return self.verify_chain(leaf).path

    # -- lookups ---------------------------------------------------------------------------
    def vcek_for(self, chip_id: bytes, tcb: int | TcbVersion) -> StoredCertificate | None:
        """The first VCEK whose hwID matches ``chip_id``, whose SPLs equal ``tcb`` and whose
        chain reaches a trusted root."""
        return next(
            (
                c
                for c in self.of_kind(CertKind.VCEK)
                if c.matches_chip_id(chip_id) and c.matches_tcb(tcb) and self.serves(c)
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
            if c.matches_tcb(tcb)
            and (chip_id is None or c.matches_chip_id(chip_id))
            and self.serves(c)
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
        the report signature must verify with its key, and its chain must reach a trusted
        root (:meth:`serves`). With ``at``, the certificate must be valid at that time;
        without it validity is not part of the match.
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
        if not self.serves(cert):
            return self.untrusted_reason(cert)
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
