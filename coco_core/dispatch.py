# SPDX-License-Identifier: Apache-2.0
"""The dispatcher: decode, call the VMM's handler, complete. No pluggy on this path.

The table is built once from the registry for one vendor under one ABI, and
every exit gets one function with its decoder, handler and completion bound
in. Per exit the work is: read ``exit_reason`` (and a sub-call number where the
exit has one), one dict lookup, one ``unpack_from`` in the plugin's decoder,
one handler call, one dict lookup to encode the status, one ``pack_into``.

The dispatcher never raises for guest-controlled input. A handler that raises
is logged with the exit's details and the exit is completed with the vendor's
generic error (``ERROR``); the VMM keeps running. Exits no plugin claims come
back to the VMM as :class:`~coco_core.requests.Unsupported`, untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from coco_core.abi import Discriminator, ExitDecoder
from coco_core.errors import ConfigurationError
from coco_core.errorspace import CodeError
from coco_core.exits import CoCoExit, Completed
from coco_core.generic.uapi import (
    EXIT_REASON,
    EXIT_REASON_STRUCT,
    EXIT_UNION_OFFSET,
    EXIT_UNION_SIZE,
)
from coco_core.registry import DEFAULT_ABI, Registry
from coco_core.requests import NeutralRequest, Unsupported
from coco_core.status import CoCoStatus, Outcome

__all__ = ["Dispatcher", "Handler", "Result", "write_completion"]

log = logging.getLogger("coco_core.dispatch")

R = TypeVar("R", bound=NeutralRequest)
Result = CoCoStatus | Outcome
#: ``handler(request, context) -> CoCoStatus | Outcome``
Handler = Callable[[Any, Any], Result]
Tracer = Callable[[CoCoExit], None]

_read_reason = EXIT_REASON_STRUCT.unpack_from


#: one exit's whole handling: ``fn(run, context) -> result``
_ExitFn = Callable[[Any, Any], "Result | Unsupported"]
#: an exit with sub-calls: (read, offset, sub-call number -> function, fallback function)
_SubCalls = tuple[
    Callable[[Any, int], tuple[int]],
    int,
    Callable[[int, "_ExitFn | None"], "_ExitFn | None"],
    "_ExitFn | None",
]


class _DispatchFn(Protocol):
    def __call__(self, run: memoryview | bytearray, context: Any = None) -> Result | Unsupported:
        """Dispatch one exit."""
        ...


class _Entry:
    """A table slot: a decoder, or a discriminator with its sub-table."""

    __slots__ = ("decoder", "encode", "fallback", "handler", "read", "read_offset", "sub")

    def __init__(self) -> None:
        self.decoder: ExitDecoder | None = None
        #: the VMM's handler for this decoder's request type, set by Dispatcher.on()
        self.handler: Handler | None = None
        self.encode: dict[CoCoStatus, int] = {}
        self.read: Callable[[Any, int], tuple[int]] | None = None
        self.read_offset = 0
        self.sub: dict[int, _Entry] = {}
        self.fallback: _Entry | None = None


def _leaf(dec: ExitDecoder) -> _Entry:
    e = _Entry()
    e.decoder = dec
    if dec.error_space is not None:
        e.encode = {s: dec.error_space.encode(s) for s in CoCoStatus}
    return e


class Dispatcher:
    """Turns ``kvm_run`` images into handler calls and completions for one vendor.

    :param registry: where the decoders come from.
    :param vendor: the VM's vendor (``snp``, ``tdx``...).
    :param abi: the ABI the kernel speaks; the newest released kernel by default.
    :param tracer: called with a :class:`CoCoExit` after each completion
        (costs one object per exit; leave None on a hot loop).

    Register handlers with :meth:`on` (and set :attr:`tracer`) before the
    vCPUs run: each rebuilds the per-exit functions.

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
        self.registry = registry
        self.vendor = vendor
        self.abi = abi
        self._tracer = tracer
        self._handlers: dict[type[NeutralRequest], Handler] = {}
        self._table = self._build(registry.decoders_for(abi, vendor), the_abi.discriminators)
        #: exit reason -> the function that handles it whole (see _relink)
        self._fns: dict[int, _ExitFn] = {}
        #: exit reason with sub-calls -> where the number is, its functions, the fallback
        self._subcalls: dict[int, _SubCalls] = {}
        self._relink()
        self._fast = self._compile()
        if type(self).dispatch is Dispatcher.dispatch:
            # The instance attribute shadows the method, so callers get the closure
            # directly; a subclass that overrides dispatch() keeps its override.
            self.dispatch = self._fast  # type: ignore[method-assign]

    @property
    def tracer(self) -> Tracer | None:
        """Called with a :class:`CoCoExit` after each completion, or None."""
        return self._tracer

    @tracer.setter
    def tracer(self, tracer: Tracer | None) -> None:
        self._tracer = tracer
        self._relink()

    @staticmethod
    def _build(
        decoders: dict[tuple[int, int | None], ExitDecoder], discs: dict[int, Discriminator]
    ) -> dict[int, _Entry]:
        table: dict[int, _Entry] = {}
        for (reason, disc), dec in decoders.items():
            if disc is None and not dec.fallback:
                table[reason] = _leaf(dec)
                continue
            top = table.get(reason)
            if top is None:
                where = discs.get(reason)
                if where is None:
                    raise ConfigurationError(
                        f"{dec.name}: exit {reason} has sub-calls but no registered discriminator"
                    )
                top = table[reason] = _Entry()
                top.read = where.reader.unpack_from
                top.read_offset = where.offset
            if dec.fallback:
                top.fallback = _leaf(dec)
            else:
                assert disc is not None
                top.sub[disc] = _leaf(dec)
        return table

    # -- handlers -------------------------------------------------------------------

    def on(self, request_type: type[R], handler: Callable[[R, Any], Result]) -> None:
        """Answer every ``request_type`` request with ``handler(request, context)``.

        The handler is bound into the function of every exit whose decoder
        produces ``request_type``, so the per-exit path needs no lookup for it.
        """
        self._handlers[request_type] = handler
        for entry in self._leaves():
            if entry.decoder is not None and entry.decoder.request_type is request_type:
                entry.handler = handler
        self._relink()

    def _leaves(self) -> list[_Entry]:
        out: list[_Entry] = []
        for e in self._table.values():
            out.append(e)
            out.extend(e.sub.values())
            if e.fallback is not None:
                out.append(e.fallback)
        return out

    def handles(self) -> frozenset[type[NeutralRequest]]:
        """The request types the VMM registered handlers for."""
        return frozenset(self._handlers)

    def claims(self) -> list[ExitDecoder]:
        """Every decoder in this dispatcher's table."""
        out: list[ExitDecoder] = []
        for e in self._table.values():
            if e.decoder is not None:
                out.append(e.decoder)
            out.extend(s.decoder for s in e.sub.values() if s.decoder is not None)
            if e.fallback is not None and e.fallback.decoder is not None:
                out.append(e.fallback.decoder)
        return out

    # -- the hot path ---------------------------------------------------------------

    def dispatch(self, run: memoryview | bytearray, context: Any = None) -> Result | Unsupported:
        """Decode the exit in ``run``, call its handler, write the completion.

        :param run: the ``kvm_run`` mapping (or a buffer of the same layout).
        :param context: passed to the handler as its second argument (a vCPU).
        :returns: the handler's result, the default status used when the VMM
            registered no handler, or :class:`Unsupported` (untouched) for an
            exit no plugin claims.
        """
        # Each instance replaces this with the closure _compile() builds; this
        # body only runs if someone calls Dispatcher.dispatch(instance, ...).
        return self._fast(run, context)

    def _compile(self) -> _DispatchFn:
        """The per-exit entry point: read the reason (and sub-call), call that exit's function."""
        fns_get = self._fns.get
        subcalls_get = self._subcalls.get
        read_reason = _read_reason
        at = EXIT_REASON

        def dispatch(run: memoryview | bytearray, context: Any = None) -> Result | Unsupported:
            reason = read_reason(run, at)[0]
            fn = fns_get(reason)
            if fn is None:
                where = subcalls_get(reason)
                if where is None:
                    return _unsupported(run, reason, None)
                read, read_at, sub_get, fallback = where
                disc = read(run, read_at)[0]
                fn = sub_get(disc, fallback)
                if fn is None:
                    return _unsupported(run, reason, disc)
            return fn(run, context)

        dispatch.__doc__ = Dispatcher.dispatch.__doc__
        return dispatch

    def _relink(self) -> None:
        """Build the function of every exit from its decoder and handler.

        Start-up work, redone by :meth:`on` and the :attr:`tracer` setter. The
        keys never change after construction, so updating the dicts in place
        swaps each function atomically for a dispatch running meanwhile. Keys
        are plain ints: the reason read from ``kvm_run`` is a small int, so
        the lookup matches by identity instead of comparing with an IntEnum.
        """
        fns: dict[int, _ExitFn] = {}
        subcalls: dict[int, _SubCalls] = {}
        for reason, entry in self._table.items():
            if entry.read is None:
                fns[int(reason)] = self._exit_fn(entry, reason, None, None, 0)
                continue
            by_number = {
                int(disc): self._exit_fn(sub, reason, disc, None, 0)
                for disc, sub in entry.sub.items()
            }
            fallback = (
                self._exit_fn(entry.fallback, reason, None, entry.read, entry.read_offset)
                if entry.fallback is not None
                else None
            )
            subcalls[int(reason)] = (entry.read, entry.read_offset, by_number.get, fallback)
        self._fns.update(fns)
        self._subcalls.update(subcalls)

    def _exit_fn(
        self,
        entry: _Entry,
        reason: int,
        disc: int | None,
        read: Callable[[Any, int], tuple[int]] | None,
        read_at: int,
    ) -> _ExitFn:
        """One exit (or sub-call) whole: decode, handle, write.

        Kept flat on purpose (see the module docstring). A plain
        :class:`CoCoStatus` result is written here with one ``pack_into`` (the
        decoder's :class:`~coco_core.abi.StatusField`) or one ``write`` call;
        an :class:`Outcome`, a bad result or a tracer take :meth:`_finish`.
        ``read``/``read_at`` give the sub-call number of a fallback decoder,
        read again only on the slow paths.
        """
        dec = entry.decoder
        assert dec is not None
        decode = dec.decode
        handler = entry.handler
        vendor = self.vendor
        name = dec.name
        error = CoCoStatus.ERROR
        status_type = CoCoStatus
        finish = self._finish

        def disc_of(run: memoryview | bytearray) -> int | None:
            return disc if read is None else read(run, read_at)[0]

        def decode_failed(run: memoryview | bytearray) -> Result:
            log.exception("%s: decoder failed on exit %d; completing with ERROR", name, reason)
            return self._complete_failed(entry, run, reason, disc_of(run))

        if handler is None:
            default = dec.default_status
            if default is None:

                def hand_back(run: memoryview | bytearray, context: Any) -> Result | Unsupported:
                    try:
                        request = decode(run)  # type: ignore[arg-type]  # bytearray works too
                    except Exception:  # a decoder bug must not take the VMM down
                        return decode_failed(run)
                    if isinstance(request, Unsupported):
                        return request
                    return _unsupported(run, reason, disc_of(run))

                return hand_back

            def answer_default(request: Any, context: Any, default: CoCoStatus = default) -> Result:
                return default

            handler = answer_default

        encode = entry.encode
        write = dec.write
        field = dec.status_field
        # How a plain status is written, decided here once: with one pack_into
        # when the decoder names its status field, else through write(), else
        # (no completion: port I/O, termination) not at all. Traced exits and a
        # write() without an error space take the general path in _finish.
        plain = self._tracer is None and (write is None or bool(encode))
        put = field.writer if field is not None and plain else None
        put_at = field.offset if field is not None else 0

        def handle(run: memoryview | bytearray, context: Any) -> Result | Unsupported:
            try:
                request = decode(run)  # type: ignore[arg-type]  # bytearray works too
            except Exception:  # a decoder bug must not take the VMM down
                return decode_failed(run)
            try:
                result = handler(request, context)
            except Exception:  # the documented rule: log, answer ERROR, keep running
                log.exception("%s %s: handler raised for %r", vendor, name, request)
                result = error
            if plain and type(result) is status_type:
                if put is not None:
                    put(run, put_at, encode[result])
                elif write is not None:
                    write(run, request, encode[result], None)  # type: ignore[arg-type]
                return result
            return finish(entry, run, request, result, reason)

        return handle

    # -- the rest -------------------------------------------------------------------

    def _finish(
        self,
        entry: _Entry,
        run: memoryview | bytearray,
        request: NeutralRequest,
        result: object,
        reason: int,
    ) -> Result:
        """Complete with an Outcome, a status on the general path, or a bad result."""
        dec = entry.decoder
        assert dec is not None
        if type(result) is not CoCoStatus and not isinstance(result, Outcome):
            log.error(
                "%s %s: handler returned %r, not a CoCoStatus or Outcome; answering ERROR",
                self.vendor,
                dec.name,
                result,
            )
            result = CoCoStatus.ERROR
        assert isinstance(result, CoCoStatus | Outcome)
        if dec.write is not None:
            raw = entry.encode.get(result) if type(result) is CoCoStatus else None
            if raw is not None:
                dec.write(run, request, raw, None)  # type: ignore[arg-type]
            else:
                result = self._write_outcome(dec, run, request, result)
        if self._tracer is not None:
            self._trace(dec, run, reason, request, result)
        return result

    def _write_outcome(
        self, dec: ExitDecoder, run: memoryview | bytearray, request: NeutralRequest, result: Result
    ) -> Result:
        try:
            write_completion(dec, run, request, result)
        except CodeError:
            log.exception("%s: handler's vendor code rejected; completing with ERROR", dec.name)
            write_completion(dec, run, request, CoCoStatus.ERROR)
            return CoCoStatus.ERROR
        return result

    def _complete_failed(
        self, entry: _Entry, run: memoryview | bytearray, reason: int, disc: int | None
    ) -> Result:
        dec = entry.decoder
        if dec is not None and dec.write is not None and entry.encode:
            try:
                dec.write(run, Unsupported(reason, disc), entry.encode[CoCoStatus.ERROR], None)  # type: ignore[arg-type]
            except Exception:
                log.exception("%s: could not even write ERROR", dec.name)
        return CoCoStatus.ERROR

    def _trace(
        self,
        dec: ExitDecoder,
        run: memoryview | bytearray,
        reason: int,
        request: NeutralRequest,
        result: Result,
    ) -> None:
        tracer = self._tracer
        assert tracer is not None
        view = run if isinstance(run, memoryview) else memoryview(run)
        ev = CoCoExit(self.vendor, self.abi, dec.name, reason, request, view, dec)
        ev._state.append(_completed_record(dec, result))
        tracer(ev)

    def _lookup(self, run: memoryview | bytearray) -> tuple[_Entry | None, int, int | None]:
        reason = _read_reason(run, EXIT_REASON)[0]
        entry = self._table.get(reason)
        if entry is None or entry.read is None:
            return entry, reason, None
        disc = entry.read(run, entry.read_offset)[0]
        sub = entry.sub.get(disc)
        return (sub if sub is not None else entry.fallback), reason, disc

    def decode(self, run: memoryview | bytearray) -> CoCoExit:
        """Decode without handling, for a VMM that answers by hand with ``ev.complete()``."""
        entry, reason, disc = self._lookup(run)
        view = run if isinstance(run, memoryview) else memoryview(run)
        if entry is None or entry.decoder is None:
            req = _unsupported(view, reason, disc)
            return CoCoExit(self.vendor, self.abi, f"exit {reason}", reason, req, view, None)
        dec = entry.decoder
        return CoCoExit(self.vendor, self.abi, dec.name, reason, dec.decode(view), view, dec)


def _unsupported(run: memoryview | bytearray, reason: int, disc: int | None) -> Unsupported:
    raw = bytes(run[EXIT_UNION_OFFSET : EXIT_UNION_OFFSET + EXIT_UNION_SIZE])
    return Unsupported(reason, disc, raw)


def _completed_record(dec: ExitDecoder, result: Result) -> Completed:
    status = result if isinstance(result, CoCoStatus) else result.status
    outcome = None if isinstance(result, CoCoStatus) else result
    if dec.write is None or dec.error_space is None:
        return Completed(status, None, None, outcome)
    space = dec.error_space
    raw = outcome.vendor_code if outcome is not None and outcome.vendor_code is not None else None
    if raw is None:
        raw = space.encode(status)
    return Completed(status, raw, space.name_of(raw), outcome)


def write_completion(
    dec: ExitDecoder | None, run: memoryview | bytearray, request: NeutralRequest, result: Result
) -> Completed:
    """Encode ``result`` with ``dec``'s error space and write it (the non-hot path).

    :raises CodeError: an explicit ``vendor_code`` that is not a code of the
        space for that status.
    """
    status = result if isinstance(result, CoCoStatus) else result.status
    outcome = None if isinstance(result, CoCoStatus) else result
    if dec is None or dec.write is None:
        return Completed(status, None, None, outcome)
    space = dec.error_space
    if space is None:
        dec.write(run, request, 0, outcome)  # type: ignore[arg-type]
        return Completed(status, None, None, outcome)
    if outcome is not None and outcome.vendor_code is not None:
        raw = space.check_vendor_code(outcome.vendor_code, status)
    else:
        raw = space.encode(status)
    dec.write(run, request, raw, outcome)  # type: ignore[arg-type]
    return Completed(status, raw, space.name_of(raw), outcome)
