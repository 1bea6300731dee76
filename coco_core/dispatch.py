# SPDX-License-Identifier: Apache-2.0
"""The dispatcher: decode, call the VMM's handler, complete. No pluggy on this path.

One table, built once from the registry for one vendor under one ABI, maps
``(exit reason, sub-call number)`` to the handling function of that exit (a
bound :meth:`_Exit.handle`). Per exit the work is: read ``exit_reason`` (and
the sub-call number where the exit has one), one dict lookup, one
``unpack_from`` in the plugin's decoder, one handler call, one completion write
(:mod:`coco_core.completion`). :meth:`Dispatcher.on` and the
:attr:`Dispatcher.tracer` change what the table's exits call, never the table.

The dispatcher never raises for guest-controlled input. A handler that raises
or returns something that is not an answer, and a decoder that fails, are
logged and the exit is completed with the vendor's generic error (``ERROR``);
the VMM keeps running. A tracer that raises is logged and the exit stays
completed. Exits no plugin claims, and exits a decoder declines (its decode
returns :class:`~coco_core.requests.Unsupported`), come back to the VMM as
:class:`~coco_core.requests.Unsupported`, untouched.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any, TypeVar

from coco_core.abi import ExitDecoder, RunFrame
from coco_core.completion import Completion, Result
from coco_core.errors import ConfigurationError
from coco_core.exits import CoCoExit
from coco_core.kernels import DEFAULT_ABI
from coco_core.registry import Registry
from coco_core.requests import NeutralRequest, Unsupported
from coco_core.status import CoCoStatus

__all__ = ["Dispatcher", "Handler", "Result", "Tracer"]

log = logging.getLogger("coco_core.dispatch")

R = TypeVar("R", bound=NeutralRequest)
#: ``handler(request, context) -> CoCoStatus | Outcome``
Handler = Callable[[Any, Any], Result]
#: called with a completed :class:`CoCoExit` after each exit
Tracer = Callable[[CoCoExit], None]
#: a sub-call reader: ``(unpack_from, offset)``
_SubCall = tuple[Callable[[Any, int], tuple[int, ...]], int]

_U32 = struct.Struct("<I")


class _Exit:
    """One claimed ``(reason, sub-call)``: its decoder, the VMM's handler, its completion."""

    __slots__ = (
        "completion",
        "decode",
        "decoder",
        "default",
        "dispatcher",
        "handler",
        "name",
        "reason",
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
            return request
        handler = self.handler
        if handler is None:
            if self.default is None:
                return self.dispatcher._unclaimed(run, self.reason)
            result: object = self.default
        else:
            try:
                result = handler(request, context)
            except Exception:  # the documented rule: log, answer ERROR, keep running
                log.exception("%s: handler raised for %r; answering ERROR", self.name, request)
                result = CoCoStatus.ERROR
        done = self.completion.complete(run, request, result)
        if self.dispatcher.tracer is not None:
            self.dispatcher._trace(self, run, request, done)
        return done


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
        #: called with a :class:`CoCoExit` after each completion, or None
        self.tracer: Tracer | None = tracer
        self._frame: RunFrame = frame
        self._reason_at = frame.exit_reason
        discs = the_abi.discriminators
        self._subcalls: dict[int, _SubCall] = {}
        self._exits: list[_Exit] = []
        #: the one table: (reason, sub-call number or None) -> the exit
        self._table: dict[tuple[int, int | None], _Exit] = {}
        #: reason -> the exit of the decoder for sub-calls nobody else claims
        self._fallbacks: dict[int, _Exit] = {}
        for (reason, disc), dec in registry.decoders_for(abi, vendor).items():
            if disc is not None or dec.fallback:
                where = discs.get(reason)
                if where is None:
                    raise ConfigurationError(
                        f"{dec.name}: exit {reason} has sub-calls but no registered discriminator"
                    )
                self._subcalls[int(reason)] = (where.reader.unpack_from, where.offset)
            ex = _Exit(self, dec)
            self._exits.append(ex)
            if dec.fallback:
                self._fallbacks[int(reason)] = ex
            else:
                self._table[(int(reason), None if disc is None else int(disc))] = ex

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
            :class:`Unsupported` (untouched) for an exit no plugin claims.
        """
        ex = self._find(run)
        if ex is None:
            return self._unclaimed(run, _U32.unpack_from(run, self._reason_at)[0])
        return ex.handle(run, context)

    # -- the rest -------------------------------------------------------------------

    def _sub_of(self, run: memoryview | bytearray, reason: int) -> int | None:
        where = self._subcalls.get(reason)
        return None if where is None else where[0](run, where[1])[0]

    def _unclaimed(self, run: memoryview | bytearray, reason: int) -> Unsupported:
        frame = self._frame
        raw = bytes(run[frame.union_offset : frame.union_offset + frame.union_size])
        return Unsupported(reason, self._sub_of(run, reason), raw)

    def _trace(
        self, ex: _Exit, run: memoryview | bytearray, request: NeutralRequest, result: Result
    ) -> None:
        tracer = self.tracer
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
        """The exit ``run`` holds: its reason and sub-call number, one table lookup."""
        reason = _U32.unpack_from(run, self._reason_at)[0]
        where = self._subcalls.get(reason)
        if where is None:
            return self._table.get((reason, None))
        return self._table.get((reason, where[0](run, where[1])[0])) or self._fallbacks.get(reason)

    def decode(self, run: memoryview | bytearray) -> CoCoExit:
        """Decode without handling, for a VMM that answers by hand with ``ev.complete()``."""
        ex = self._find(run)
        view = run if isinstance(run, memoryview) else memoryview(run)
        if ex is None:
            reason = _U32.unpack_from(run, self._reason_at)[0]
            req = self._unclaimed(view, reason)
            return CoCoExit(self.vendor, self.abi, f"exit {reason}", reason, req, view)
        request = ex.decode(view)
        return CoCoExit(self.vendor, self.abi, ex.name, ex.reason, request, view, ex.completion)
