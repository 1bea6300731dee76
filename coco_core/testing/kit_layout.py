# SPDX-License-Identifier: Apache-2.0
"""The conformance checks of what a plugin registers: entry point, hooks, ABIs, layouts, spaces.

None of them runs an exit: they hold the registration to the hookspecs, the layouts
to gcc and to a real header, the error spaces to their contract, and each status
field to its layout member and to its decoder's ``write``.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import strategies as st

from coco_core import hookspecs, kernels
from coco_core.abi import Abi, ExitDecoder
from coco_core.errors import CodeError, CompilerUnavailable, OracleError
from coco_core.errorspace import UnknownCode
from coco_core.generic.uapi import EXIT_REASON, EXIT_UNION_OFFSET, EXIT_UNION_SIZE, KVM_RUN_SIZE
from coco_core.layout import Layout
from coco_core.registry import Registry
from coco_core.review.gcc import compare_with_gcc, header_defines, header_offsets
from coco_core.status import CoCoStatus
from coco_core.testing.fuzz import run_budgeted
from coco_core.testing.golden import describe_diff
from coco_core.testing.kit_base import HEADER_ENV, KitBase

__all__ = ["LayoutChecks", "status_field_problems"]

_UNION = slice(EXIT_UNION_OFFSET, EXIT_UNION_OFFSET + EXIT_UNION_SIZE)


def status_field_problems(abi: Abi, dec: ExitDecoder, kvm_run: bytes) -> list[str]:
    """What is wrong with ``dec.status_field`` under ``abi``, for one ``kvm_run`` image.

    The field must name a ``kvm_run`` member of the ABI's (gcc-checked) layout
    at the same offset and size, and for every status the decoder's space
    encodes, packing the value into the field must give exactly the bytes
    ``dec.write(run, request, raw, None)`` gives. Empty when all holds.

    .. versionadded:: 0.2
    """
    field = dec.status_field
    if field is None:
        return []
    where = f"{abi.name} {dec.name}: status field {field.field}"
    if dec.write is None or dec.error_space is None:
        return [f"{where}: the decoder has no write() or no error space to encode with"]
    try:
        off, size, _ = abi.kvm_run_layout().locate(field.field, "kvm_run")
    except KeyError as exc:
        return [f"{where}: not a kvm_run member of {abi.name} ({exc.args[0]})"]
    if (off, size) != (field.offset, field.size):
        return [
            f"{where}: declared at {field.offset} size {field.size}, layout says ({off}, {size})"
        ]
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


class LayoutChecks(KitBase):
    """The checks of a plugin's registration, layouts and error spaces.

    .. versionadded:: 0.2
    """

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

    def _headers(self) -> dict[str, Path]:
        named = {abi: Path(p) for abi, p in self.headers.items()}
        env = os.environ.get(HEADER_ENV)
        if not named and env and kernels.DEFAULT_ABI in self.own_abis():
            named[kernels.DEFAULT_ABI] = Path(env)
        if not named:
            pytest.skip(
                "no real header to check the layouts against: name one on the kit class "
                f"(headers = {{ABI: 'DIR with linux/kvm.h'}}) or set {HEADER_ENV} to the "
                f"{kernels.DEFAULT_ABI} uapi headers (apt-get download linux-libc-dev; "
                "dpkg -x linux-libc-dev_*.deb DIR)"
            )
        return named

    def test_layouts_match_header(self) -> None:
        """The plugin's union members and exit numbers are where the real header puts them.

        gcc agrees with any self-consistent layout; only the header the kernel
        (or the patch) ships catches two members swapped or a wrong exit number.
        """
        problems: list[str] = []
        for abi_name, path in self._headers().items():
            abi = self.registry.abi(abi_name)
            frame = abi.frame
            assert frame is not None
            parts = [p for p in self.own_parts() if p.abi == abi_name]
            members = {m for p in parts for m in p.union_members if m not in frame.generic_members}
            offs = {
                path_: v
                for path_, v in abi.kvm_run_layout().offsets("kvm_run").items()
                if path_.split(".")[1] in members
            }
            try:
                got = header_offsets(path, list(offs))
                exits = {n: v for p in parts for n, v in p.exits.items()}
                defs = header_defines(path, list(exits))
            except CompilerUnavailable as exc:
                pytest.skip(f"no C compiler to read the header with: {exc}")
            except OracleError as exc:
                raise AssertionError(f"header for {abi_name} ({path}): {exc}") from None
            for p, want in sorted(offs.items()):
                have = got.get(p)
                if have != want:
                    where = (
                        "not in the header" if have is None else f"header: {have[0]} size {have[1]}"
                    )
                    problems.append(f"{abi_name} {p}: coco {want[0]} size {want[1]}, {where}")
            for n, v in sorted(exits.items()):
                if defs.get(n) != v:
                    problems.append(f"{abi_name} {n}: coco {v}, header {defs.get(n)}")
        assert not problems, "layouts disagree with the real header:\n" + "\n".join(problems)

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

        run_budgeted(check, self.fuzz_seconds)

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

        def check(data: st.DataObject) -> None:
            abi, dec = data.draw(st.sampled_from(decs), label="decoder")
            image = bytearray(
                data.draw(st.binary(min_size=KVM_RUN_SIZE, max_size=KVM_RUN_SIZE), label="kvm_run")
            )
            image[EXIT_REASON : EXIT_REASON + 4] = dec.reason.to_bytes(4, "little")
            problems = status_field_problems(abi, dec, bytes(image))
            assert not problems, "\n".join(problems)

        run_budgeted(check, self.fuzz_seconds)
