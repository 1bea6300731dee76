# SPDX-License-Identifier: Apache-2.0
"""The TDX services a VMM plugs into a dispatcher: GetQuote, event notify, GetTdVmCallInfo.

:class:`QuoteService` answers :class:`~coco_core.requests.QuoteRequest` the way
QEMU's ``tdx_handle_get_quote()`` does (docs/reference/kernel-abi.md §2.4,
wire-formats.md §1.7), without ever blocking the vCPU thread on the QGS:

1. ``size == 0`` → INVALID; ``gpa`` or ``size`` not 4 KiB aligned → INVALID
   with ``ALIGN_ERROR``; range not wholly in guest RAM → INVALID.
2. The 24-byte header is read **once** into a snapshot: ``version != 1``,
   ``size > max_size`` (128 KiB, QEMU) or ``in_len > size - 24`` → INVALID.
3. No QGS configured → ``GET_QUOTE_SERVICE_UNAVAILABLE`` in the buffer, R10
   SUCCESS (as QEMU). ``max_in_flight`` (16, QEMU) requests already in flight
   → RETRY (nothing was consumed).
4. Otherwise: ``status = IN_FLIGHT`` into the buffer, the ``in_len`` report
   bytes copied out once, the QGS transaction started on a worker, R10 SUCCESS.

On completion the quote goes to ``gpa + 24``, then ``out_len``, then ``status``
(QEMU's order: data, out_len, status, ``smp_wmb()``; in-process stores land in
program order and x86 does not reorder stores), then the event-notify vector
is injected. Failures: a quote over ``size - 24`` bytes, a timeout, a malformed
QGS answer, a QGS error code, or a client that returns anything but bytes →
``GET_QUOTE_ERROR`` (the QGS code is kept in the log and in
:class:`QuoteCompletion`, in the ``tdx.qgs`` space); QGS unreachable →
``GET_QUOTE_SERVICE_UNAVAILABLE``. The in-flight table is emptied in a
``finally`` whatever happens, and RETRY is refused after acceptance
(:class:`~coco_core.exits.CompletionError`).

**A wedged QGS costs a bounded amount.** Every accepted request has a deadline,
``timeout`` seconds after acceptance, when its buffer says ``GET_QUOTE_ERROR``
if nothing came sooner. The QGS work is bound to that deadline: a client whose
``get_quote`` takes a ``deadline`` keyword (:class:`~coco_tdx.qgs.client.QgsClient`
does) gets it, so its connect and read end with the request; work that has not
started by then never starts (no QGS connection for a buffer that already says
``GET_QUOTE_ERROR``). A request holds its slot until its QGS work has ended, not
only until its buffer was answered: at most ``max_in_flight`` transactions are
running or queued (:attr:`QuoteService.busy`), and beyond that the guest gets
RETRY, however long a client hangs.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from coco_core import Dispatcher, Result
from coco_core.plugin import (
    CoCoStatus,
    CompletionError,
    EventNotifySetup,
    GuestMemoryLike,
    Outcome,
    QuoteRequest,
    TdvmcallInfoQuery,
)
from coco_tdx.complete import TdvmcallInfo
from coco_tdx.ghci import GET_QUOTE_STATUS, QGS, TdvmcallStatus
from coco_tdx.qgs.client import QgsClient, QgsTimeout, QgsUnavailable
from coco_tdx.qgs.wire import QgsErrorCode, QgsProtocolError

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_SIZE",
    "GET_QUOTE_HEADER_SIZE",
    "GET_QUOTE_VERSION",
    "TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT",
    "EventNotifyService",
    "QuoteClient",
    "QuoteCompletion",
    "QuoteService",
    "TdvmcallInfoService",
    "apic_id_of",
]

log = logging.getLogger("coco_tdx.service")

#: ``TDX_GET_QUOTE_HDR_SIZE``: version u64, status u64, in_len u32, out_len u32 (§2.4)
GET_QUOTE_HEADER_SIZE = 24
#: ``GET_QUOTE_CMD_VER`` / ``TDX_GET_QUOTE_STRUCTURE_VERSION`` (tdx-guest driver; QEMU)
GET_QUOTE_VERSION = 1
#: QEMU ``TDX_GET_QUOTE_MAX_BUF_LEN`` = 128 KiB (kernel-abi.md §2.4)
DEFAULT_MAX_SIZE = 128 * 1024
#: QEMU ``TDX_MAX_GET_QUOTE_REQUEST`` = 16 in flight (kernel-abi.md §2.4)
DEFAULT_MAX_IN_FLIGHT = 16
#: GetTdVmCallInfo leaf 1 R11 bit (QEMU ``TDG_VP_VMCALL_SUBFUNC_SET_EVENT_NOTIFY_INTERRUPT``
#: ``BIT_ULL(1)``; KVM ``TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT BIT(1)``). GetQuote
#: has no bit: it is a GHCI base call (<20250717022010.677645-1-xiaoyao.li@intel.com>).
TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT = 1 << 1
#: First and last vector KVM accepts for SetupEventNotifyInterrupt (tdx.c, 6.16)
_VECTOR_MIN, _VECTOR_MAX = 32, 255
_PAGE = 4096  # QEMU checks 4 KiB alignment of gpa and size

_HEADER = struct.Struct("<QQII")
_STATUS = struct.Struct("<Q")
_OUT_LEN = struct.Struct("<I")


class QuoteClient(Protocol):
    """What the service needs from a QGS client (:class:`~coco_tdx.qgs.client.QgsClient`)."""

    def get_quote(self, report: bytes) -> bytes:
        """Turn a TDREPORT into a quote; raise a QgsError subclass on failure."""
        ...


def _client_of(client: QuoteClient | Callable[[], QuoteClient]) -> QuoteClient:
    """An instance with ``get_quote`` is used as is; a class or factory is called."""
    if not isinstance(client, type) and callable(getattr(client, "get_quote", None)):
        return client  # type: ignore[return-value]
    return client()  # type: ignore[operator]


def _takes_deadline(client: QuoteClient) -> bool:
    """True if ``client.get_quote`` accepts a ``deadline`` keyword (QgsClient does)."""
    try:
        params = inspect.signature(client.get_quote).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False
    param = params.get("deadline")
    return param is not None and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD)


def apic_id_of(context: Any) -> int:
    """The vCPU's APIC ID from a dispatch context: an int, or anything with ``apic_id``."""
    if isinstance(context, int) and not isinstance(context, bool):
        return context
    value = getattr(context, "apic_id", 0)
    return value if isinstance(value, int) else 0


@attrs.frozen
class QuoteCompletion:
    """How one accepted GetQuote ended (passed to ``on_complete`` and logged).

    :param ticket: the service's number for the request.
    :param gpa: the shared buffer.
    :param status: the neutral status written.
    :param raw: the ``tdx.get_quote_status`` value written into the buffer.
    :param out_len: bytes of quote written (0 on failure).
    :param qgs_code: the QGS ``error_code`` (``tdx.qgs`` space), if QGS sent one.
    :param detail: why, for people.
    """

    ticket: int
    gpa: int
    status: CoCoStatus
    raw: int
    out_len: int = 0
    qgs_code: int | None = None
    detail: str = ""


class EventNotifyService:
    """Remembers SetupEventNotifyInterrupt vectors and injects them.

    QEMU keeps one vector and the APIC ID of the vCPU that set it, for the
    whole TD; this keeps that (``latest``) and also the vector per APIC ID, so
    a quote requested by a vCPU that registered its own vector goes there.

    :param inject: ``inject(vector, apic_id)``, a fixed interrupt to one vCPU.
    """

    def __init__(self, inject: Callable[[int, int], None] | None = None) -> None:
        self.inject = inject
        self._lock = threading.Lock()
        self._by_apic: dict[int, int] = {}
        self._latest: tuple[int, int] | None = None

    def handle(self, request: EventNotifySetup, context: Any) -> Result:
        """Answer a SetupEventNotifyInterrupt: vector 32..255, else INVALID."""
        vector = request.vector
        if not _VECTOR_MIN <= vector <= _VECTOR_MAX:
            return Outcome(CoCoStatus.INVALID, detail=f"vector {vector:#x} outside 32..255")
        apic = apic_id_of(context)
        with self._lock:
            self._by_apic[apic] = vector
            self._latest = (vector, apic)
        return CoCoStatus.OK

    def target(self, apic_id: int) -> tuple[int, int] | None:
        """``(vector, apic_id)`` to notify for a request from ``apic_id``, if any."""
        with self._lock:
            vector = self._by_apic.get(apic_id)
            if vector is not None:
                return vector, apic_id
            return self._latest

    def notify(self, apic_id: int) -> None:
        """Inject the vector registered for ``apic_id`` (or the TD's latest); never raises."""
        where = self.target(apic_id)
        if where is None or self.inject is None:
            return
        try:
            self.inject(*where)
        except Exception:  # a failed injection must not lose the completion
            log.exception("event-notify injection of vector %d to APIC %d failed", *where)

    def register(self, dispatcher: Dispatcher) -> None:
        """Answer EventNotifySetup on ``dispatcher``."""
        dispatcher.on(EventNotifySetup, self.handle)


@attrs.define
class _InFlight:
    ticket: int
    gpa: int
    size: int
    apic_id: int
    deadline: float  # time.monotonic() when the buffer is answered ERROR
    timer: threading.Timer | None = None
    future: concurrent.futures.Future[None] | None = None


class QuoteService:
    """GetQuote for a VMM: validation, in-flight table, asynchronous QGS completion.

    :param memory: guest memory (bounds-checked ``read``/``write``/``contains``).
    :param client: a QGS client (:class:`~coco_tdx.qgs.client.QgsClient`), a
        factory returning one per request, or None when no QGS is configured.
    :param max_in_flight: requests in flight, counting those whose QGS work has
        not ended yet, before RETRY (QEMU: 16).
    :param max_size: largest shared buffer accepted (QEMU: 128 KiB).
    :param timeout: seconds before an unanswered request completes with ERROR; its
        QGS work ends by then too (see the module notes).
    :param inject: ``inject(vector, apic_id)``; used by :attr:`event_notify`.
    :param executor: where QGS transactions run; a private thread pool by default.
    :param event_notify: share an :class:`EventNotifyService` (one is made otherwise).
    :param on_complete: called with a :class:`QuoteCompletion` after each completion.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        memory: GuestMemoryLike,
        client: QuoteClient | Callable[[], QuoteClient] | None = QgsClient,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_size: int = DEFAULT_MAX_SIZE,
        timeout: float = 30.0,
        inject: Callable[[int, int], None] | None = None,
        executor: concurrent.futures.Executor | None = None,
        event_notify: EventNotifyService | None = None,
        on_complete: Callable[[QuoteCompletion], None] | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight is {max_in_flight}, expected >= 1")
        if not max_size > GET_QUOTE_HEADER_SIZE:
            raise ValueError(f"max_size is {max_size}, expected > {GET_QUOTE_HEADER_SIZE}")
        if not timeout > 0:
            raise ValueError(f"timeout is {timeout}, expected a positive number")
        self.memory = memory
        self.client = client
        self.max_in_flight = max_in_flight
        self.max_size = max_size
        self.timeout = timeout
        self.event_notify = event_notify if event_notify is not None else EventNotifyService()
        if inject is not None:
            self.event_notify.inject = inject
        self.on_complete = on_complete
        self._own_executor = executor is None
        self._executor: concurrent.futures.Executor = (
            executor
            if executor is not None
            else concurrent.futures.ThreadPoolExecutor(
                max_workers=max_in_flight, thread_name_prefix="coco-tdx-quote"
            )
        )
        self._lock = threading.Lock()
        self._in_flight: dict[int, _InFlight] = {}
        #: ticket -> its QGS work, submitted and not ended (running or queued); an
        #: accepted request is busy from acceptance until its worker returns
        self._busy: dict[int, concurrent.futures.Future[None] | None] = {}
        self._next_ticket = 0
        self._closed = False

    # -- the vCPU thread ----------------------------------------------------------------

    def handle(self, request: QuoteRequest, context: Any) -> Result:
        """Validate and accept a GetQuote; never blocks on the QGS."""
        gpa, size = request.gpa, request.size
        if size == 0:
            return Outcome(CoCoStatus.INVALID, detail="size 0")
        if gpa % _PAGE or size % _PAGE:
            return Outcome(
                CoCoStatus.INVALID,
                vendor_code=TdvmcallStatus.ALIGN_ERROR,
                detail=f"gpa {gpa:#x} or size {size:#x} not 4 KiB aligned",
            )
        if size > self.max_size:
            return Outcome(CoCoStatus.INVALID, detail=f"size {size:#x} > {self.max_size:#x}")
        if not self.memory.contains(gpa, size):
            return Outcome(CoCoStatus.INVALID, detail=f"[{gpa:#x}, +{size:#x}) not in guest RAM")
        try:
            version, _status, in_len, _out_len = _HEADER.unpack(
                self.memory.read(gpa, GET_QUOTE_HEADER_SIZE)
            )
        except Exception:  # memory went away between contains() and read()
            log.exception("GetQuote: header at %#x unreadable", gpa)
            return Outcome(CoCoStatus.INVALID, detail="header unreadable")
        if version != GET_QUOTE_VERSION:
            return Outcome(CoCoStatus.INVALID, detail=f"version {version}, expected 1")
        if in_len > size - GET_QUOTE_HEADER_SIZE:
            return Outcome(CoCoStatus.INVALID, detail=f"in_len {in_len} > size - 24")
        client = self.client
        if client is None or self._closed:
            self._write_status(gpa, CoCoStatus.SERVICE_UNAVAILABLE)
            return Outcome(CoCoStatus.OK, detail="no QGS: status SERVICE_UNAVAILABLE")
        with self._lock:
            if len(self._busy) >= self.max_in_flight:
                return Outcome(
                    CoCoStatus.RETRY,
                    detail=f"{self.max_in_flight} in flight or still with the QGS",
                )
            ticket = self._next_ticket
            self._next_ticket += 1
            entry = _InFlight(
                ticket, gpa, size, apic_id_of(context), time.monotonic() + self.timeout
            )
            self._in_flight[ticket] = entry
            self._busy[ticket] = None
        try:
            report = self.memory.read(gpa + GET_QUOTE_HEADER_SIZE, in_len)
            self._write_status(gpa, CoCoStatus.IN_FLIGHT)
            entry.timer = threading.Timer(self.timeout, self._expire, (ticket,))
            entry.timer.daemon = True
            entry.timer.start()
            entry.future = self._executor.submit(self._work, entry, client, report)
            with self._lock:
                if ticket in self._busy:  # not already ended (a fast worker)
                    self._busy[ticket] = entry.future
        except Exception as exc:  # accepted nothing: give the slot back
            with self._lock:
                self._in_flight.pop(ticket, None)
                self._busy.pop(ticket, None)
            if entry.timer is not None:
                entry.timer.cancel()
            log.exception("GetQuote %d: could not start", ticket)
            if isinstance(exc, RuntimeError):  # executor shut down
                self._write_status(gpa, CoCoStatus.SERVICE_UNAVAILABLE)
                return Outcome(CoCoStatus.OK, detail="service shut down")
            return Outcome(CoCoStatus.INVALID, detail="report unreadable")
        return Outcome(CoCoStatus.OK, detail=f"ticket {ticket} in flight")

    def register(self, dispatcher: Dispatcher) -> None:
        """Answer QuoteRequest and EventNotifySetup on ``dispatcher``."""
        dispatcher.on(QuoteRequest, self.handle)
        self.event_notify.register(dispatcher)

    # -- the workers --------------------------------------------------------------------

    def _work(
        self, entry: _InFlight, client: QuoteClient | Callable[[], QuoteClient], report: bytes
    ) -> None:
        ticket = entry.ticket
        status, quote, code = CoCoStatus.ERROR, b"", None
        detail = "worker ended without an answer"
        try:
            with self._lock:
                answered = ticket not in self._in_flight
            if answered or time.monotonic() >= entry.deadline:
                return  # answered ERROR while queued: never open a QGS connection for it
            qgs = _client_of(client)
            if _takes_deadline(qgs):
                got: object = qgs.get_quote(report, deadline=entry.deadline)  # type: ignore[call-arg]
            else:
                got = qgs.get_quote(report)
            if not isinstance(got, bytes | bytearray | memoryview):
                raise TypeError(f"the client returned {type(got).__name__}, expected bytes")
            quote = bytes(got)
            status, detail = CoCoStatus.OK, f"{len(quote)} bytes"
        except QgsTimeout as exc:
            if time.monotonic() >= entry.deadline:  # cut at the service's deadline: its answer
                detail = f"no answer in {self.timeout} s (the QGS work was cut at the deadline)"
            else:  # the client's own, shorter timeout
                detail = f"QGS timeout: {exc}"
            status = CoCoStatus.ERROR
        except QgsUnavailable as exc:
            status, detail = CoCoStatus.SERVICE_UNAVAILABLE, f"QGS unavailable: {exc}"
        except QgsErrorCode as exc:
            code = exc.code
            name = QGS.name_of(exc.code) or "unknown code"
            status, detail = CoCoStatus.ERROR, f"QGS error_code {exc.code:#x} ({name})"
        except QgsProtocolError as exc:
            status, detail = CoCoStatus.ERROR, f"QGS protocol: {exc}"
        except Exception as exc:  # any client bug ends in ERROR, never a stuck request
            log.exception("GetQuote %d: client failed", ticket)
            status, detail = CoCoStatus.ERROR, f"client failed: {exc!r}"
        finally:
            try:
                self.complete(ticket, status, quote, qgs_code=code, detail=detail, _quiet=True)
            finally:
                with self._lock:
                    self._busy.pop(ticket, None)

    def _expire(self, ticket: int) -> None:
        with self._lock:
            entry = self._in_flight.get(ticket)
        if entry is not None and entry.future is not None and entry.future.cancel():
            with self._lock:  # it never started: its slot is free at once
                self._busy.pop(ticket, None)
        self.complete(
            ticket, CoCoStatus.ERROR, detail=f"no answer in {self.timeout} s", _quiet=True
        )

    # -- completion ---------------------------------------------------------------------

    def complete(
        self,
        ticket: int,
        status: CoCoStatus,
        quote: bytes = b"",
        *,
        qgs_code: int | None = None,
        detail: str = "",
        _quiet: bool = False,
    ) -> QuoteCompletion | None:
        """Complete an accepted request: quote, ``out_len``, then ``status``; inject.

        :raises CompletionError: ``status`` is RETRY (the request was accepted),
            or ``ticket`` is not in flight (unless called by the service itself).
        """
        if status is CoCoStatus.RETRY:
            raise CompletionError(
                f"GetQuote {ticket}: RETRY after the request was accepted would make the "
                "guest resend a request already handed to the QGS"
            )
        with self._lock:
            entry = self._in_flight.pop(ticket, None)
        if entry is None:
            if _quiet:
                return None  # the timer and the worker raced; the first one won
            raise CompletionError(f"GetQuote {ticket}: not in flight")
        if entry.timer is not None:
            entry.timer.cancel()
        capacity = entry.size - GET_QUOTE_HEADER_SIZE
        given: object = quote  # the public API is called with anything a VMM has
        if not isinstance(given, bytes | bytearray | memoryview):
            status, detail, quote = CoCoStatus.ERROR, f"quote is {type(given).__name__}", b""
        elif status is CoCoStatus.OK and len(quote) > capacity:
            status, detail = CoCoStatus.ERROR, f"quote of {len(quote)} bytes > {capacity}"
        kind: object = status
        if type(kind) is not CoCoStatus or status is CoCoStatus.IN_FLIGHT:
            status, detail = CoCoStatus.ERROR, f"status {status!r} does not end a request"
        out_len = len(quote) if status is CoCoStatus.OK else 0
        raw = GET_QUOTE_STATUS.encode(status)
        try:
            if out_len:
                self.memory.write(entry.gpa + GET_QUOTE_HEADER_SIZE, quote)
            self.memory.write(entry.gpa + 20, _OUT_LEN.pack(out_len))  # out_len at +20
            self.memory.write(entry.gpa + 8, _STATUS.pack(raw))  # status at +8, last
        except Exception:
            log.exception("GetQuote %d: writing the result to %#x failed", ticket, entry.gpa)
        done = QuoteCompletion(ticket, entry.gpa, status, raw, out_len, qgs_code, detail)
        level = logging.INFO if status is CoCoStatus.OK else logging.WARNING
        log.log(
            level,
            "GetQuote %d at %#x: %s (%s)",
            ticket,
            entry.gpa,
            GET_QUOTE_STATUS.name_of(raw),
            detail,
        )
        self.event_notify.notify(entry.apic_id)
        if self.on_complete is not None:
            try:
                self.on_complete(done)
            except Exception:
                log.exception("GetQuote %d: on_complete failed", ticket)
        return done

    def _write_status(self, gpa: int, status: CoCoStatus) -> None:
        self.memory.write(gpa + 8, _STATUS.pack(GET_QUOTE_STATUS.encode(status)))

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests accepted and not yet completed."""
        with self._lock:
            return len(self._in_flight)

    @property
    def busy(self) -> int:
        """QGS transactions submitted and not ended (running or queued): at most max_in_flight."""
        with self._lock:
            return len(self._busy)

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting, finish what is in flight, stop the workers.

        Requests still in flight when the workers are gone complete with ERROR;
        new requests get SERVICE_UNAVAILABLE.
        """
        self._closed = True
        if self._own_executor:
            self._executor.shutdown(wait=wait, cancel_futures=True)
        with self._lock:
            left = list(self._in_flight)
            # work cancelled before it started never returns to give its slot back
            for ticket, future in list(self._busy.items()):
                if future is not None and future.cancelled():
                    del self._busy[ticket]
        for ticket in left:
            self.complete(ticket, CoCoStatus.ERROR, detail="service shut down", _quiet=True)


class TdvmcallInfoService:
    """Answers GetTdVmCallInfo leaf 1 with the optional TDVMCALLs the VMM handles.

    R11 gets ``BIT(1)`` (SetupEventNotifyInterrupt) when ``dispatcher`` has an
    :class:`~coco_core.requests.EventNotifySetup` handler. GetQuote is part of
    the GHCI base and has no bit (GHCI draft 858626; KVM fix
    <20250717022010.677645-1-xiaoyao.li@intel.com>). R12..R14 are 0.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def info(self) -> TdvmcallInfo:
        """The leaf-1 outputs for the dispatcher's current handlers."""
        r11 = 0
        if EventNotifySetup in self.dispatcher.handles():
            r11 |= TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT
        return TdvmcallInfo(r11=r11)

    def handle(self, request: TdvmcallInfoQuery, context: Any) -> Result:
        """Leaf 1 → SUCCESS with the bitmaps; any other leaf → INVALID."""
        if request.leaf != 1:
            return Outcome(CoCoStatus.INVALID, detail=f"leaf {request.leaf:#x}")
        return Outcome(CoCoStatus.OK, value=self.info().to_value())

    def register(self) -> None:
        """Answer TdvmcallInfoQuery on the dispatcher."""
        self.dispatcher.on(TdvmcallInfoQuery, self.handle)
