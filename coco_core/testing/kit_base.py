# SPDX-License-Identifier: Apache-2.0
"""The conformance kit's shared part: the settings a plugin's kit class sets, and helpers.

:class:`KitBase` holds what :class:`~coco_core.testing.kit.PluginConformance` is told
(the plugin, its vendor, capabilities, goldens, headers, what it leaves unmodelled,
the fuzzing budget) and what its checks share: the registry of the plugin alone,
its own ABI parts and decoders, and the exits the kernel model writes for its examples.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, ClassVar

from coco_core.abi import Abi, AbiPart, ExitDecoder
from coco_core.dispatch import Dispatcher
from coco_core.errorspace import ErrorSpace
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
)
from coco_core.status import CoCoStatus
from coco_core.testing.golden import Golden
from coco_core.testing.oracle import ExitSample, exit_images, model_problems

__all__ = ["CAPABILITIES", "HEADER_ENV", "KitBase", "registry_for"]

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

#: A directory with ``linux/kvm.h`` (or the file) of the default ABI's kernel, for
#: :meth:`PluginConformance.test_layouts_match_header` when the kit class names none.
HEADER_ENV = "COCO_KVM_HEADER_DIR"


@functools.cache
def registry_for(plugin: ModuleType) -> Registry:
    """The registry of ``plugin`` alone (plus the core's built-in plugin), built once.

    .. versionadded:: 0.2
    """
    return Registry.from_plugins([plugin])


@functools.cache
def _core_registry() -> Registry:
    """The core's built-ins alone: what a plugin reuses rather than owns."""
    return Registry.from_plugins([])


class KitBase:
    """The settings and helpers every conformance check uses (see :class:`PluginConformance`).

    .. versionadded:: 0.2
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
    #: ABI name → a real header (a directory with ``linux/kvm.h``, or the file) that
    #: declares the plugin's union members and exit numbers (.. versionadded:: 0.2)
    headers: ClassVar[Mapping[str, str | os.PathLike[str]]] = {}
    #: decoder name → why the kernel model never raises its exits (.. versionadded:: 0.2)
    unmodelled: ClassVar[Mapping[str, str]] = {}
    #: seconds of random images per fuzzing check, after the boundary values; at
    #: least one batch always runs (.. versionadded:: 0.2)
    fuzz_seconds: ClassVar[float] = 0.5

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

    def own_decoders(self) -> list[tuple[Abi, ExitDecoder]]:
        """Each decoder of the plugin once, with the first ABI it is registered in."""
        seen: set[int] = set()
        out = []
        for part in self.own_parts():
            for dec in part.decoders:
                if id(dec) not in seen:
                    seen.add(id(dec))
                    out.append((self.registry.abi(part.abi), dec))
        return out

    def samples(self) -> list[ExitSample]:
        """The exits the kernel model writes for the plugin's examples, under its ABIs."""
        return _samples(self.registry, self.vendor, tuple(self.own_abis()))


@functools.cache
def _samples(registry: Registry, vendor: str, abis: tuple[str, ...]) -> list[ExitSample]:
    return exit_images(registry, vendor, abis)


@functools.cache
def _model_run(
    registry: Registry, vendor: str, abis: tuple[str, ...]
) -> tuple[list[str], set[tuple[str, str]]]:
    return model_problems(registry, vendor, abis)


def _recorder(into: list[NeutralRequest]) -> Callable[[Any, Any], CoCoStatus]:
    """A handler that records each request and answers OK."""

    def handler(request: Any, context: Any) -> CoCoStatus:
        into.append(request)
        return CoCoStatus.OK

    return handler
