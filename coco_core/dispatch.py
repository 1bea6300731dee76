# SPDX-License-Identifier: Apache-2.0
"""The dispatcher: decode, call the VMM's handler, complete. No pluggy on this path.

One table, built once from the registry for one vendor under one ABI, maps
an exit reason to its exit (:class:`_Exit`: decoder, the VMM's handler,
completion), or, for an exit with sub-calls, to the exits of its sub-call
keys (:class:`_SubCalls`). A key is the tuple one ``unpack_from`` reads at the
exit's :class:`~coco_core.abi.Discriminator`: ``(nr,)`` for TDX, ``(extension
id, function id)`` for RISC-V SBI. Per exit the work is: read
``exit_reason``, one dict lookup (two with a sub-call key), one
``unpack_from`` in the plugin's decoder, one handler call, one completion
write (:mod:`coco_core.completion`). :meth:`Dispatcher.on` and the
:attr:`Dispatcher.tracer` change what the table's exits call, never the table.

The dispatcher never raises for guest-controlled input. A handler that raises
or returns something that is not an answer, and a decoder that fails, are
logged and the exit is completed with the vendor's generic error (``ERROR``);
the VMM keeps running. A tracer that raises is logged and the exit stays
completed. Three kinds of exit come back to the VMM untouched, as
:class:`~coco_core.requests.Unsupported` saying which
(:class:`~coco_core.requests.NotHandled`): exits no plugin claims
(``UNCLAIMED``), exits a decoder claims whose request has no handler and no
default answer (``NO_HANDLER``), and exits a decoder declines, its decode
returning :class:`~coco_core.requests.Unsupported` (``DECLINED``).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any, TypeVar

from coco_core.abi import Discriminator, ExitDecoder, RunFrame, SubCall
from coco_core.completion import Completion, Result
from coco_core.errors import ConfigurationError, DecodeError
from coco_core.exits import CoCoExit
from coco_core.kernels import DEFAULT_ABI
from coco_core.registry import Registry
from coco_core.requests import NeutralRequest, NotHandled, Unsupported
from coco_core.status import CoCoStatus

__all__ = ["Dispatcher", "Handler", "Result", "Tracer"]

log = logging.getLogger("coco_core.dispatch")

R = TypeVar("R", bound=NeutralRequest)
#: ``handler(request, context) -> CoCoStatus | Outcome``
Handler = Callable[[Any, Any], Result]
#: called with a completed :class:`CoCoExit` after each exit
Tracer = Callable[[CoCoExit], None]

#: reads the ``__u32`` exit reason: ``_read_reason(run, offset)[0]``
_read_reason = struct.Struct("<I").unpack_from


class _Exit:
    """One claimed ``(reason, sub-call)``: its decoder, the VMM's handler, its completion."""

    __slots__ = (
        "complete",
        "completion",
        "decode",
        "decoder",
        "default",
        "dispatcher",
        "handler",
        "name",
        "reason",
        "tracer",
    )

    def __init__(self, dispatcher: Dispatcher, decoder: ExitDecoder) -> None:
        self.dispatcher = dispatcher
        self.decoder = decoder
        self.name = decoder.name
        self.reason = decoder.reason
        self.decode = decoder.decode
        #: the answer without a handler; None hands the exit back untouched
        self.default = decoder.default_status
        #: the VMM's handler, set by Dispatcher.on()
        self.handler: Handler | None = None
        self.completion = Completion(decoder)
        self.complete = self.completion.complete
        #: the dispatcher's tracer, kept here by Dispatcher.tracer's setter
        self.tracer: Tracer | None = None

    def handle(self, run: memoryview | bytearray, context: Any) -> Result | Unsupported:
        """Decode, answer, complete one exit (see the module docstring)."""
        try:
            request = self.decode(run)  # type: ignore[arg-type]  # bytearray works too
        except Exception:  # a decoder bug must not take the VMM down
            log.exception(
                "%s: decoder failed on exit %d; completing with ERROR", self.name, self.reason
            )
            return self.completion.fail(run, Unsupported(self.reason))
        if type(request) is Unsupported:  # the decoder declined this exit
            return self.dispatcher._hand_back(run, self.reason, NotHandled.DECLINED, self, request)
        handler = self.handler
        if handler is None:
            if self.default is None:
                return self.dispatcher._hand_back(run, self.reason, NotHandled.NO_HANDLER, self)
            result: object = self.default
        else:
            try:
                result = handler(request, context)
            except Exception:  # the documented rule: log, answer ERROR, keep running
                log.exception("%s: handler raised for %r; answering ERROR", self.name, request)
                result = CoCoStatus.ERROR
        done = self.complete(run, request, result)
        if self.tracer is not None:
            self.dispatcher._trace(self, run, request, done)
        return done


class _SubCalls:
    """The exits of one exit reason that carries a sub-call key (TDX ``nr``, SBI ids...)."""

    __slots__ = ("at", "dispatcher", "exits", "fallback", "read", "reason", "where")

    def __init__(self, dispatcher: Dispatcher, reason: int, where: Discriminator) -> None:
        self.dispatcher = dispatcher
        self.reason = reason
        self.where = where
        self.read = where.reader.unpack_from
        self.at = where.offset
        #: sub-call key, the tuple ``read`` returns -> its exit
        self.exits: dict[tuple[int, ...], _Exit] = {}
        #: the exit of the decoder for keys nobody else claims
        self.fallback: _Exit | None = None

    def number(self, run: memoryview | bytearray) -> SubCall:
        """The sub-call in ``run``: the number, or the tuple of a compound key."""
        key: tuple[int, ...] = self.read(run, self.at)
        return key if self.where.compound else key[0]

    def find(self, run: memoryview | bytearray) -> _Exit | None:
        """The exit of the sub-call key in ``run`` (the fallback's if none claims it)."""
        return self.exits.get(self.read(run, self.at), self.fallback)


class Dispatcher:
    """Turns ``kvm_run`` images into handler calls and completions for one vendor.

    :param registry: where the decoders come from.
    :param vendor: the VM's vendor (``snp``, ``tdx``...).
    :param abi: the ABI the kernel speaks; the newest released kernel by default.
    :param tracer: called with a :class:`CoCoExit` after each completion
        (costs one object per exit; leave None on a hot loop).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        registry: Registry,
        vendor: str,
        abi: str = DEFAULT_ABI,
        *,
        tracer: Tracer | None = None,
    ) -> None:
        if vendor not in registry.vendors:
            known = ", ".join(sorted(registry.vendors)) or "none"
            raise ConfigurationError(f"unknown vendor {vendor!r}; registered vendors: {known}")
        the_abi = registry.abi(abi)
        frame = the_abi.frame
        if frame is None:
            raise ConfigurationError(f"ABI {abi!r} declares no run structure (RunFrame)")
        self.registry = registry
        self.vendor = vendor
        self.abi = abi
        self._tracer: Tracer | None = None
        self._frame: RunFrame = frame
        self._reason_at = frame.exit_reason
        discs = the_abi.discriminators
        self._exits: list[_Exit] = []
        #: the one table: exit reason -> its exit, or the exits of its sub-calls
        self._table: dict[int, _Exit | _SubCalls] = {}
        self._entry = self._table.get
        for (reason, disc), dec in registry.decoders_for(abi, vendor).items():
            ex = _Exit(self, dec)
            self._exits.append(ex)
            if disc is None and not dec.fallback:
                self._table[int(reason)] = ex
                continue
            where = discs.get(reason)
            if where is None:
                raise ConfigurationError(
                    f"{dec.name}: exit {reason} has sub-calls but no registered discriminator"
                )
            sub = self._table.setdefault(int(reason), _SubCalls(self, int(reason), where))
            assert isinstance(sub, _SubCalls)
            if dec.fallback:
                sub.fallback = ex
            else:
                assert disc is not None
                try:
                    sub.exits[where.key(disc)] = ex
                except ValueError as exc:
                    raise ConfigurationError(f"{dec.name}: {exc}") from None
        self.tracer = tracer

    @property
    def tracer(self) -> Tracer | None:
        """Called with a :class:`CoCoExit` after each completion, or None."""
        return self._tracer

    @tracer.setter
    def tracer(self, tracer: Tracer | None) -> None:
        self._tracer = tracer
        for ex in self._exits:
            ex.tracer = tracer

    # -- handlers -------------------------------------------------------------------

    def on(self, request_type: type[R], handler: Callable[[R, Any], Result]) -> None:
        """Answer every ``request_type`` request with ``handler(request, context)``.

        :raises TypeError: ``request_type`` is not a neutral request class, or
            ``handler`` is not callable.
        """
        if not (isinstance(request_type, type) and issubclass(request_type, NeutralRequest)):
            raise TypeError(
                f"Dispatcher.on: request_type {request_type!r} is not a NeutralRequest class"
            )
        if not callable(handler):
            raise TypeError(
                f"Dispatcher.on: handler {handler!r} for {request_type.__name__} is not callable"
            )
        for ex in self._exits:
            if ex.decoder.request_type is request_type:
                ex.handler = handler

    def handles(self) -> frozenset[type[NeutralRequest]]:
        """The request types the VMM registered handlers for."""
        return frozenset(ex.decoder.request_type for ex in self._exits if ex.handler is not None)

    def claims(self) -> list[ExitDecoder]:
        """Every decoder in this dispatcher's table."""
        return [ex.decoder for ex in self._exits]

    # -- the hot path ---------------------------------------------------------------

    def dispatch(self, run: memoryview | bytearray, context: Any = None) -> Result | Unsupported:
        """Decode the exit in ``run``, call its handler, write the completion.

        :param run: the ``kvm_run`` mapping (or a buffer of the same layout).
        :param context: passed to the handler as its second argument (a vCPU).
        :returns: the handler's result (``ERROR`` if it was not a valid answer),
            the default status used when the VMM registered no handler, or
            :class:`Unsupported` (untouched) saying why it was not handled.
        :raises DecodeError: ``run`` is too short for what the exit reads or writes.
        """
        try:  # free until it raises: the length is checked only on the way out
            reason = _read_reason(run, self._reason_at)[0]
            entry = self._entry(reason)
            if type(entry) is _SubCalls:  # the second lookup, by the sub-call key tuple
                entry = entry.exits.get(entry.read(run, entry.at), entry.fallback)
            if entry is None:
                return self._hand_back(run, reason, NotHandled.UNCLAIMED)
            return entry.handle(run, context)  # type: ignore[union-attr]  # an _Exit now
        except struct.error:
            raise self._short(run) from None

    # -- the rest -------------------------------------------------------------------

    def _short(self, run: memoryview | bytearray) -> DecodeError:
        frame = self._frame
        return DecodeError(
            f"run: a buffer of {len(run)} bytes; {frame.name} is {frame.size} bytes "
            "(pass the vCPU's whole kvm_run mapping)"
        )

    def _sub_of(self, run: memoryview | bytearray, reason: int) -> SubCall | None:
        entry = self._table.get(reason)
        return entry.number(run) if isinstance(entry, _SubCalls) else None

    def _hand_back(
        self,
        run: memoryview | bytearray,
        reason: int,
        why: NotHandled,
        ex: _Exit | None = None,
        declined: Unsupported | None = None,
    ) -> Unsupported:
        """The exit in ``run``, untouched, as an :class:`Unsupported` that says why."""
        frame = self._frame
        raw = bytes(run[frame.union_offset : frame.union_offset + frame.union_size])
        return Unsupported(
            reason,
            self._sub_of(run, reason),
            raw,
            why,
            None if ex is None else ex.name,
            "" if declined is None else declined.detail,
        )

    def _trace(
        self, ex: _Exit, run: memoryview | bytearray, request: NeutralRequest, result: Result
    ) -> None:
        tracer = self._tracer
        if tracer is None:
            return
        try:
            view = run if isinstance(run, memoryview) else memoryview(run)
            done = ex.completion.record(result)
            status = done.status
            ev = CoCoExit(
                self.vendor,
                self.abi,
                ex.name,
                ex.reason,
                request,
                view,
                ex.completion,
                done,
                status is CoCoStatus.OK,
            )
            tracer(ev)
        except Exception:  # a tracer must not stop the VMM: the exit is completed already
            log.exception("%s: tracer failed; the exit stays completed", ex.name)

    def _find(self, run: memoryview | bytearray) -> _Exit | None:
        """The exit ``run`` holds, as :meth:`dispatch` finds it."""
        entry = self._table.get(_read_reason(run, self._reason_at)[0])
        return entry.find(run) if isinstance(entry, _SubCalls) else entry

    def decoder_for(self, run: memoryview | bytearray) -> ExitDecoder | None:
        """The decoder :meth:`dispatch` would use for ``run``, or None if none claims it.

        .. versionadded:: 0.2
        """
        ex = self._find(run)
        return None if ex is None else ex.decoder

    def decode(self, run: memoryview | bytearray) -> CoCoExit:
        """Decode without handling, for a VMM that answers by hand with ``ev.complete()``.

        :raises DecodeError: ``run`` is shorter than the run structure.
        """
        if len(run) < self._frame.size:
            raise self._short(run)
        ex = self._find(run)
        view = run if isinstance(run, memoryview) else memoryview(run)
        if ex is None:
            reason = _read_reason(run, self._reason_at)[0]
            req = self._hand_back(view, reason, NotHandled.UNCLAIMED)
            return CoCoExit(self.vendor, self.abi, f"exit {reason}", reason, req, view)
        request = ex.decode(view)
        if type(request) is Unsupported:  # declined: nothing to complete
            request = self._hand_back(view, ex.reason, NotHandled.DECLINED, ex, request)
            return CoCoExit(self.vendor, self.abi, ex.name, ex.reason, request, view)
        return CoCoExit(self.vendor, self.abi, ex.name, ex.reason, request, view, ex.completion)
