# SPDX-License-Identifier: Apache-2.0
"""What the kit does to one ``kvm_run`` image: decode, dispatch, complete, and check.

:func:`image_problems` is the one check every fuzzing pass of the kit runs on
an image: the decoder must not raise; the dispatcher must not raise, must
write nothing outside the exit union and nothing outside the claiming
decoder's write set (:mod:`coco_core.testing.writes`), must leave an exit it
hands back untouched, and must answer ``ERROR`` when the handler raises.
:func:`base_images` gives the images a decoder is fuzzed from: the exits the
kernel model writes for the plugin's examples, and a zeroed image with only
the sub-call key set. :func:`boundary_problems` sets each scalar of the
decoder's union member to each boundary value (:func:`~coco_core.testing.fuzz.boundary_values`)
on every base image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from coco_core.abi import Abi, ExitDecoder
from coco_core.completion import Result
from coco_core.dispatch import Dispatcher
from coco_core.requests import Unsupported
from coco_core.status import CoCoStatus
from coco_core.testing.fuzz import boundary_values
from coco_core.testing.golden import kvm_run_image
from coco_core.testing.oracle import ExitSample, answers, describe_answer
from coco_core.testing.writes import member_of, scalar_fields, write_problems

__all__ = ["RAISES", "answer_all", "base_images", "boundary_problems", "image_problems"]

#: the answer that makes every handler raise
RAISES = "a handler that raises"


def _raise(request: Any, context: Any) -> Result:
    raise RuntimeError(f"conformance kit: handler raises on purpose for {request!r}")


def answer_all(d: Dispatcher, answer: Result | str | None) -> None:
    """Give every request type of ``d`` a handler answering ``answer`` (None: no handler).

    .. versionadded:: 0.2
    """
    if answer is None:
        return

    def handler(request: Any, context: Any) -> Result:
        assert not isinstance(answer, str)
        return answer

    for dec in d.claims():
        d.on(dec.request_type, _raise if answer == RAISES else handler)


def image_problems(
    abi: Abi, d: Dispatcher, image: bytes, answer: Result | str | None, what: str
) -> list[str]:
    """Everything wrong with dispatching ``image`` once, ``d`` answering ``answer``.

    ``d`` must be fresh or have been given the same answer (see :func:`answer_all`).

    .. versionadded:: 0.2
    """
    frame = abi.frame
    assert frame is not None
    lo, hi = frame.union_offset, frame.union_offset + frame.union_size
    dec = d.decoder_for(bytearray(image))
    name = dec.name if dec is not None else "unclaimed exit"
    if dec is not None:
        try:
            dec.decode(memoryview(bytearray(image)))
        except Exception as exc:  # the bug the kit reports: a decoder must not raise
            return [f"{abi.name} {name}: decoder raised {type(exc).__name__} ({exc}) {what}"]
    buf = bytearray(image)
    try:
        result = d.dispatch(buf)
    except Exception as exc:  # the dispatcher must never raise for guest input
        return [f"{abi.name} {name}: dispatch raised {type(exc).__name__} ({exc}) {what}"]
    label = f"{what}, answering {_label(answer)}"
    problems: list[str] = []
    if bytes(buf[:lo]) != image[:lo] or bytes(buf[hi:]) != image[hi:]:
        problems.append(f"{abi.name} {name} {label}: wrote outside the exit union ({lo}..{hi})")
    if isinstance(result, Unsupported):
        if bytes(buf) != image:
            problems.append(f"{abi.name} {name} {label}: handed back {result.why.name} but wrote")
        return problems
    if dec is not None:
        problems.extend(write_problems(abi, dec, image, bytes(buf), label))
    if answer == RAISES and result is not CoCoStatus.ERROR:
        problems.append(f"{abi.name} {name} {label}: answered {result!r}, not ERROR")
    return problems


def _label(answer: Result | str | None) -> str:
    if answer is None:
        return "nothing (no handler)"
    return answer if isinstance(answer, str) else describe_answer(answer)


def base_images(
    abi: Abi, dec: ExitDecoder, samples: Iterable[ExitSample]
) -> list[tuple[str, bytes]]:
    """``(label, image)`` to fuzz ``dec`` from: the model's exits it claims, then a zeroed one.

    .. versionadded:: 0.2
    """
    frame = abi.frame
    assert frame is not None
    out = [
        (f"from the model's {s.call} ({s.example})", s.image)
        for s in samples
        if s.abi == abi.name and s.decoder is dec
    ]
    zero = kvm_run_image(dec.reason)
    disc = abi.discriminators.get(dec.reason)
    if disc is not None and dec.discriminator is not None and not dec.fallback:
        disc.pack_into(zero, dec.discriminator)
    out.append(("from a zeroed image", bytes(zero)))
    return out


def boundary_problems(
    abi: Abi,
    registry: Any,
    vendor: str,
    decoders: Sequence[ExitDecoder],
    samples: Sequence[ExitSample],
) -> list[str]:
    """Each scalar of each decoder's member at each boundary value, on every base image.

    The handlers' answer cycles through :func:`~coco_core.testing.oracle.answers`
    (and a raising handler), so every value meets several answers.

    .. versionadded:: 0.2
    """
    problems: list[str] = []
    for dec in decoders:
        pool: list[Result | str | None] = [*answers(dec), None, RAISES]
        dispatchers = {}
        for answer in pool:
            d = Dispatcher(registry, vendor, abi.name)
            answer_all(d, answer)
            dispatchers[id(answer)] = d
        fields = scalar_fields(abi, member_of(dec, abi))
        i = 0
        for where, image in base_images(abi, dec, samples):
            for f in fields:
                for value in boundary_values(f.size):
                    buf = bytearray(image)
                    buf[f.offset : f.offset + f.size] = value.to_bytes(f.size, "little")
                    answer = pool[i % len(pool)]
                    i += 1
                    what = f"with {f.path} = {value:#x} ({where})"
                    found = image_problems(abi, dispatchers[id(answer)], bytes(buf), answer, what)
                    if found:
                        problems.extend(found)
                        break  # one value per field is enough to show the bug
    return problems
