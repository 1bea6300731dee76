# SPDX-License-Identifier: Apache-2.0
"""Golden ``kvm_run`` images: one exit, its request, and the bytes it completes to.


A golden is one exit, the request it decodes to, and the bytes it completes
to. A golden is one JSON file, ``NAME.json``, in a directory next to the test
module (``Golden.load_dir(__file__, "golden")``)::

    {
      "description": "GetQuote over a 4 KiB buffer, answered OK",
      "abi": "linux-7.2",
      "vendor": "tdx",
      "kvm_run_hex": [
        "0008: 28 00 00 00                 # exit_reason = KVM_EXIT_TDX (40)",
        "0020: 00 00 00 00 00 00 00 00     # tdx.flags",
        "0028: 01 00 01 00 00 00 00 00     # tdx.nr = GET_QUOTE"
      ],
      "request": {"type": "QuoteRequest", "fields": {"gpa": "0x1000", "size": 4096}},
      "handler_result": "OK",
      "completed_hex": [{"offset": "0x30", "hex": "00 00 00 00 00 00 00 00"}]
    }

* ``kvm_run_hex``: a hex dump, one string or a list of lines. A line may start
  with an offset from the start of ``kvm_run`` (``0020:``); a line without one
  continues where the previous line ended. ``#`` starts a comment. Bytes the
  dump does not name are zero; the image is ``KVM_RUN_SIZE`` (2352) bytes.
* ``request``: the neutral request class (a name from
  :mod:`coco_core.requests`, or ``"package.module:Class"``) and its fields.
  ``"0x..."`` strings are accepted for integer fields; lists become tuples.
* ``handler_result``: a :class:`~coco_core.status.CoCoStatus` name, or an
  object with ``status`` and the optional :class:`~coco_core.status.Outcome`
  fields (``size_needed``, ``vendor_code``, ``value``, ``detail``); ``null``
  means the VMM registered no handler (the decoder's default status applies).
* ``completed_hex``: what changes once the exit is completed, as overlays on
  ``kvm_run_hex``: either a hex dump with offsets, or a list of
  ``{"offset", "hex"}`` patches. Every other byte must stay as it was.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from coco_core import requests as neutral_requests
from coco_core.errors import GoldenError
from coco_core.generic.uapi import EXIT_REASON, EXIT_UNION_OFFSET, KVM_RUN_SIZE
from coco_core.requests import NeutralRequest
from coco_core.status import CoCoStatus, Outcome

__all__ = [
    "Golden",
    "GoldenError",
    "apply_hex_dump",
    "describe_diff",
    "hex_lines",
    "kvm_run_image",
    "parse_hex_dump",
]

_OFFSET = re.compile(r"^\s*(?:0x)?([0-9a-fA-F]+)\s*:\s*(.*)$")


def parse_hex_dump(dump: str | Sequence[str]) -> list[tuple[int, bytes]]:
    """Parse a hex dump into ``(offset, bytes)`` chunks, one per non-empty line.

    :param dump: text, or a list of lines; ``OFFSET: xx xx ...`` or bare bytes
        (continuing the previous line); ``#`` starts a comment.
    :raises ValueError: a line that is not hex.
    """
    lines = dump.splitlines() if isinstance(dump, str) else list(dump)
    chunks: list[tuple[int, bytes]] = []
    pos = 0
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        m = _OFFSET.match(text)
        if m is not None:
            pos = int(m.group(1), 16)
            text = m.group(2)
        data = bytes.fromhex(text)
        chunks.append((pos, data))
        pos += len(data)
    return chunks


def apply_hex_dump(buf: bytearray, dump: str | Sequence[str]) -> None:
    """Write the bytes of a hex dump into ``buf`` at their offsets.

    :raises ValueError: a chunk would fall outside ``buf``.
    """
    for off, data in parse_hex_dump(dump):
        if off + len(data) > len(buf):
            raise ValueError(
                f"hex dump chunk at {off:#x} ({len(data)} bytes) ends past {len(buf):#x}"
            )
        buf[off : off + len(data)] = data


def kvm_run_image(exit_reason: int, union: bytes = b"", *, fill: int = 0) -> bytearray:
    """A ``kvm_run`` buffer with ``exit_reason`` at 8 and ``union`` at 32.

    :param fill: the byte every other position holds (non-zero to catch
        writes outside the exit union).
    """
    buf = bytearray([fill]) * KVM_RUN_SIZE
    buf[EXIT_REASON : EXIT_REASON + 4] = exit_reason.to_bytes(4, "little")
    buf[EXIT_UNION_OFFSET : EXIT_UNION_OFFSET + len(union)] = union
    return buf


def _int_like(value: Any) -> Any:
    if isinstance(value, str) and value.lower().startswith("0x"):
        return int(value, 16)
    return value


def _tupled(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tupled(_int_like(v)) for v in value)
    return value


def _request_type(name: str) -> type[NeutralRequest]:
    if ":" in name:
        module, _, attr = name.partition(":")
        obj = getattr(importlib.import_module(module), attr)
    else:
        obj = getattr(neutral_requests, name, None)
    if not (isinstance(obj, type) and issubclass(obj, NeutralRequest)):
        raise ValueError(f"{name!r} is not a neutral request class")
    return obj


def _request(spec: Mapping[str, Any]) -> NeutralRequest:
    cls = _request_type(str(spec["type"]))
    fields = dict(spec.get("fields", {}))
    kwargs: dict[str, Any] = {}
    for a in attrs.fields(cls):  # type: ignore[arg-type]  # request classes are attrs classes
        if a.name not in fields:
            continue
        value = fields.pop(a.name)
        typ = str(a.type)
        if "int" in typ and "str" not in typ:
            value = _int_like(value)
        kwargs[a.name] = _tupled(value)
    if fields:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(fields)}")
    return cls(**kwargs)


def _result(spec: Any) -> CoCoStatus | Outcome | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        return CoCoStatus[spec]
    if isinstance(spec, Mapping):
        extra = {k: _int_like(v) for k, v in spec.items() if k != "status"}
        unknown = set(extra) - {"size_needed", "vendor_code", "value", "detail"}
        if unknown:
            raise ValueError(f"unknown Outcome field(s) {sorted(unknown)}")
        return Outcome(CoCoStatus[str(spec["status"])], **extra)
    raise ValueError(f"expected a status name or an object, got {spec!r}")


def _completed(kvm_run: bytes, spec: Any) -> bytes:
    buf = bytearray(kvm_run)
    if isinstance(spec, list) and all(isinstance(p, Mapping) for p in spec):
        for patch in spec:
            off = int(_int_like(patch["offset"]))
            data = bytes.fromhex(str(patch["hex"]).split("#", 1)[0])
            if off + len(data) > len(buf):
                raise ValueError(f"patch at {off:#x} ends past {len(buf):#x}")
            buf[off : off + len(data)] = data
    elif isinstance(spec, str | list):
        apply_hex_dump(buf, spec)
    else:
        raise ValueError("expected a hex dump or a list of {offset, hex} patches")
    return bytes(buf)


@attrs.frozen
class Golden:
    """One golden exit: the ``kvm_run`` image, its request, and the completed image.

    :param name: the file's stem.
    :param abi: the ABI the image is decoded under.
    :param vendor: the vendor whose dispatcher decodes it.
    :param kvm_run: the full ``kvm_run`` image (``KVM_RUN_SIZE`` bytes).
    :param request: the neutral request it must decode to.
    :param handler_result: what the VMM's handler answers; None for no handler.
    :param completed: the full ``kvm_run`` image expected after completion.
    :param description: one line for people.
    :param path: where it was loaded from.

    .. versionadded:: 0.1
    """

    name: str
    abi: str
    vendor: str
    kvm_run: bytes = attrs.field(repr=False)
    request: NeutralRequest
    handler_result: CoCoStatus | Outcome | None
    completed: bytes = attrs.field(repr=False)
    description: str = ""
    path: str = ""

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any], path: str = "") -> Golden:
        """Build a golden from the JSON object of one file.

        :raises GoldenError: a field is missing or malformed (named in the message).
        """
        where = path or name
        field = "?"
        try:
            field = "kvm_run_hex"
            image = bytearray(KVM_RUN_SIZE)
            apply_hex_dump(image, data["kvm_run_hex"])
            field = "request"
            request = _request(data["request"])
            field = "handler_result"
            result = _result(data.get("handler_result", "OK"))
            field = "completed_hex"
            completed = _completed(bytes(image), data["completed_hex"])
            field = "abi"
            abi = str(data["abi"])
            field = "vendor"
            vendor = str(data["vendor"])
        except (KeyError, ValueError, TypeError, AttributeError, ImportError) as exc:
            raise GoldenError(f"{where}: field {field!r}: {type(exc).__name__}: {exc}") from exc
        return cls(
            name,
            abi,
            vendor,
            bytes(image),
            request,
            result,
            completed,
            str(data.get("description", "")),
            path,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Golden:
        """Load one ``NAME.json`` golden.

        :raises GoldenError: not valid JSON, or a malformed field.
        """
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise GoldenError(f"{p}: not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise GoldenError(f"{p}: expected a JSON object")
        return cls.from_dict(p.stem, data, str(p))

    @classmethod
    def load_dir(
        cls, anchor: str | os.PathLike[str], directory: str = "golden"
    ) -> tuple[Golden, ...]:
        """Load every ``*.json`` in ``directory``, relative to ``anchor``'s folder, by name.

        :param anchor: usually the test module's ``__file__`` (a folder works too).
        :raises FileNotFoundError: the directory does not exist.
        """
        base = Path(anchor)
        if not base.is_dir():
            base = base.parent
        folder = base / directory
        if not folder.is_dir():
            raise FileNotFoundError(f"golden directory {folder} does not exist")
        return tuple(cls.load(p) for p in sorted(folder.glob("*.json")))

    def unpatched(self) -> bytearray:
        """A fresh, writable copy of the input image."""
        return bytearray(self.kvm_run)

    def to_dict(self, name_of: Callable[[int], str] | None = None) -> dict[str, Any]:
        """The JSON object of this golden, as :meth:`from_dict` reads it.

        :param name_of: names the field a byte offset belongs to, for the hex
            dump's comments (``kvm_run.tdx.nr``); None writes no comments.

        .. versionadded:: 0.2
        """
        request: dict[str, Any] = {"type": _type_name(self.request), "fields": {}}
        for a in attrs.fields(type(self.request)):  # type: ignore[arg-type]  # attrs request classes
            value = getattr(self.request, a.name)
            if isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            elif isinstance(value, int) and not isinstance(value, bool):
                value = hex(value)
            request["fields"][a.name] = value
        return {
            "description": self.description,
            "abi": self.abi,
            "vendor": self.vendor,
            "kvm_run_hex": hex_lines(self.kvm_run, bytes(len(self.kvm_run)), name_of),
            "request": request,
            "handler_result": _result_json(self.handler_result),
            "completed_hex": hex_lines(self.completed, self.kvm_run, name_of),
        }


def hex_lines(image: bytes, base: bytes, name_of: Callable[[int], str] | None = None) -> list[str]:
    """Hex-dump lines (``"0028: 01 00 ... # field"``) of what ``image`` changes in ``base``.

    One line per run of differing bytes within one field (as ``name_of``
    names them); :func:`apply_hex_dump` over ``base`` gives ``image`` back.

    .. versionadded:: 0.2
    """
    lines: list[str] = []
    done = 0
    i = 0
    while i < len(image):
        if image[i] == base[i]:
            i += 1
            continue
        field = name_of(i) if name_of is not None else ""
        start = i
        if name_of is not None:  # the whole field that changed, from its first byte
            while start > done and name_of(start - 1) == field:
                start -= 1
        j = i + 1
        while j < len(image) and j - start < 16:
            same_field = name_of is None or name_of(j) == field
            if not same_field or (name_of is None and image[j] == base[j]):
                break
            j += 1
        data = " ".join(f"{b:02x}" for b in image[start:j])
        lines.append(f"{start:04x}: {data}" + (f"   # {field}" if field else ""))
        done = i = j
    return lines


def _type_name(request: NeutralRequest) -> str:
    cls = type(request)
    name: str = cls.__name__
    if getattr(neutral_requests, name, None) is cls:
        return name
    return f"{cls.__module__}:{cls.__qualname__}"


def _result_json(result: CoCoStatus | Outcome | None) -> Any:
    if result is None:
        return None
    if isinstance(result, CoCoStatus):
        return result.name
    out: dict[str, Any] = {"status": result.status.name}
    for key in ("size_needed", "vendor_code", "value"):
        value = getattr(result, key)
        if value is not None:
            out[key] = hex(value) if value >= 0 else value
    if result.detail:
        out["detail"] = result.detail
    return out


def describe_diff(expected: bytes, got: bytes, limit: int = 16) -> str:
    """The first ``limit`` differing byte offsets, as ``offset: expected != got``."""
    diffs = [i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if a != b]
    shown = ", ".join(f"{i:#06x}: {expected[i]:02x} != {got[i]:02x}" for i in diffs[:limit])
    more = f" (+{len(diffs) - limit} more)" if len(diffs) > limit else ""
    return f"{len(diffs)} byte(s) differ: {shown}{more}"
