# SPDX-License-Identifier: Apache-2.0
"""The plugin's own kernel model as the kit's oracle.

Every :class:`~coco_core.model.base.CallExample` of a vendor's model parts is a
guest state that makes a guest call exit to userspace. :func:`exit_images`
runs each one's ``enter`` under every generation the call exists in and keeps
the ``kvm_run`` image the model wrote, with the decoder that claims it: the
images the kit decodes, fuzzes and completes (a zeroed image with only the
sub-call set may be one a decoder declines). :func:`model_problems` runs each
example to its end with a handler answering every neutral status and a spread
of :class:`~coco_core.status.Outcome` values (:func:`answers`), and reports
every completion the model's ``resume`` refuses, naming the ABI, the call,
the decoder, the answer and the value written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from coco_core.abi import ExitDecoder
from coco_core.completion import Result
from coco_core.dispatch import Dispatcher
from coco_core.errors import ConfigurationError, KvmRunRejected
from coco_core.kernels import order
from coco_core.model.base import CallExample, ExitImage, GuestCall, ModelPart
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.status import CoCoStatus, Outcome
from coco_core.testing.writes import write_ranges

__all__ = [
    "ExampleMemory",
    "ExitSample",
    "answers",
    "describe_answer",
    "exit_images",
    "model_problems",
]

_U64 = (1 << 64) - 1


class ExampleMemory:
    """Sparse guest RAM below 4 GiB for model examples, preloaded from ``CallExample.memory``.

    .. versionadded:: 0.2
    """

    SIZE = 1 << 32

    def __init__(self, contents: dict[int, bytes] | None = None) -> None:
        self._bytes: dict[int, int] = {}
        for gpa, data in (contents or {}).items():
            self.write(gpa, data)

    def contains(self, gpa: int, size: int) -> bool:
        """True if ``[gpa, gpa + size)`` lies below 4 GiB."""
        return gpa >= 0 and size >= 0 and gpa + size <= self.SIZE

    def read(self, gpa: int, size: int) -> bytes:
        """``size`` bytes at ``gpa`` (zero where nothing was written)."""
        if not self.contains(gpa, size):
            raise IndexError(f"no guest RAM at {gpa:#x}+{size:#x}")
        get = self._bytes.get
        return bytes(get(gpa + i, 0) for i in range(size))

    def write(self, gpa: int, data: bytes) -> None:
        """Write ``data`` at ``gpa``."""
        if not self.contains(gpa, len(data)):
            raise IndexError(f"no guest RAM at {gpa:#x}+{len(data):#x}")
        for i, b in enumerate(data):
            self._bytes[gpa + i] = b


def answers(dec: ExitDecoder) -> list[Result]:
    """Every neutral status, then Outcomes with sizes, values and vendor codes at their bounds.

    .. versionadded:: 0.2
    """
    out: list[Result] = list(CoCoStatus)
    for size in (0, 1, 4095, 4096, 4097, (1 << 32) - 1, 1 << 32, _U64, -1):
        out.append(Outcome(CoCoStatus.BUFFER_TOO_SMALL, size_needed=size))
    for value in (0, 1, (1 << 32) - 1, _U64, 1 << 64, (1 << 256) - 1, -1):
        out.append(Outcome(CoCoStatus.OK, value=value))
    space = dec.error_space
    if space is not None:
        for raw in sorted(space.names):
            status = space.decode(raw)
            if isinstance(status, CoCoStatus):
                out.append(Outcome(status, vendor_code=raw))
    return out


def describe_answer(result: Result) -> str:
    """``RETRY``, or ``Outcome(BUFFER_TOO_SMALL, size_needed=0x1000)``: an answer, short.

    .. versionadded:: 0.2
    """
    if isinstance(result, CoCoStatus):
        return result.name
    extra = ", ".join(
        f"{k}={v:#x}" if isinstance(v, int) and v >= 0 else f"{k}={v}"
        for k, v in (("size_needed", result.size_needed), ("value", result.value),
                     ("vendor_code", result.vendor_code))
        if v is not None
    )  # fmt: skip
    return f"Outcome({result.status.name}{', ' + extra if extra else ''})"


@attrs.frozen
class ExitSample:
    """One exit the model raised for one example: what the kit decodes and completes.

    .. versionadded:: 0.2
    """

    abi: str
    call: str
    example: str
    decoder: ExitDecoder | None
    image: bytes = attrs.field(repr=False)


def _examples(
    registry: Registry, vendor: str
) -> Iterator[tuple[ModelPart, GuestCall, CallExample]]:
    for part in registry.models:
        if part.vendor != vendor:
            continue
        for call in part.calls:
            for ex in call.examples:
                yield part, call, ex


def _runs_in(call: GuestCall, ex: CallExample, abi: str) -> bool:
    if ex.generations is not None and abi not in ex.generations:
        return False
    return order(abi) >= order(call.since)


def _model(registry: Registry, vendor: str, abi: str, ex: CallExample) -> KernelModel:
    model = KernelModel(registry, vendor, ExampleMemory(dict(ex.memory)), generation=abi)
    model.ctx.vm_state.update(ex.vm_state)
    return model


def exit_images(registry: Registry, vendor: str, abis: Iterable[str]) -> list[ExitSample]:
    """The first exit of every example under every ABI in ``abis`` it exits in.

    .. versionadded:: 0.2
    """
    out: list[ExitSample] = []
    for abi in abis:
        d = Dispatcher(registry, vendor, abi)
        for _part, call, ex in _examples(registry, vendor):
            if not _runs_in(call, ex, abi):
                continue
            model = _model(registry, vendor, abi, ex)
            step = call.enter(model.ctx, ex.cpu())
            if isinstance(step, ExitImage):
                image = bytes(model.ctx.run)
                out.append(
                    ExitSample(abi, call.name, ex.name, d.decoder_for(bytearray(image)), image)
                )
    return out


def _answer_all(d: Dispatcher, result: Result) -> None:
    def handler(request: Any, context: Any) -> Result:
        return result

    for dec in d.claims():
        d.on(dec.request_type, handler)


def model_problems(
    registry: Registry, vendor: str, abis: Iterable[str]
) -> tuple[list[str], set[tuple[str, str]]]:
    """Run every example with every answer; return (problems, the (ABI, decoder) pairs reached).

    A problem is a completion the model refused (:class:`KvmRunRejected`) or a
    model that failed otherwise; each names the ABI, the call and example, the
    decoder, the answer, and what was written into ``kvm_run``.

    .. versionadded:: 0.2
    """
    problems: list[str] = []
    reached: set[tuple[str, str]] = set()
    for abi in abis:
        base = Dispatcher(registry, vendor, abi)
        first = {(x.call, x.example): x.decoder for x in exit_images(registry, vendor, [abi])}
        for part, call, ex in _examples(registry, vendor):
            if not _runs_in(call, ex, abi):
                continue
            unknown = part.unknown_registers(ex.cpu())
            if unknown:
                problems.append(
                    f"{call.name} example {ex.name!r}: registers {unknown} are not the model "
                    f"part's (ModelPart.registers)"
                )
                continue
            results: list[Result | None] = [None]  # None: no handler, the default applies
            dec = first.get((call.name, ex.name))
            if dec is not None:
                results.extend(answers(dec))
            for result in results:
                case = _Case(registry, vendor, abi, call, ex, base)
                problems.extend(_run_one(case, result, reached))
    return problems, reached


@attrs.frozen
class _Case:
    """One example under one ABI; ``base`` is a dispatcher without handlers, to look up decoders."""

    registry: Registry
    vendor: str
    abi: str
    call: GuestCall
    ex: CallExample
    base: Dispatcher


def _run_one(case: _Case, result: Result | None, reached: set[tuple[str, str]]) -> list[str]:
    registry, vendor, abi, call, ex, base = (
        case.registry, case.vendor, case.abi, case.call, case.ex, case.base
    )  # fmt: skip
    d = Dispatcher(registry, vendor, abi)
    if result is not None:
        _answer_all(d, result)
    model = _model(registry, vendor, abi, ex)
    seen: list[str] = []

    def on_exit(name: str, _done: object) -> None:
        dec = base.decoder_for(model.ctx.run)
        seen.append(dec.name if dec is not None else f"unclaimed {name}")
        if dec is not None:
            reached.add((abi, dec.name))

    answer = "no handler (the default)" if result is None else describe_answer(result)
    try:
        model.call(call.name, ex.cpu(), d, on_exit=on_exit)
    except KvmRunRejected as exc:
        return [_refused(case, seen, answer, model, exc)]
    except ConfigurationError:
        raise
    except Exception as exc:  # the model or the plugin failed on this answer
        return [
            f"{abi} {call.name} ({ex.name}) via {seen[-1] if seen else 'no exit'} answering "
            f"{answer}: the model raised {type(exc).__name__}: {exc}"
        ]
    lost = [s.removeprefix("unclaimed ") for s in seen if s.startswith("unclaimed ")]
    if result is None and lost:
        return [
            f"{abi} {call.name} ({ex.name}): the model raised {lost[0]}, which no decoder of "
            f"{vendor!r} claims under {abi}: the model and the decoders disagree (or limit "
            "the example with CallExample(generations=...))"
        ]
    return []


def _refused(case: _Case, seen: list[str], answer: str, model: KernelModel, exc: Exception) -> str:
    abi, call, ex, base = case.abi, case.call, case.ex, case.base
    dec = base.decoder_for(model.ctx.run)
    written = ""
    if dec is not None and dec.write_set:
        abi_obj = base.registry.abi(abi)
        parts = []
        for lo, hi, path in write_ranges(abi_obj, dec):
            value = int.from_bytes(bytes(model.ctx.run[lo:hi]), "little")
            parts.append(f"{path} = {value:#x}")
        written = "; wrote " + ", ".join(parts)
    return (
        f"{abi} {call.name} ({ex.name}): decoder {seen[-1] if seen else '?'} answering "
        f"{answer}{written}: the kernel model refuses it: {exc}"
    )
