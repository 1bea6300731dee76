# SPDX-License-Identifier: Apache-2.0
"""Neutral requests: what the guest wants, whatever the vendor.

Each class is a frozen value built by a plugin's decoder from one exit. Its
``kind`` is the stable name used in traces and JSON output. Handlers are
registered per request class, so a VMM answers "a certificate request" once
for every SNP ABI revision, and "a memory conversion" once for SNP and TDX.

Every field a guest controls is carried as the guest sent it (after the
kernel's own transformations, such as a stripped shared bit): validating it is
the handler's job, and the shipped services do it before any use.
"""

from __future__ import annotations

import enum
from typing import ClassVar

import attrs

__all__ = [
    "CertificateRequest",
    "EventNotifySetup",
    "MemoryConversion",
    "MemoryFault",
    "MsrAccess",
    "NeutralRequest",
    "NotHandled",
    "PortIo",
    "QuoteRequest",
    "TdvmcallInfoQuery",
    "Termination",
    "Unsupported",
    "VendorSpecific",
]


class NeutralRequest:
    """Base of every neutral request; ``kind`` names it in traces."""

    __slots__ = ()
    kind: ClassVar[str] = "request"


@attrs.frozen
class CertificateRequest(NeutralRequest):
    """The guest wants the host's certificate table (SNP extended guest request).

    :param gpa: guest physical address of the guest's certificate buffer.
    :param npages: its size in 4 KiB pages.
    """

    kind: ClassVar[str] = "certificate"
    gpa: int
    npages: int


@attrs.frozen
class QuoteRequest(NeutralRequest):
    """The guest wants a quote for the report in a shared buffer (TDX GetQuote).

    :param gpa: guest physical address of the shared buffer (shared bit stripped).
    :param size: the buffer's size in bytes.
    """

    kind: ClassVar[str] = "quote"
    gpa: int
    size: int


@attrs.frozen
class EventNotifySetup(NeutralRequest):
    """The guest names the interrupt vector to raise when async work completes."""

    kind: ClassVar[str] = "event_notify"
    vector: int


@attrs.frozen
class TdvmcallInfoQuery(NeutralRequest):
    """The guest asks which optional calls the VMM supports (GetTdVmCallInfo)."""

    kind: ClassVar[str] = "tdvmcall_info"
    leaf: int


@attrs.frozen
class MemoryConversion(NeutralRequest):
    """The guest asks to convert a GPA range between private and shared.

    :param gpa: first byte of the range (shared bit stripped).
    :param npages: number of **4 KiB** pages, as ``hypercall.args[1]`` counts
        them whatever the page-size attribute says (``__kvm_emulate_hypercall``
        checks ``gpa_to_gfn(gpa) + npages``; SNP sends 512 per 2 MiB PSC entry).
    :param to_private: True for shared→private, False for private→shared.
    :param page_size: the guest's page-size hint from the attributes (4 KiB,
        2 MiB or 1 GiB); it does not scale ``npages``.
    """

    kind: ClassVar[str] = "memory_conversion"
    gpa: int
    npages: int
    to_private: bool
    page_size: int = 4096

    @property
    def size(self) -> int:
        """Length of the range in bytes (``npages`` 4 KiB pages)."""
        return self.npages << 12


@attrs.frozen
class MemoryFault(NeutralRequest):
    """A guest access faulted because the range has the other private/shared state."""

    kind: ClassVar[str] = "memory_fault"
    gpa: int
    size: int
    to_private: bool


@attrs.frozen
class Termination(NeutralRequest):
    """The guest terminated itself or reported a fatal error.

    :param reason: a readable reason (decoded reason set and code, or the
        guest's message text).
    :param code: the vendor's error or reason code, if any.
    :param gpa: an address the guest attached (GHCB page, TDX info page), if any.
    :param message: the guest's message text (TDX ReportFatalError), if any.
    """

    kind: ClassVar[str] = "termination"
    reason: str
    code: int | None = None
    gpa: int | None = None
    message: str = ""


@attrs.frozen
class PortIo(NeutralRequest):
    """A port I/O exit (``KVM_EXIT_IO``); the emulated TEE's doorbell."""

    kind: ClassVar[str] = "port_io"
    port: int
    out: bool
    size: int
    count: int
    data_offset: int


@attrs.frozen
class MsrAccess(NeutralRequest):
    """A user-space MSR exit (``KVM_EXIT_X86_RDMSR``/``WRMSR``)."""

    kind: ClassVar[str] = "msr"
    index: int
    write: bool
    data: int
    reason: int


@attrs.frozen
class VendorSpecific(NeutralRequest):
    """A request with no shared meaning, kept with its vendor's field names."""

    kind: ClassVar[str] = "vendor_specific"
    vendor: str
    name: str
    fields: tuple[tuple[str, int], ...]


class NotHandled(enum.Enum):
    """Why an exit came back to the VMM untouched, as :attr:`Unsupported.why`.

    .. versionadded:: 0.2
    """

    #: no decoder claims the exit (or its sub-call): no plugin knows it
    UNCLAIMED = "unclaimed"
    #: a decoder claims it, but the VMM registered no handler for its request
    #: and the decoder has no default answer (``default_status=None``)
    NO_HANDLER = "no_handler"
    #: the decoder that claims the exit read it and declined it (its decode
    #: returned :class:`Unsupported`): not one this plugin answers
    DECLINED = "declined"


@attrs.frozen
class Unsupported(NeutralRequest):
    """An exit handed back to the VMM untouched, kept raw, with why.

    A decoder declines an exit by returning ``Unsupported(reason)`` (a
    ``detail`` is kept); the dispatcher hands the VMM a complete one.

    :param raw_reason: ``kvm_run.exit_reason``.
    :param discriminator: the sub-call number if the exit has one (TDX ``nr``),
        a tuple for a compound key (RISC-V SBI extension and function id).
    :param raw: a copy of the 256-byte exit union.
    :param why: unclaimed, claimed without a handler, or declined
        (``.. versionadded:: 0.2``).
    :param claimed_by: the name of the decoder that claimed the exit, if any
        (``.. versionadded:: 0.2``).
    :param detail: the decoder's reason for declining, if it gave one
        (``.. versionadded:: 0.2``).
    """

    kind: ClassVar[str] = "unsupported"
    raw_reason: int
    discriminator: int | tuple[int, ...] | None = None
    raw: bytes = b""
    why: NotHandled = NotHandled.UNCLAIMED
    claimed_by: str | None = None
    detail: str = ""
