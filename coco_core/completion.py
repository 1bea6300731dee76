# SPDX-License-Identifier: Apache-2.0
"""The one way a completion is written: status or Outcome → vendor value → ``kvm_run``.

A :class:`Completion` is built once per decoder. The dispatcher (for every
exit) and :meth:`CoCoExit.complete <coco_core.exits.CoCoExit.complete>` (for a
VMM answering by hand) both write through it:

* :meth:`Completion.complete` never raises: a plain :class:`CoCoStatus` is one
  ``pack_into`` into the decoder's :class:`~coco_core.abi.StatusField` (or one
  ``write`` call); an :class:`Outcome` is checked first (its fields must have
  the types they are documented with, an explicit ``vendor_code`` must be a
  code of the space for that status); anything else a handler returned, and
  any failure of the plugin's ``write``, completes with the vendor's generic
  error (``ERROR``) and is logged with what was returned.
* ``BUFFER_TOO_SMALL`` in a space that has a code of its own for it (the code
  tells the guest "you need this many": SNP ``ENOSPC`` with ``npages``) needs
  an :class:`Outcome` whose ``size_needed`` is a positive ``int``; a plain
  ``BUFFER_TOO_SMALL``, or one without a usable size, completes with
  ``ERROR`` (the guest would otherwise read back the size it gave). A plugin's
  ``write`` raises ``ValueError`` for an outcome it cannot express (a size not
  larger than the guest's, or one the field cannot hold): logged, ``ERROR``.
* :meth:`Completion.write` is the strict form: it raises :class:`CodeError`
  for a vendor code the space does not allow (or a ``BUFFER_TOO_SMALL``
  without a size), and returns what it wrote.

Nothing is written for an exit without a completion (port I/O, termination).
"""

from __future__ import annotations

import logging

import attrs

from coco_core.abi import ExitDecoder
from coco_core.errors import CodeError
from coco_core.requests import NeutralRequest
from coco_core.status import CoCoStatus, Outcome

__all__ = ["Completed", "Completion", "Result", "outcome_problem", "write_completion"]

log = logging.getLogger("coco_core.completion")

#: What a handler returns.
Result = CoCoStatus | Outcome

_OPTIONAL_INTS = ("size_needed", "vendor_code", "value")
_TOO_SMALL = CoCoStatus.BUFFER_TOO_SMALL


@attrs.frozen
class Completed:
    """What a completion wrote: the status, the raw value and its name.

    ``raw`` is None when the exit has no completion (termination) or was left
    untouched for the VMM.
    """

    status: CoCoStatus | None
    raw: int | None
    raw_name: str | None
    outcome: Outcome | None = None


def outcome_problem(result: object) -> str | None:
    """Why ``result`` is not a valid handler answer, or None if it is one.

    A valid answer is a :class:`CoCoStatus`, or an :class:`Outcome` whose
    ``status`` is one and whose ``size_needed``, ``vendor_code`` and ``value``
    are each None or an ``int`` (not a ``bool``), with callables as
    ``after_kernel_completion``.
    """
    if type(result) is CoCoStatus:
        return None
    if not isinstance(result, Outcome):
        return f"{result!r} is not a CoCoStatus or Outcome"
    if type(result.status) is not CoCoStatus:
        return f"Outcome.status {result.status!r} is not a CoCoStatus"
    for name in _OPTIONAL_INTS:
        value = getattr(result, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return f"Outcome.{name} {value!r} is not an int"
    callbacks = result.after_kernel_completion
    if not isinstance(callbacks, tuple) or not all(callable(cb) for cb in callbacks):
        return f"Outcome.after_kernel_completion {callbacks!r} is not a tuple of callables"
    return None


class Completion:
    """How the exits of one decoder are completed; built once, used for every exit.

    :param decoder: the decoder whose ``write``, error space and status field it uses.
    """

    __slots__ = (
        "decoder",
        "encode",
        "name",
        "put",
        "put_at",
        "sized",
        "space",
        "write_back",
        "writes",
    )

    def __init__(self, decoder: ExitDecoder) -> None:
        self.decoder = decoder
        self.name = decoder.name
        self.space = decoder.error_space
        #: status -> raw value, the space's encode table as a plain dict
        self.encode: dict[CoCoStatus, int] = (
            {s: self.space.encode(s) for s in CoCoStatus} if self.space is not None else {}
        )
        #: False for exits with no completion (nothing is ever written)
        self.writes = decoder.write is not None and self.space is not None
        #: the plugin's write(), or None for an exit with no completion
        self.write_back = decoder.write if self.writes else None
        field = decoder.status_field
        #: a plain status is one pack_into here, when the decoder names the field
        self.put = field.writer if field is not None and self.writes else None
        self.put_at = field.offset if field is not None else 0
        #: True when BUFFER_TOO_SMALL has a code of its own, which carries a size
        self.sized = self.space is not None and self.space.expresses(CoCoStatus.BUFFER_TOO_SMALL)

    # -- the per-exit path ----------------------------------------------------------------

    def complete(
        self, run: memoryview | bytearray, request: NeutralRequest, result: object
    ) -> Result:
        """Write ``result`` into ``run``; return what was written (``ERROR`` if it had to be).

        Never raises: a malformed result, a vendor code the space refuses, or
        a ``write`` that fails is logged and completed with ``ERROR``. The
        ``after_kernel_completion`` callbacks of an :class:`Outcome` that had
        to be answered with ``ERROR`` are kept (when they are valid) on the
        ``ERROR`` outcome returned: the kernel still completes the exit, so
        work waiting for that (the SNP certificate lock) must still run.
        """
        if type(result) is CoCoStatus:
            if result is _TOO_SMALL and self.sized:
                return self._refuse(run, request, result, "BUFFER_TOO_SMALL without the size")
            try:
                put = self.put
                if put is not None:
                    put(run, self.put_at, self.encode[result])
                elif self.write_back is not None:
                    self.write_back(run, request, self.encode[result], None)  # type: ignore[arg-type]
            except Exception:  # a plugin's write() failing on a plain status
                log.exception("%s: writing %s failed; completing with ERROR", self.name, result)
                return self.fail(run, request)
            return result
        problem = outcome_problem(result)
        if problem is None and self.writes and self.sized:
            problem = self._size_problem(result)  # type: ignore[arg-type]  # checked above
        if problem is not None:
            return self._refuse(run, request, result, problem)
        assert isinstance(result, CoCoStatus | Outcome)
        if not self.writes:
            return result
        try:
            self.write(run, request, result)
        except CodeError as exc:
            return self._refuse(run, request, result, f"a vendor code rejected ({exc})")
        except ValueError as exc:  # the plugin cannot express this outcome (its message says why)
            return self._refuse(run, request, result, f"an answer that cannot be written: {exc}")
        except Exception:  # a plugin's write() failing on a handler's value: log, answer ERROR
            log.exception("%s: completion of %r failed; completing with ERROR", self.name, result)
            return self._failed(run, request, result)
        return result

    def _refuse(
        self, run: memoryview | bytearray, request: NeutralRequest, result: object, problem: str
    ) -> Result:
        """Log which handler returned what, and complete with the generic error."""
        log.error(
            "%s: the %s handler returned %s (for %r); answering ERROR",
            self.name,
            type(request).__name__,
            problem,
            request,
        )
        return self._failed(run, request, result)

    def fail(self, run: memoryview | bytearray, request: NeutralRequest) -> CoCoStatus:
        """Write the vendor's generic error (the decoder's ``ERROR`` code), if it has one.

        Never raises; returns ``ERROR``.
        """
        if self.writes:
            try:
                self._put_raw(run, request, self.encode[CoCoStatus.ERROR], None)
            except Exception:  # a broken write(): nothing more can be done for this exit
                log.exception("%s: could not even write ERROR", self.name)
        return CoCoStatus.ERROR

    def _failed(
        self, run: memoryview | bytearray, request: NeutralRequest, result: object
    ) -> Result:
        """:meth:`fail`, keeping the valid ``after_kernel_completion`` callbacks of ``result``."""
        status = self.fail(run, request)
        callbacks = getattr(result, "after_kernel_completion", ())
        if (
            isinstance(result, Outcome)
            and isinstance(callbacks, tuple)
            and callbacks
            and all(callable(cb) for cb in callbacks)
        ):
            return Outcome(
                status, after_kernel_completion=callbacks, detail="handler result refused"
            )
        return status

    def _put_raw(
        self,
        run: memoryview | bytearray,
        request: NeutralRequest,
        raw: int,
        outcome: Outcome | None,
    ) -> None:
        write = self.write_back
        assert write is not None
        if outcome is None and self.put is not None:
            self.put(run, self.put_at, raw)
        else:
            write(run, request, raw, outcome)  # type: ignore[arg-type]  # bytearray works too

    # -- the strict form ------------------------------------------------------------------

    def raw_for(self, result: Result) -> int | None:
        """The raw value ``result`` is written as (None for an exit with no completion).

        :raises CodeError: an explicit ``vendor_code`` that is not a code of the
            space for that status.
        """
        if not self.writes:
            return None
        assert self.space is not None
        if isinstance(result, CoCoStatus):
            return self.encode[result]
        if result.vendor_code is not None:
            return self.space.check_vendor_code(result.vendor_code, result.status)
        return self.encode[result.status]

    def write(
        self, run: memoryview | bytearray, request: NeutralRequest, result: Result
    ) -> Completed:
        """Encode ``result`` with the decoder's error space and write it.

        :raises CodeError: an explicit ``vendor_code`` that is not a code of the
            space for that status, or a ``BUFFER_TOO_SMALL`` without a positive
            ``size_needed`` in a space whose code for it carries a size.
        :raises ValueError: the plugin's ``write`` cannot express the outcome.
        """
        problem = self._size_problem(result) if self.sized else None
        if problem is not None:
            assert self.space is not None
            raise CodeError(
                self.space.id, self.encode[_TOO_SMALL], _TOO_SMALL, f"{self.name}: {problem}"
            )
        raw = self.raw_for(result)
        outcome = None if isinstance(result, CoCoStatus) else result
        if raw is not None:
            self._put_raw(run, request, raw, outcome)
        return self.record(result, raw)

    def _size_problem(self, result: Result) -> str | None:
        """Why a BUFFER_TOO_SMALL ``result`` carries no usable size, or None."""
        status = result if isinstance(result, CoCoStatus) else result.status
        if status is not _TOO_SMALL:
            return None
        n = None if isinstance(result, CoCoStatus) else result.size_needed
        if n is None or n <= 0:
            return (
                f"BUFFER_TOO_SMALL with size_needed {n!r}; expected a positive int "
                "(the guest reads it back as the size it needs)"
            )
        return None

    def record(self, result: Result, raw: int | None = None) -> Completed:
        """The :class:`Completed` of ``result`` (``raw`` as written, or as it would be)."""
        status = result if isinstance(result, CoCoStatus) else result.status
        outcome = None if isinstance(result, CoCoStatus) else result
        if raw is None and self.writes:
            raw = self.raw_for(result)
        name = self.space.name_of(raw) if self.space is not None and raw is not None else None
        return Completed(status, raw, name, outcome)


def write_completion(
    decoder: ExitDecoder, run: memoryview | bytearray, request: NeutralRequest, result: Result
) -> Completed:
    """Encode ``result`` with ``decoder``'s error space and write it (not the hot path).

    :raises CodeError: an explicit ``vendor_code`` that is not a code of the
        space for that status.
    """
    return Completion(decoder).write(run, request, result)
