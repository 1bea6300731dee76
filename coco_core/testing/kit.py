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

The golden format is :mod:`coco_core.testing.golden`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coco_core import hookspecs, kernels
from coco_core.abi import Abi, AbiPart, ExitDecoder
from coco_core.dispatch import Dispatcher
from coco_core.errors import CodeError, CompilerUnavailable
from coco_core.errorspace import ErrorSpace, UnknownCode
from coco_core.generic.uapi import EXIT_REASON, EXIT_UNION_OFFSET, EXIT_UNION_SIZE, KVM_RUN_SIZE
from coco_core.layout import Layout
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
from coco_core.review.gcc import compare_with_gcc
from coco_core.review.members import kvm_run_offsets
from coco_core.status import CoCoStatus, Outcome
from coco_core.testing.golden import Golden, describe_diff, kvm_run_image

__all__ = ["CAPABILITIES", "PluginConformance", "registry_for", "status_field_problems"]

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
                f"{describe_diff(bytes(by_field), bytes(by_write))}"
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

    def claims(self, abi: str) -> dict[int, set[Any]]:
        """Exit reason → claimed sub-call numbers, of this plugin's decoders under ``abi``."""
        out: dict[int, set[Any]] = {}
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
            assert offs["kvm_run.kvm_valid_regs"] == (EXIT_UNION_OFFSET + EXIT_UNION_SIZE, 8), abi
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
            image[EXIT_REASON : EXIT_REASON + 4] = dec.reason.to_bytes(4, "little")
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
            assert bytes(buf) == g.completed, f"golden {g.name} via dispatch(): " + describe_diff(
                g.completed, bytes(buf)
            )
            if result is None:
                continue
            buf = g.unpatched()
            d.decode(buf).complete(result)
            assert bytes(buf) == g.completed, f"golden {g.name} via complete(): " + describe_diff(
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
            buf[EXIT_REASON : EXIT_REASON + 4] = reason.to_bytes(4, "little")
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
            buf[EXIT_REASON : EXIT_REASON + 4] = reason.to_bytes(4, "little")
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
                assert (
                    call.since in {k.name for k in kernels.released()}
                    or call.since in self.registry.abis
                ), f"{call.name}: since {call.since!r} is neither a kernel generation nor an ABI"
        model = KernelModel(self.registry, self.vendor, _NoMemory())
        assert sorted(model.calls) == sorted(names)
