# SPDX-License-Identifier: Apache-2.0
"""Neutral statuses and the outcome a handler returns.

A handler answers a neutral request with a :class:`CoCoStatus` (or an
:class:`Outcome` when it has more to say: the size a buffer needs, a vendor
code to write verbatim, work to run once the kernel has completed the exit).
Each vendor plugin translates the status into its own error space when the
exit is completed; the handler never sees a vendor number unless it asks for
one.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

import attrs

__all__ = ["CoCoStatus", "Outcome"]

log = logging.getLogger("coco_core.status")


class CoCoStatus(enum.Enum):
    """What happened to a request, whatever the vendor.

    .. versionadded:: 0.1
    """

    #: Done; the guest's request succeeded (or was accepted, for async requests).
    OK = "ok"
    #: Not consumed: the guest must send the same request again (GHCB BUSY,
    #: TDVMCALL RETRY, errno EAGAIN). Only legal before the request was handed on.
    RETRY = "retry"
    #: The guest's buffer is too small; :attr:`Outcome.size_needed` says how much.
    BUFFER_TOO_SMALL = "buffer_too_small"
    #: The guest sent something malformed (bad alignment, range, header, vector).
    INVALID = "invalid"
    #: The VMM does not offer this request.
    UNSUPPORTED = "unsupported"
    #: Accepted and still being worked on (TDX GetQuote buffer status).
    IN_FLIGHT = "in_flight"
    #: A service the request needs (QGS, certificate source) cannot be reached.
    SERVICE_UNAVAILABLE = "service_unavailable"
    #: Anything else went wrong; the vendor's generic error.
    ERROR = "error"

    # Identity hash: Enum's own __hash__ is Python code (hash of the name), and
    # statuses are dict keys on the per-exit path. Equality is identity anyway.
    __hash__ = object.__hash__


@attrs.frozen
class Outcome:
    """A handler's answer when a bare :class:`CoCoStatus` does not say enough.

    :param status: the neutral status.
    :param size_needed: for ``BUFFER_TOO_SMALL``: the size the guest must
        provide, in the unit of the request (4 KiB pages for SNP certificates).
    :param vendor_code: a raw value of the exit's error space to write instead
        of the status's default encoding (for example TDVMCALL ``ALIGN_ERROR``
        for an ``INVALID``); it must decode to ``status``.
    :param after_kernel_completion: callbacks to run once KVM has completed the
        exit (the run loop re-enters with ``immediate_exit = 1`` first). The
        SNP certificate lock is released this way.
    :param value: a value the completion carries back (RDMSR data, port IN
        data), where the exit has one.
    :param detail: a human-readable reason, logged and shown in traces.

    .. versionadded:: 0.1
    """

    status: CoCoStatus
    size_needed: int | None = None
    vendor_code: int | None = None
    after_kernel_completion: tuple[Callable[[], None], ...] = ()
    value: int | None = None
    detail: str = ""

    def run_after_completion(self) -> tuple[tuple[object, Exception], ...]:
        """Run the deferred callbacks once, each even if an earlier one raised; never raises.

        A callback that raises is logged (naming it) and returned with its
        exception: the exit is completed already, and a VMM must keep its
        vCPUs running (docs/explanation/design.md, "Rules of the house").
        """
        failed: list[tuple[object, Exception]] = []
        callbacks: object = self.after_kernel_completion  # attrs does not check its type
        if not isinstance(callbacks, tuple):
            log.error("after_kernel_completion %r is not a tuple of callables; none run", callbacks)
            return ((callbacks, TypeError("after_kernel_completion is not a tuple")),)
        for cb in callbacks:
            try:
                cb()
            except Exception as exc:  # logged and returned; the next callback still runs
                log.exception("after-completion callback %r failed (%s)", cb, self.detail or "-")
                failed.append((cb, exc))
        return tuple(failed)
