# SPDX-License-Identifier: Apache-2.0
"""The conformance kit: the tests every coco vendor plugin runs, and golden exits.

A plugin's test suite subclasses :class:`PluginConformance` (the fsspec shape:
the kit owns the tests, the plugin names itself) and gets the checks the core
promises its embedders: the entry point is installed, the hook
implementations match the hookspecs, every layout matches gcc, every error
space is total, injective and round-trips and keeps unknown codes, every
declared status field agrees with its decoder's ``write``, golden
images decode and complete byte-exact, random ``kvm_run`` images never make
the dispatcher raise or write outside the exit union, and exits nobody
claims come back untouched.

Golden ``kvm_run`` images
-------------------------

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

import functools
import importlib
import importlib.metadata
import inspect
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coco_core import hookspecs
from coco_core import requests as neutral_requests
from coco_core.abi import Abi, AbiPart, ExitDecoder
from coco_core.dispatch import Dispatcher
from coco_core.errors import CoCoError
from coco_core.errorspace import CodeError, ErrorSpace, UnknownCode
from coco_core.generic.uapi import EXIT_UNION_OFFSET, EXIT_UNION_SIZE, KVM_RUN_SIZE
from coco_core.layout import Layout
from coco_core.model.base import GENERATIONS
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.requests import (
    CertificateRequest,
    EventNotifySetup,
    MemoryConversion,
    MemoryFault,
    NeutralRequest,
    QuoteRequest,
    TdvmcallInfoQuery,
    Termination,
    Unsupported,
)
from coco_core.review.gcc import CompilerUnavailable, compare_with_gcc
from coco_core.status import CoCoStatus, Outcome

__all__ = [
    "CAPABILITIES",
    "Golden",
    "GoldenError",
    "PluginConformance",
    "apply_hex_dump",
    "kvm_run_image",
    "parse_hex_dump",
    "registry_for",
]

_OFFSET = re.compile(r"^\s*(?:0x)?([0-9a-fA-F]+)\s*:\s*(.*)$")


class GoldenError(CoCoError):
    """A golden file is malformed; the message names the file and the field."""


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
    buf[8:12] = exit_reason.to_bytes(4, "little")
    buf[32 : 32 + len(union)] = union
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


def _describe_diff(expected: bytes, got: bytes, limit: int = 16) -> str:
    """The first ``limit`` differing byte offsets, as ``offset: expected != got``."""
    diffs = [i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if a != b]
    shown = ", ".join(f"{i:#06x}: {expected[i]:02x} != {got[i]:02x}" for i in diffs[:limit])
    more = f" (+{len(diffs) - limit} more)" if len(diffs) > limit else ""
    return f"{len(diffs)} byte(s) differ: {shown}{more}"


# -- the conformance kit -------------------------------------------------------------

#: Optional capability name → the neutral request a plugin declaring it must decode.
CAPABILITIES: Mapping[str, type[NeutralRequest]] = {
    "certificates": CertificateRequest,
    "event_notify": EventNotifySetup,
    "get_quote": QuoteRequest,
    "map_gpa": MemoryConversion,
    "memory_fault": MemoryFault,
    "tdvmcall_info": TdvmcallInfoQuery,
    "termination": Termination,
}

_FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_UNION = slice(EXIT_UNION_OFFSET, EXIT_UNION_OFFSET + EXIT_UNION_SIZE)


def status_field_problems(abi: Abi, dec: ExitDecoder, kvm_run: bytes) -> list[str]:
    """What is wrong with ``dec.status_field`` under ``abi``, for one ``kvm_run`` image.

    The field must name a ``kvm_run`` member of the ABI's (gcc-checked) layout
    at the same offset and size, and for every status the decoder's space
    encodes, packing the value into the field must give exactly the bytes
    ``dec.write(run, request, raw, None)`` gives. Empty when all holds.
    """
    from coco_core.cli.abi import kvm_run_offsets

    field = dec.status_field
    if field is None:
        return []
    where = f"{abi.name} {dec.name}: status field {field.field}"
    if dec.write is None or dec.error_space is None:
        return [f"{where}: the decoder has no write() or no error space to encode with"]
    member = kvm_run_offsets(abi).get(field.field)
    if member is None:
        return [f"{where}: not a kvm_run member of {abi.name}"]
    if member != (field.offset, field.size):
        return [f"{where}: declared at {field.offset} size {field.size}, layout says {member}"]
    problems: list[str] = []
    request = dec.decode(memoryview(bytearray(kvm_run)))
    for status in CoCoStatus:
        raw = dec.error_space.encode(status)
        by_write, by_field = bytearray(kvm_run), bytearray(kvm_run)
        dec.write(memoryview(by_write), request, raw, None)
        field.writer(by_field, field.offset, raw)
        if by_write != by_field:
            problems.append(
                f"{where}: {status.name} ({raw:#x}): write() gives "
                f"{_describe_diff(bytes(by_field), bytes(by_write))}"
            )
    return problems


@functools.cache
def registry_for(plugin: ModuleType) -> Registry:
    """The registry of ``plugin`` alone (plus the core's built-in plugin), built once."""
    return Registry.from_plugins([plugin])


@functools.cache
def _core_registry() -> Registry:
    """The core's built-ins alone: what a plugin reuses rather than owns."""
    return Registry.from_plugins([])


class _NoMemory:
    """Guest memory with no RAM, enough to build a kernel model."""

    def read(self, gpa: int, size: int) -> bytes:
        raise IndexError(f"no guest RAM at {gpa:#x}")

    def write(self, gpa: int, data: bytes) -> None:
        raise IndexError(f"no guest RAM at {gpa:#x}")

    def contains(self, gpa: int, size: int) -> bool:
        return False


def _answer(result: CoCoStatus | Outcome) -> Callable[[Any, Any], CoCoStatus | Outcome]:
    """A handler that always answers ``result``."""

    def handler(request: Any, context: Any) -> CoCoStatus | Outcome:
        return result

    return handler


def _recorder(into: list[NeutralRequest]) -> Callable[[Any, Any], CoCoStatus]:
    """A handler that records each request and answers OK."""

    def handler(request: Any, context: Any) -> CoCoStatus:
        into.append(request)
        return CoCoStatus.OK

    return handler


def _raising_handler(request: NeutralRequest, context: Any) -> CoCoStatus:
    raise RuntimeError(f"conformance kit: handler raises on purpose for {request!r}")


class PluginConformance:
    """The tests every coco vendor plugin runs: subclass it in the plugin's test suite.

    ::

        class TestTdxConformance(PluginConformance):
            plugin = coco_tdx.plugin          # the plugin module
            entry_point = "tdx"               # its name in the coco_core group
            vendor = "tdx"
            capabilities = frozenset({"get_quote", "map_gpa"})
            goldens = Golden.load_dir(__file__, "golden")

    Checks for capabilities the plugin does not declare, and golden checks
    when it ships no goldens, are skipped with a reason, never passed
    silently. The class needs no fixture from
    :mod:`coco_core.testing.pytest_plugin`.

    .. versionadded:: 0.1
    """

    #: the plugin module (the entry point's target)
    plugin: ClassVar[ModuleType]
    #: its name in the ``coco_core`` entry-point group
    entry_point: ClassVar[str]
    #: the vendor it registers
    vendor: ClassVar[str]
    #: optional checks, names from :data:`CAPABILITIES`
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: golden images, usually ``Golden.load_dir(__file__, "golden")``
    goldens: ClassVar[tuple[Golden, ...]] = ()

    # -- helpers ---------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        """The registry of this plugin alone (and the core's built-ins)."""
        return registry_for(self.plugin)

    @property
    def plugin_name(self) -> str:
        """The name the registry gave the plugin."""
        for p in self.registry.plugins:
            if p.module == self.plugin.__name__:
                return p.name
        raise AssertionError(f"{self.plugin.__name__} is not among the registered plugins")

    def own_parts(self) -> list[AbiPart]:
        """The ABI parts this plugin registered."""
        reg = self.registry
        name = self.plugin_name
        return [
            part
            for abi in reg.abis.values()
            for part in abi.parts
            if reg.part_owner.get(id(part)) == name
        ]

    def own_spaces(self) -> list[ErrorSpace]:
        """The error spaces this plugin registered (not the core's it reuses)."""
        reg = self.registry
        name = self.plugin_name
        core = _core_registry().spaces
        return [
            reg.spaces[sid]
            for sid, owner in sorted(reg.space_owner.items())
            if owner == name and reg.spaces[sid] is not core.get(sid)
        ]

    def own_abis(self) -> list[str]:
        """The ABIs this plugin contributes to, in registry order."""
        names = {p.abi for p in self.own_parts()}
        return [a for a in self.registry.abis if a in names]

    def claims(self, abi: str) -> dict[int, set[int]]:
        """Exit reason → claimed sub-call numbers, of this plugin's decoders under ``abi``."""
        out: dict[int, set[int]] = {}
        for part in self.own_parts():
            if part.abi != abi:
                continue
            for dec in part.decoders:
                subs = out.setdefault(dec.reason, set())
                if dec.discriminator is not None:
                    subs.add(dec.discriminator)
        return out

    def dispatcher(self, abi: str) -> Dispatcher:
        """A fresh dispatcher for the plugin's vendor under ``abi``."""
        return Dispatcher(self.registry, self.vendor, abi)

    # -- installation and registration ----------------------------------------------

    def test_entry_point_is_installed(self) -> None:
        """The plugin's distribution exposes its module under its name in the coco_core group."""
        eps = importlib.metadata.entry_points(group=hookspecs.NAME).select(name=self.entry_point)
        assert eps, (
            f"no entry point {self.entry_point!r} in group {hookspecs.NAME!r}: "
            "is the plugin's distribution installed (pip install -e)?"
        )
        (ep,) = tuple(eps)
        assert ep.module == self.plugin.__name__, (
            f"entry point {ep.name!r} names {ep.value!r}, not {self.plugin.__name__!r}"
        )
        assert ep.load() is self.plugin

    def test_hookimpls_match_hookspecs(self) -> None:
        """Every hook implementation names a known hookspec with a subset of its parameters."""
        marker = f"{hookspecs.NAME}_impl"
        specs = {
            name: fn
            for name, fn in vars(hookspecs).items()
            if callable(fn) and hasattr(fn, f"{hookspecs.NAME}_spec")
        }
        impls: dict[str, Callable[..., Any]] = {}
        for name, obj in vars(self.plugin).items():
            if not callable(obj):
                continue
            if hasattr(obj, marker):
                impls[name] = obj
            elif name in specs:
                raise AssertionError(f"{name} looks like a hook but lacks the @hookimpl marker")
        assert impls, f"{self.plugin.__name__} implements no coco hook"
        unknown = sorted(set(impls) - set(specs))
        assert not unknown, f"hook implementations with no hookspec: {unknown}"
        for name, fn in impls.items():
            have = set(inspect.signature(fn).parameters)
            allowed = set(inspect.signature(specs[name]).parameters)
            assert have <= allowed, (
                f"{name} takes {sorted(have - allowed)}, which the hookspec does not pass"
            )
        # pluggy's own validation and check_pending(), as every registry build runs them
        Registry.from_plugins([self.plugin])

    def test_plugin_registers_a_vendor(self) -> None:
        """The plugin registers its vendor, owned by itself, with a title."""
        info = self.registry.vendors.get(self.vendor)
        assert info is not None, f"vendor {self.vendor!r} not registered"
        assert info.plugin == self.plugin_name
        assert info.title

    def test_plugin_registers_abis(self) -> None:
        """Every ABI part is for the plugin's vendor, has a source, and decodes known exits."""
        parts = self.own_parts()
        assert parts, "the plugin contributes to no ABI"
        for part in parts:
            assert part.vendor == self.vendor, f"{part.abi}: part for vendor {part.vendor!r}"
            assert part.source, f"{part.abi}: part without a source"
            for dec in part.decoders:
                assert dec.vendor in (self.vendor, "kvm"), (
                    f"{dec.name}: decoder for vendor {dec.vendor!r}"
                )
                assert dec.reason in part.exits.values() or dec.reason in {
                    n for a in self.registry.abis.values() for n in a.exits.values()
                }, f"{dec.name}: exit {dec.reason} is not a registered exit number"

    # -- layouts ---------------------------------------------------------------------

    def test_layouts_match_gcc(self) -> None:
        """Every union member and every kvm_run layout the plugin registers matches gcc."""
        layouts: list[tuple[str, Layout]] = []
        for part in self.own_parts():
            for member, lay in part.union_members.items():
                named = (
                    lay
                    if not lay.anonymous
                    else attrs.evolve(lay, name=f"{lay.kind} coco_kit_{member}")
                )
                layouts.append((member, named))
        for abi in self.own_abis():
            layouts.append(("kvm_run", self.registry.abi(abi).kvm_run_layout()))
        if not layouts:
            pytest.skip("the plugin registers no layouts")
        problems: list[str] = []
        try:
            for prefix, lay in layouts:
                problems.extend(f"{lay.name}: {m}" for m in compare_with_gcc(lay, prefix))
        except CompilerUnavailable as exc:
            pytest.skip(f"no C compiler to check layouts against: {exc}")
        assert not problems, "layouts disagree with gcc:\n" + "\n".join(problems)

    def test_kvm_run_union_stays_256_bytes(self) -> None:
        """Each ABI's kvm_run keeps the exit union at 32..288 and sizeof at 2352."""
        for abi in self.own_abis():
            lay = self.registry.abi(abi).kvm_run_layout()
            assert lay.size == KVM_RUN_SIZE, f"{abi}: sizeof(kvm_run) = {lay.size}"
            offs = lay.offsets("kvm_run")
            assert offs["kvm_run.kvm_valid_regs"] == (288, 8), abi
            for member in (m for p in self.own_parts() if p.abi == abi for m in p.union_members):
                inner = [
                    (o, s) for path, (o, s) in offs.items() if path.startswith(f"kvm_run.{member}")
                ]
                assert inner, f"{abi}: union member {member} missing from kvm_run"
                assert all(_UNION.start <= o and o + s <= _UNION.stop for o, s in inner), member

    # -- error spaces ----------------------------------------------------------------

    def test_error_spaces_are_total_injective_round_trip(self) -> None:
        """Every status encodes and round-trips, primary codes are distinct, named codes decode."""
        spaces = self.own_spaces()
        if not spaces:
            pytest.skip("the plugin registers no error space")
        for space in spaces:
            limit = 1 << space.width
            primaries = list(space.primary.values())
            assert len(set(primaries)) == len(primaries), f"{space.id}: primary codes collide"
            for status in CoCoStatus:
                raw = space.encode(status)
                assert 0 <= raw < limit, f"{space.id}: {status.name} -> {raw:#x} overflows"
                back = space.decode(raw)
                fallback = space.fallbacks.get(status)
                assert back is status or (fallback is not None and back is fallback), (
                    f"{space.id}: {status.name} -> {raw:#x} -> {back}"
                )
                assert space.name_of(raw) is not None, f"{space.id}: {raw:#x} has no name"
                if space.kernel_accepts is not None:
                    assert raw in space.kernel_accepts, (
                        f"{space.id}: {status.name} -> {raw:#x}, which the kernel rejects"
                    )
            for raw, name in space.names.items():
                assert isinstance(space.decode(raw), CoCoStatus), f"{space.id}: {name} undecoded"
            assert space.id.split(".", 1)[0] == self.vendor, (
                f"error-space id {space.id!r} is not 'vendor.document' for {self.vendor!r}"
            )

    def test_unknown_codes_are_preserved(self) -> None:
        """A raw value no table names decodes to UnknownCode keeping the value."""
        spaces = self.own_spaces()
        if not spaces:
            pytest.skip("the plugin registers no error space")

        @_FUZZ
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            space = data.draw(st.sampled_from(spaces), label="space")
            raw = data.draw(
                st.integers(0, (1 << space.width) - 1).filter(lambda r: r not in space.names),
                label="raw",
            )
            got = space.decode(raw)
            assert got == UnknownCode(space.id, raw)
            assert space.name_of(raw) is None
            with pytest.raises(CodeError):
                space.check_vendor_code(raw, CoCoStatus.OK)

        check()

    def test_status_fields_match_write(self) -> None:
        """A decoder's status field is its layout's member, and writes what its write() writes."""
        decs = [
            (self.registry.abi(part.abi), dec)
            for part in self.own_parts()
            for dec in part.decoders
            if dec.status_field is not None
        ]
        if not decs:
            pytest.skip("no decoder of the plugin declares a status field")

        @_FUZZ
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            abi, dec = data.draw(st.sampled_from(decs), label="decoder")
            image = bytearray(
                data.draw(st.binary(min_size=KVM_RUN_SIZE, max_size=KVM_RUN_SIZE), label="kvm_run")
            )
            image[8:12] = dec.reason.to_bytes(4, "little")
            problems = status_field_problems(abi, dec, bytes(image))
            assert not problems, "\n".join(problems)

        check()

    # -- goldens ---------------------------------------------------------------------

    def _goldens(self) -> tuple[Golden, ...]:
        if not self.goldens:
            pytest.skip("the plugin ships no goldens (set goldens = Golden.load_dir(...))")
        return self.goldens

    def test_goldens_decode(self) -> None:
        """Every golden kvm_run image decodes to its expected neutral request."""
        for g in self._goldens():
            ev = Dispatcher(self.registry, g.vendor, g.abi).decode(g.unpatched())
            assert ev.request == g.request, f"golden {g.name}: decoded {ev.request!r}"

    def test_goldens_complete(self) -> None:
        """Every golden completes to its expected bytes via dispatch() and via complete()."""
        for g in self._goldens():
            d = Dispatcher(self.registry, g.vendor, g.abi)
            result = g.handler_result
            if result is not None:
                d.on(type(g.request), _answer(result))
            buf = g.unpatched()
            d.dispatch(buf)
            assert bytes(buf) == g.completed, f"golden {g.name} via dispatch(): " + _describe_diff(
                g.completed, bytes(buf)
            )
            if result is None:
                continue
            buf = g.unpatched()
            d.decode(buf).complete(result)
            assert bytes(buf) == g.completed, f"golden {g.name} via complete(): " + _describe_diff(
                g.completed, bytes(buf)
            )

    # -- capabilities ----------------------------------------------------------------

    def test_capabilities_are_known(self) -> None:
        """Every declared capability is one the kit knows."""
        unknown = sorted(self.capabilities - set(CAPABILITIES))
        assert not unknown, f"unknown capabilities {unknown}; known: {sorted(CAPABILITIES)}"

    @pytest.mark.parametrize("capability", sorted(CAPABILITIES))
    def test_capability_is_decoded(self, capability: str) -> None:
        """A declared capability's exit reaches the VMM's handler as its neutral request."""
        if capability not in self.capabilities:
            pytest.skip(f"capability {capability!r} not declared by the plugin")
        wanted = CAPABILITIES[capability]
        seen = False
        for abi in self.own_abis():
            d = self.dispatcher(abi)
            discs = self.registry.abi(abi).discriminators
            for dec in d.claims():
                if dec.request_type is not wanted or dec.fallback:
                    continue
                got: list[NeutralRequest] = []
                d.on(wanted, _recorder(got))
                buf = kvm_run_image(dec.reason)
                if dec.discriminator is not None:
                    where = discs[dec.reason]
                    where.reader.pack_into(buf, where.offset, dec.discriminator)
                d.dispatch(buf)
                assert len(got) == 1, f"{abi} {dec.name}: handler called {len(got)} times"
                assert isinstance(got[0], wanted), f"{abi} {dec.name}: {got[0]!r}"
                seen = True
        assert seen, f"no decoder of {self.vendor!r} yields {wanted.__name__}"

    # -- robustness ------------------------------------------------------------------

    def _fuzz_targets(self) -> list[tuple[str, int, tuple[int, ...]]]:
        targets = [
            (abi, reason, tuple(sorted(subs)))
            for abi in self.own_abis()
            for reason, subs in sorted(self.claims(abi).items())
        ]
        if not targets:
            pytest.skip("the plugin claims no exit")
        return targets

    def _fuzz_dispatch(self, modes: Sequence[str]) -> None:
        targets = self._fuzz_targets()
        dispatchers = {abi: self.dispatcher(abi) for abi, _, _ in targets}
        types = {abi: {dec.request_type for dec in d.claims()} for abi, d in dispatchers.items()}

        @_FUZZ
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            abi, reason, subs = data.draw(st.sampled_from(targets), label="target")
            buf = bytearray(
                data.draw(st.binary(min_size=KVM_RUN_SIZE, max_size=KVM_RUN_SIZE), label="kvm_run")
            )
            buf[8:12] = reason.to_bytes(4, "little")
            where = self.registry.abi(abi).discriminators.get(reason)
            if subs and where is not None and data.draw(st.booleans(), label="force sub-call"):
                where.reader.pack_into(buf, where.offset, data.draw(st.sampled_from(subs)))
            before = bytes(buf)
            d = dispatchers[abi]
            mode = data.draw(st.sampled_from(modes), label="handler")
            for t in types[abi]:
                if mode == "status":
                    d.on(t, lambda _r, _c: data.draw(st.sampled_from(CoCoStatus), label="status"))
                else:
                    d.on(t, _raising_handler)
            d.decode(bytearray(before))  # a decoder must not raise (dispatch() would hide it)
            result = d.dispatch(buf)
            assert bytes(buf[: _UNION.start]) == before[: _UNION.start], "wrote before the union"
            assert bytes(buf[_UNION.stop :]) == before[_UNION.stop :], "wrote after the union"
            if mode == "raises" and not isinstance(result, Unsupported):
                assert result is CoCoStatus.ERROR

        check()

    def test_dispatch_never_raises(self) -> None:
        """Random images of claimed exits dispatch without raising or writing outside the union."""
        self._fuzz_dispatch(("status",))

    def test_dispatch_survives_raising_handler(self) -> None:
        """A raising handler completes random claimed exits with ERROR, writing only the union."""
        self._fuzz_dispatch(("raises",))

    def test_unknown_exit_reason_is_unsupported(self) -> None:
        """An exit reason no decoder claims comes back as Unsupported with the buffer untouched."""
        abis = self.own_abis()
        if not abis:
            pytest.skip("the plugin contributes to no ABI")
        dispatchers = {abi: self.dispatcher(abi) for abi in abis}
        claimed = {abi: {dec.reason for dec in d.claims()} for abi, d in dispatchers.items()}

        @_FUZZ
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            abi = data.draw(st.sampled_from(abis), label="abi")
            reason = data.draw(
                st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)).filter(
                    lambda r: r not in claimed[abi]
                ),
                label="reason",
            )
            buf = bytearray(
                data.draw(st.binary(min_size=KVM_RUN_SIZE, max_size=KVM_RUN_SIZE), label="kvm_run")
            )
            buf[8:12] = reason.to_bytes(4, "little")
            before = bytes(buf)
            result = dispatchers[abi].dispatch(buf)
            assert isinstance(result, Unsupported), result
            assert result.raw_reason == reason
            assert result.raw == before[_UNION]
            assert bytes(buf) == before

        check()

    # -- kernel model ----------------------------------------------------------------

    def test_kernel_model_lists_calls(self) -> None:
        """The kernel model names its calls ``vendor.call``, described, with a known generation."""
        parts = [m for m in self.registry.models if m.vendor == self.vendor]
        if not parts:
            pytest.skip("the plugin registers no kernel model (ModelPart)")
        names = [c.name for p in parts for c in p.calls]
        assert names, "the kernel model has no calls"
        assert len(set(names)) == len(names), f"duplicate call names: {names}"
        for part in parts:
            for call in part.calls:
                assert call.name.startswith(f"{self.vendor}."), call.name
                assert call.description, f"{call.name}: no description"
                assert call.since in GENERATIONS or call.since in self.registry.abis, (
                    f"{call.name}: since {call.since!r} is neither a kernel generation nor an ABI"
                )
        model = KernelModel(self.registry, self.vendor, _NoMemory())
        assert sorted(model.calls) == sorted(names)
