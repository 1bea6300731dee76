# SPDX-License-Identifier: Apache-2.0
"""The certificate service a VMM plugs in: answers every SNP certificate request.

One handler for :class:`~coco_core.requests.CertificateRequest`, whatever ABI the kernel
speaks (released ``KVM_EXIT_SNP_REQ_CERTS`` or a proposal). It validates the guest's
buffer, builds the GHCB certificate table (docs/reference/kernel-abi.md §3.6) and writes it
into guest memory, or says how many pages the guest must provide.

With ``blob=path`` it follows the upstream race-avoidance protocol (§3.2;
:mod:`coco_snp.certs.lock`): the blob is read under a shared OFD lock, and the lock is
released by the run loop through :attr:`Outcome.after_kernel_completion`, once KVM has
completed the request (issued the firmware call) on the ``immediate_exit`` re-entry.
An update in progress gives RETRY (EAGAIN → ``SNP_GUEST_VMM_ERR_BUSY``), which is legal
because nothing was handed on yet.

**Why RETRY cannot follow a write.** :meth:`CertificateService.__call__` has two phases:
:meth:`_load` (the only place RETRY comes from; it touches no guest memory) and
:meth:`_deliver`, whose result type admits only OK, BUFFER_TOO_SMALL and ERROR.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias
from uuid import UUID

from coco_core.plugin import CertificateRequest, CoCoStatus, GuestMemoryLike, Outcome
from coco_snp.certs.table import (
    PAGE_SIZE,
    CertTableError,
    CertTableKind,
    build_cert_table,
    parse_cert_table,
    required_pages,
)

if TYPE_CHECKING:
    from coco_snp.certs.store import CertificateStore

__all__ = ["CertificateService", "CertificateSource", "table_from_store"]

log = logging.getLogger("coco_snp.service")

_GPA_LIMIT = 1 << 64  # a GPA range must not wrap the 64-bit address space
_Final: TypeAlias = Literal[CoCoStatus.OK, CoCoStatus.BUFFER_TOO_SMALL, CoCoStatus.ERROR]
#: A certificate store, a ready table (bytes), or ``(GUID or kind, DER)`` entries.
CertificateSource: TypeAlias = (
    "CertificateStore | bytes | Iterable[tuple[UUID | CertTableKind | str, bytes]]"
)


def table_from_store(store: CertificateStore) -> bytes:
    """The table for a store: its first VCEK (else VLEK) that it serves, with that leaf's
    verified ASK (or ASVK) and ARK.

    The leaf must reach a trusted root (:meth:`CertificateStore.served_chain`): a store
    refuses to serve a forged chain. A store with no VCEK/VLEK at all gives its first ASK
    (or ASVK) and ARK. ASVK goes under the ASK GUID (no ASVK GUID exists, kernel-abi.md §3.6).

    :raises CertificateVerificationError: the store holds leaves but serves none of them.
    """
    from coco_snp.certs.certificate import CertificateVerificationError, CertKind

    leaves = store.of_kind(CertKind.VCEK) + store.of_kind(CertKind.VLEK)
    if leaves:
        for leaf in leaves:
            if store.serves(leaf):
                chain = store.served_chain(leaf)
                break
        else:
            reasons = "; ".join(f"{c.label}: {store.untrusted_reason(c)}" for c in leaves)
            raise CertificateVerificationError(f"no certificate to serve: {reasons}")
        slots = (
            CertTableKind.VCEK if chain[0].kind is CertKind.VCEK else CertTableKind.VLEK,
            CertTableKind.ASK,
            CertTableKind.ARK,
        )
        return build_cert_table([(slot, c.der) for slot, c in zip(slots, chain, strict=False)])
    entries: list[tuple[CertTableKind, bytes]] = []
    for slot, kinds in (
        (CertTableKind.ASK, (CertKind.ASK, CertKind.ASVK)),
        (CertTableKind.ARK, (CertKind.ARK,)),
    ):
        for kind in kinds:
            found = store.of_kind(kind)
            if found:
                entries.append((slot, found[0].der))
                break
    return build_cert_table(entries)


class CertificateService:
    """Handler for :class:`CertificateRequest`: ``dispatcher.on(CertificateRequest, svc)``.

    :param memory: guest memory (bounds-checked ``read``/``write``/``contains``).
    :param source: the certificates: a :class:`~coco_snp.certs.store.CertificateStore`, a
        ready GHCB table, or ``(GUID or kind, DER)`` entries. Built once, here.
    :param blob: instead of ``source``, a certificate blob file (a GHCB table) read
        under the shared OFD lock for every request.
    :param wait: with ``blob``, block while an update holds the exclusive lock instead
        of answering RETRY.
    :raises CertTableError: ``source`` does not make a valid table.
    :raises CertificateVerificationError: a store whose VCEK/VLEK chains reach no
        trusted root (see :func:`table_from_store`).
    """

    def __init__(
        self,
        memory: GuestMemoryLike,
        source: CertificateSource | None = None,
        *,
        blob: str | Path | None = None,
        wait: bool = False,
    ) -> None:
        if (source is None) == (blob is None):
            raise ValueError("give exactly one of source and blob")
        self.memory = memory
        self.blob = None if blob is None else Path(blob)
        self.wait = wait
        self._table: bytes | None = None
        if source is not None:
            if isinstance(source, bytes | bytearray):
                table = bytes(source)
            elif hasattr(source, "of_kind"):
                table = table_from_store(source)  # type: ignore[arg-type]
            else:
                table = build_cert_table(source)
            self._table = _trimmed(table)

    # -- the handler --------------------------------------------------------------------

    def __call__(self, request: CertificateRequest, context: object = None) -> Outcome:
        """Answer one request (see the module notes for the two phases)."""
        gpa, npages = request.gpa, request.npages
        if not _valid_range(self.memory, gpa, npages):
            return Outcome(
                CoCoStatus.ERROR,
                detail=f"certificate buffer gpa={gpa:#x} npages={npages} is not a 4 KiB "
                "aligned range inside guest RAM",
            )
        loaded = self._load()
        if isinstance(loaded, Outcome):
            return loaded
        table, release = loaded
        try:
            status, outcome = self._deliver(table, gpa, npages, release)
        except BaseException:
            if release is not None:
                release()
            raise
        if status is not CoCoStatus.OK and release is not None:
            release()  # nothing handed on: drop the lock now
        return outcome

    def _load(self) -> tuple[bytes, Callable[[], None] | None] | Outcome:
        """Phase 1: get the table. The only source of RETRY; writes no guest memory."""
        if self._table is not None:
            return self._table, None
        assert self.blob is not None
        from coco_snp.certs.lock import (
            CertificateFileError,
            CertificatesBusy,
            read_certificates_locked,
        )

        try:
            locked = read_certificates_locked(self.blob, wait=self.wait)
        except CertificatesBusy as exc:
            return Outcome(CoCoStatus.RETRY, detail=str(exc))
        except CertificateFileError as exc:
            log.warning("certificate blob unusable: %s", exc)
            return Outcome(CoCoStatus.ERROR, detail=str(exc))
        try:
            table = _trimmed(locked.data)
        except CertTableError as exc:
            locked.release()
            log.warning("certificate blob %s is not a GHCB table: %s", self.blob, exc)
            return Outcome(CoCoStatus.ERROR, detail=f"{self.blob}: {exc}")
        return table, locked.release

    def _deliver(
        self, table: bytes, gpa: int, npages: int, release: Callable[[], None] | None
    ) -> tuple[_Final, Outcome]:
        """Phase 2: write the table or say how big it is; never RETRY."""
        pages = required_pages(len(table))
        if len(table) > npages * PAGE_SIZE:
            return CoCoStatus.BUFFER_TOO_SMALL, Outcome(
                CoCoStatus.BUFFER_TOO_SMALL,
                size_needed=pages,
                detail=f"table needs {pages} pages, guest gave {npages}",
            )
        try:
            self.memory.write(gpa, table)
        except Exception as exc:  # the range was checked; a failing write is a VMM error
            log.warning("writing the certificate table at %#x failed: %s", gpa, exc)
            return CoCoStatus.ERROR, Outcome(CoCoStatus.ERROR, detail=str(exc))
        after = (release,) if release is not None else ()
        return CoCoStatus.OK, Outcome(CoCoStatus.OK, after_kernel_completion=after)


def _valid_range(memory: GuestMemoryLike, gpa: int, npages: int) -> bool:
    """4 KiB aligned, no 64-bit wrap, wholly inside guest RAM (npages 0 only asks a size)."""
    if gpa < 0 or npages < 0 or gpa % PAGE_SIZE:
        return False
    size = npages * PAGE_SIZE
    if gpa + size > _GPA_LIMIT:
        return False
    return size == 0 or memory.contains(gpa, size)


def _trimmed(table: bytes) -> bytes:
    """Validate a table and drop trailing padding after the last certificate."""
    parsed = parse_cert_table(table)
    return bytes(table[: parsed.data_end])
