# SPDX-License-Identifier: Apache-2.0
"""Goldens recorded from the kernel model, for a plugin that has none yet.

:func:`record_goldens` takes the exit the kernel model writes for every
:class:`~coco_core.model.base.CallExample` of a vendor (under one ABI, or all
of the vendor's), decodes it, completes it with each answer asked for, and
returns one :class:`~coco_core.testing.golden.Golden` per exit and answer,
the hex dumps commented with the ``kvm_run`` field of every byte.
``coco golden record VENDOR --out DIR`` writes them as ``NAME.json``.

A recorded golden pins what the plugin does today: it is a second check (the
kit's oracle is the model itself), and worth a review before it is committed.
Where a real exit exists (a QEMU trace, a selftest), prefer it, and cite it in
``description``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from coco_core.dispatch import Dispatcher
from coco_core.errors import ConfigurationError
from coco_core.registry import Registry
from coco_core.requests import Unsupported
from coco_core.status import CoCoStatus, Outcome
from coco_core.testing.golden import Golden
from coco_core.testing.oracle import describe_answer, exit_images
from coco_core.testing.writes import member_of, name_byte

__all__ = ["golden_json", "record_goldens"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def record_goldens(
    registry: Registry,
    vendor: str,
    abis: Iterable[str] | None = None,
    answers: Sequence[CoCoStatus | Outcome | None] = (CoCoStatus.OK, None),
) -> list[Golden]:
    """One golden per model exit and answer (None: no handler, the decoder's default).

    Exits a decoder declines, or no decoder claims, are left out: they have no
    request to pin.

    :raises ConfigurationError: the vendor registers no model examples, or an
        ABI name is unknown.

    .. versionadded:: 0.2
    """
    names = list(abis) if abis is not None else [a.name for a in registry.abis_of(vendor)]
    samples = exit_images(registry, vendor, names)
    if not samples:
        raise ConfigurationError(
            f"vendor {vendor!r} has no kernel-model examples under {', '.join(names) or 'no ABI'}:"
            " add CallExample(...) to its GuestCalls"
        )
    out: list[Golden] = []
    seen: set[str] = set()
    for s in samples:
        dec = s.decoder
        if dec is None:
            continue
        d = Dispatcher(registry, vendor, s.abi)
        request = d.decode(bytearray(s.image)).request
        if isinstance(request, Unsupported):
            continue
        for answer in answers:
            d = Dispatcher(registry, vendor, s.abi)
            if answer is not None:
                d.on(dec.request_type, _constant(answer))
            buf = bytearray(s.image)
            d.dispatch(buf)
            said = "no handler" if answer is None else describe_answer(answer)
            name = _slug(f"{s.abi} {s.call} {s.example} {said}")
            if name in seen:
                continue
            seen.add(name)
            out.append(
                Golden(
                    name,
                    s.abi,
                    vendor,
                    s.image,
                    request,
                    answer,
                    bytes(buf),
                    f"{dec.name} from the kernel model's {s.call} ({s.example}), answered "
                    f"{said}; recorded by coco golden record",
                )
            )
    return out


def _constant(answer: CoCoStatus | Outcome) -> Any:
    def handler(request: Any, context: Any) -> CoCoStatus | Outcome:
        return answer

    return handler


def golden_json(registry: Registry, golden: Golden) -> dict[str, Any]:
    """``golden.to_dict()`` with every byte's ``kvm_run`` field named in the comments.

    .. versionadded:: 0.2
    """
    abi = registry.abi(golden.abi)
    d = Dispatcher(registry, golden.vendor, golden.abi)
    dec = d.decoder_for(bytearray(golden.kvm_run))
    member = member_of(dec, abi) if dec is not None else None
    return golden.to_dict(lambda offset: name_byte(abi, offset, member))
