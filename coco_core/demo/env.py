# SPDX-License-Identifier: Apache-2.0
"""What ``coco demo`` gives each scenario: a backend, tracing, and one line per exit.

A scenario (shipped by a vendor plugin, registered with
:meth:`~coco_core.registry.Registrar.add_scenario`) builds its dispatcher with
:meth:`DemoEnv.dispatcher`, runs guest calls with :meth:`DemoEnv.call`, and
checks what the guest saw with :meth:`DemoEnv.check`. Every exit becomes one
:class:`ExitLine`: backend, vendor, exit name and number, neutral request and
status, the raw value written back, and what the guest saw.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from coco_core.dispatch import Dispatcher, Result
from coco_core.exits import CoCoExit
from coco_core.model.base import GuestCpu, GuestView
from coco_core.model.kernel import KernelModel
from coco_core.registry import DEFAULT_ABI, Registry
from coco_core.requests import MemoryConversion, NeutralRequest, Unsupported
from coco_core.services.memattr import ContainsFn, MemoryAttributeTracker
from coco_core.status import CoCoStatus, Outcome

if TYPE_CHECKING:
    from coco_core.emulated.tee import EmulatedGuest, EmulatedRun

__all__ = ["ConversionLog", "DemoEnv", "ExitLine", "default_testdata"]


@attrs.frozen
class ExitLine:
    """One exit as ``coco demo`` prints it."""

    backend: str
    vendor: str
    exit_name: str
    exit_reason: int
    request: str
    fields: dict[str, Any]
    status: str | None
    raw: int | None
    raw_name: str | None
    guest: str

    def to_json(self) -> str:
        """One JSON object on one line."""
        return json.dumps(
            {
                "backend": self.backend,
                "vendor": self.vendor,
                "exit": self.exit_name,
                "exit_reason": self.exit_reason,
                "request": self.request,
                "fields": self.fields,
                "status": self.status,
                "raw": self.raw,
                "raw_name": self.raw_name,
                "guest": self.guest,
            },
            default=str,
        )

    def to_text(self) -> str:
        """One readable line."""
        raw = "-" if self.raw is None else f"{self.raw:#x} {self.raw_name or '?'}"
        args = " ".join(f"{k}={_fmt(v)}" for k, v in self.fields.items())
        return (
            f"[{self.backend}] {self.vendor} {self.exit_name} ({self.exit_reason}) "
            f"{self.request}({args}) -> {self.status or '-'}, wrote {raw}; guest: {self.guest}"
        )


def _fmt(v: Any) -> str:
    return f"{v:#x}" if isinstance(v, int) and not isinstance(v, bool) and v > 9 else str(v)


def _fields(request: NeutralRequest) -> dict[str, Any]:
    if attrs.has(type(request)):
        out = attrs.asdict(request, recurse=False)  # type: ignore[arg-type]
        out.pop("raw", None)
        return out
    return {}


def default_testdata() -> Path | None:
    """The real public test data: the repository's ``testdata/``, or None outside a checkout."""
    candidate = Path(__file__).resolve().parents[2] / "testdata"
    return candidate if candidate.is_dir() else None


class ConversionLog:
    """A scenario's memory-conversion handler: the tracker answers, and each request is kept.

    :attr:`entries` holds ``(gpa, npages, to_private, private_after)`` per
    conversion, so a scenario can check that the tracker followed the guest.

    :param contains: checks a range against guest RAM (``memory.contains``).
    """

    def __init__(self, contains: ContainsFn) -> None:
        self.tracker = MemoryAttributeTracker(contains)
        self.entries: list[tuple[int, int, bool, bool]] = []

    def __call__(self, request: MemoryConversion, context: Any) -> Result:
        result = self.tracker.on_conversion(request, context)
        after = self.tracker.is_private(request.gpa)
        self.entries.append((request.gpa, request.npages, request.to_private, after))
        return result


@attrs.define
class DemoEnv:
    """The environment a scenario runs in."""

    registry: Registry
    backend: str
    emit: Callable[[ExitLine], None]
    testdata: Path | None = None
    failures: list[str] = attrs.field(factory=list)
    checks: int = 0
    _pending: list[CoCoExit] = attrs.field(factory=list)
    _unclaimed: list[tuple[str, Unsupported]] = attrs.field(factory=list)

    def dispatcher(self, vendor: str, abi: str = DEFAULT_ABI) -> Dispatcher:
        """A dispatcher whose completions are traced into this demo's lines."""
        return Dispatcher(self.registry, vendor, abi, tracer=self._pending.append)

    def call(
        self,
        model: KernelModel,
        name: str,
        cpu: GuestCpu,
        dispatcher: Dispatcher,
        context: Any = None,
    ) -> GuestView:
        """Run one guest call through ``model`` and ``dispatcher``; emit a line per exit."""
        self._pending.clear()

        def on_exit(exit_name: str, result: Result | Unsupported) -> None:
            if isinstance(result, Unsupported):
                self._unclaimed.append((exit_name, result))

        view = model.call(name, cpu, dispatcher, context, on_exit)
        self.flush(dispatcher.vendor, view.summary)
        return view

    def flush(self, vendor: str, guest: str) -> None:
        """Emit the exits traced since the last flush; the last one carries ``guest``."""
        exits = list(self._pending)
        self._pending.clear()
        for i, ev in enumerate(exits):
            done = ev.completed
            status = done.status.name if done is not None and done.status is not None else None
            outcome = done.outcome if done is not None else None
            note = guest if i == len(exits) - 1 else "(next chunk follows)"
            if outcome is not None and isinstance(outcome, Outcome) and outcome.detail:
                note = f"{note} [{outcome.detail}]"
            self.emit(
                ExitLine(
                    self.backend,
                    vendor,
                    ev.name,
                    ev.exit_reason,
                    ev.request.kind,
                    _fields(ev.request),
                    status,
                    done.raw if done is not None else None,
                    done.raw_name if done is not None else None,
                    note,
                )
            )
        for exit_name, req in self._unclaimed:
            self.emit(
                ExitLine(
                    self.backend,
                    vendor,
                    exit_name,
                    req.raw_reason,
                    req.kind,
                    {},
                    None,
                    None,
                    None,
                    guest,
                )
            )
        self._unclaimed.clear()

    def flush_each_call(self, vendor: str) -> Callable[[Any], None]:
        """An ``on_call`` hook for :class:`~coco_core.emulated.tee.EmulatedTee`: one flush per call.

        The hook receives the emulated TEE's call record and flushes the exits
        traced during it with the record's summary as what the guest saw.
        """

        def on_call(record: Any) -> None:
            self.flush(vendor, record.summary)

        return on_call

    def run_guest(
        self,
        vendor: str,
        guest: str | Path,
        prepare: Callable[[EmulatedGuest], None],
        deadline: float,
    ) -> EmulatedRun:
        """Run a demo guest on real KVM behind ``vendor``'s emulated TEE, traced into lines.

        The dispatcher is :meth:`dispatcher`'s and every doorbell call is flushed
        as one line (:meth:`flush_each_call`). Returns the
        :class:`~coco_core.emulated.tee.EmulatedRun`.
        """
        from coco_core.emulated.tee import run_guest  # the KVM backend only when a guest runs

        return run_guest(
            self.registry,
            vendor,
            guest,
            prepare=prepare,
            dispatcher=self.dispatcher(vendor),
            on_call=self.flush_each_call(vendor),
            deadline=deadline,
        )

    def check(self, ok: bool, what: str) -> None:
        """Record one expectation about what the guest saw."""
        self.checks += 1
        if not ok:
            self.failures.append(what)


def status_name(result: Result) -> str:
    """The neutral status of a handler result."""
    return (result if isinstance(result, CoCoStatus) else result.status).name
