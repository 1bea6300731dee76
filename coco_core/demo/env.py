# SPDX-License-Identifier: Apache-2.0
"""What ``coco demo`` gives each scenario: a backend, tracing, and one line per exit.

A scenario (shipped by a vendor plugin, registered with
:meth:`~coco_core.registry.Registrar.add_scenario`) builds its dispatcher with
:meth:`DemoEnv.dispatcher`, runs guest calls with :meth:`DemoEnv.call`, and
checks what the guest saw with :meth:`DemoEnv.check`. Every exit becomes one
:class:`ExitLine`: backend, vendor, exit name and number, neutral request and
status, the raw value written back, and what the guest saw. A step that
provokes faults on purpose runs inside :meth:`DemoEnv.deliberate`: its lines
say so, and what coco logs about those faults goes with them instead of
looking like a real fault on stderr.

A scenario reads its real public test data from :attr:`DemoEnv.testdata`:
``--testdata`` if given, else the ``data/`` folder the scenario's plugin ships
(laid out like the repository's ``testdata/``; see :func:`scenario_data`).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import logging
from collections.abc import Callable, Iterator
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

__all__ = [
    "LINE_WIDTH",
    "ConversionLog",
    "DemoEnv",
    "ExitLine",
    "default_testdata",
    "scenario_data",
]

#: the longest line ``coco demo`` prints without ``-v``
LINE_WIDTH = 100
#: prefixes dropped from exit names in the short line (the legend says so)
_PREFIXES = ("KVM_EXIT_", "KVM_SYSTEM_EVENT_", "KVM_")


@attrs.frozen
class ExitLine:
    """One exit as ``coco demo`` prints it.

    :param deliberate: set inside :meth:`DemoEnv.deliberate`: the planned fault this
        exit belongs to.
    :param logs: what coco logged while this exit was handled inside a deliberate step.
    """

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
    deliberate: str | None = None
    logs: tuple[str, ...] = ()

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
                "deliberate": self.deliberate,
                "logs": list(self.logs),
            },
            default=str,
        )

    def to_text(self, verbose: bool = False) -> str:
        """One readable line of at most :data:`LINE_WIDTH` columns; ``verbose``: every detail.

        The short line names the exit without its ``KVM_`` prefixes, the request
        kind and the neutral status, then as much of what the guest saw as fits.
        ``verbose`` adds the request's fields and the vendor value written back,
        never cuts, and puts the deliberate fault and each log record it caused on
        indented lines of their own.
        """
        mark = " [deliberate]" if self.deliberate else ""
        name = self.exit_name
        for prefix in _PREFIXES:
            name = name.replace(prefix, "")
        if verbose:
            raw = "-" if self.raw is None else f"{self.raw:#x} {self.raw_name or '?'}"
            args = " ".join(f"{k}={_fmt(v)}" for k, v in self.fields.items())
            line = (
                f"{self.backend:<5} {self.vendor}{mark} {self.exit_name} ({self.exit_reason}) "
                f"{self.request}({args}) -> {self.status or '-'}, wrote {raw}; "
                f"guest: {self.guest}"
            )
            if self.deliberate:
                line += f"\n      deliberate: {self.deliberate}"
            return "\n".join([line, *(f"      log: {record}" for record in self.logs)])
        line = (
            f"{self.backend:<5} {self.vendor}{mark} {name}({self.exit_reason}) {self.request} "
            f"-> {self.status or '-'} | guest: {self.guest}"
        )
        return line if len(line) <= LINE_WIDTH else line[: LINE_WIDTH - 3] + "..."


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


def scenario_data(target: str) -> Path | None:
    """The test data a scenario's plugin ships: the ``data/`` folder of its top package.

    :param target: the scenario's ``module:function`` (``coco_snp.demo:scenario`` gives
        the ``coco_snp/data`` folder of the installed package).
    :returns: that folder, or None when the package ships none (or is not a folder on
        disk, as in a zip).
    """
    package = target.partition(":")[0].partition(".")[0]
    try:
        folder = importlib.resources.files(package) / "data"
    except ModuleNotFoundError:
        return None
    return folder if isinstance(folder, Path) and folder.is_dir() else None


class _Capture(logging.Handler):
    """Keeps the records coco logs during a deliberate step, as one line each."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" ({type(exc).__name__}: {exc})"
        self.records.append(f"{record.levelname} {record.name}: {text}")


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
    _deliberate: str | None = None
    _capture: _Capture | None = None

    @contextlib.contextmanager
    def deliberate(self, what: str) -> Iterator[None]:
        """Run a step whose faults are planned: its lines and coco's logs say ``what``.

        While the step runs, what the ``coco_core`` loggers record goes with the
        exit lines (:attr:`ExitLine.logs`) instead of to the application's log
        handlers, so a planned fault does not read like a real one.

        :param what: the fault, as the lines name it ("a handler that raises").
        """
        logger = logging.getLogger("coco_core")
        capture = _Capture()
        saved = (self._deliberate, self._capture, logger.propagate)
        self._deliberate, self._capture = what, capture
        logger.addHandler(capture)
        logger.propagate = False
        try:
            yield
        finally:
            logger.removeHandler(capture)
            self._deliberate, self._capture, logger.propagate = saved

    def _take_logs(self) -> tuple[str, ...]:
        if self._capture is None:
            return ()
        records = tuple(self._capture.records)
        self._capture.records.clear()
        return records

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
                    self._deliberate,
                    self._take_logs(),
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
                    self._deliberate,
                    self._take_logs(),
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
