# SPDX-License-Identifier: Apache-2.0
"""The registry: what every plugin registered, merged and checked once.

Plugins register through a :class:`Registrar` during
:func:`~coco_core.hookspecs.coco_register_vendor`; the :class:`Registry` keeps
the merged tables the dispatcher, the kernel model and the CLI read.
Discovery is explicit::

    Registry.from_entry_points(allow={"snp", "tdx"})  # the embedder names what it trusts
    Registry.from_plugins([coco_tdx.plugin])           # no discovery
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING

import attrs

from coco_core.abi import Abi, AbiPart, ExitDecoder
from coco_core.errors import ConfigurationError, RegistrationError
from coco_core.errorspace import ErrorSpace

if TYPE_CHECKING:
    from coco_core._manager import LoadedPlugin, PluginFailure
    from coco_core.model.base import ModelPart

__all__ = ["DEFAULT_ABI", "CommandSpec", "Registrar", "Registry", "ScenarioSpec", "VendorInfo"]

log = logging.getLogger("coco_core.registry")

#: The ABI a dispatcher uses unless the embedder names another: the newest
#: released kernel.
DEFAULT_ABI = "linux-7.2"


@attrs.frozen
class VendorInfo:
    """A vendor a plugin registered."""

    name: str
    title: str
    plugin: str


@attrs.frozen
class ScenarioSpec:
    """A demo scenario a plugin ships, imported only when ``coco demo`` runs it.

    :param vendor: the vendor it exercises.
    :param name: a short name (``certificates``).
    :param target: ``module:function``; the function takes a
        :class:`coco_core.demo.env.DemoEnv` and runs the scenario.
    :param description: one line for people.
    """

    vendor: str
    name: str
    target: str
    description: str
    plugin: str


@attrs.frozen
class CommandSpec:
    """A ``coco VENDOR ...`` command group, imported only when it runs.

    :param name: the subcommand (``snp``).
    :param target: ``module:function``; the function takes an
        :class:`argparse.ArgumentParser` and adds subcommands to it.
    :param help: one line for ``coco --help``.
    """

    name: str
    target: str
    help: str
    plugin: str


class _Sink:
    """What registrars write into; becomes a :class:`Registry` when checked."""

    def __init__(self) -> None:
        self.vendors: dict[str, VendorInfo] = {}
        self.parts: list[tuple[str, AbiPart]] = []
        self.spaces: dict[str, tuple[str, ErrorSpace]] = {}
        self.models: list[tuple[str, ModelPart]] = []
        self.commands: dict[str, CommandSpec] = {}
        self.scenarios: list[ScenarioSpec] = []


class Registrar:
    """Passed to ``coco_register_vendor``; the only way a plugin registers.

    Every method checks its input at once and raises
    :class:`~coco_core.errors.RegistrationError` naming the plugins involved.
    """

    def __init__(self, plugin: str, sink: object) -> None:
        if not isinstance(sink, _Sink):
            raise TypeError("Registrar needs the registry's sink")
        self._plugin = plugin
        self._sink: _Sink | None = sink

    @property
    def plugin(self) -> str:
        """The name of the plugin registering."""
        return self._plugin

    def _live(self) -> _Sink:
        if self._sink is None:
            raise RegistrationError(
                f"plugin {self._plugin!r} used its registrar after coco_register_vendor returned"
            )
        return self._sink

    def close(self) -> None:
        """End registration; later calls raise."""
        self._sink = None

    def add_vendor(self, name: str, title: str) -> None:
        """Declare a vendor (``snp``, ``tdx``)."""
        sink = self._live()
        if name in sink.vendors:
            other = sink.vendors[name].plugin
            raise RegistrationError(
                f"vendor {name!r} registered by both plugin {other!r} and plugin {self._plugin!r}"
            )
        sink.vendors[name] = VendorInfo(name, title, self._plugin)

    def add_error_space(self, space: ErrorSpace) -> None:
        """Register an error space (its tables were checked when it was built)."""
        sink = self._live()
        prior = sink.spaces.get(space.id)
        if prior is not None and prior[1] is not space:
            raise RegistrationError(
                f"error space {space.id!r} registered by both plugin {prior[0]!r} "
                f"and plugin {self._plugin!r}"
            )
        if prior is None:  # a space re-registered by another plugin keeps its first owner
            sink.spaces[space.id] = (self._plugin, space)

    def add_abi(self, part: AbiPart) -> None:
        """Contribute a part to a named ABI; its spaces are registered too."""
        sink = self._live()
        for space in part.error_spaces:
            self.add_error_space(space)
        for dec in part.decoders:
            if dec.error_space is not None:
                self.add_error_space(dec.error_space)
        sink.parts.append((self._plugin, part))

    def add_model(self, model: ModelPart) -> None:
        """Register the kernel's side of some exits, for the kernel model."""
        self._live().models.append((self._plugin, model))

    def add_command(self, name: str, target: str, help: str) -> None:
        """Add a ``coco NAME`` command group, imported lazily from ``target``."""
        sink = self._live()
        if name in sink.commands:
            raise RegistrationError(
                f"command {name!r} registered by both plugin {sink.commands[name].plugin!r} "
                f"and plugin {self._plugin!r}"
            )
        sink.commands[name] = CommandSpec(name, target, help, self._plugin)

    def add_scenario(self, vendor: str, name: str, target: str, description: str) -> None:
        """Add a ``coco demo`` scenario, imported lazily from ``target``."""
        self._live().scenarios.append(ScenarioSpec(vendor, name, target, description, self._plugin))


class Registry:
    """Everything the plugins registered, merged and checked.

    Build one with :meth:`from_entry_points` or :meth:`from_plugins`.
    """

    def __init__(
        self,
        sink: _Sink,
        plugins: list[LoadedPlugin],
        failures: list[PluginFailure],
    ) -> None:
        self.plugins = tuple(plugins)
        self.failures = tuple(failures)
        self.vendors = dict(sink.vendors)
        self.spaces = {k: v for k, (_, v) in sink.spaces.items()}
        self.space_owner = {k: p for k, (p, _) in sink.spaces.items()}
        self.commands = dict(sink.commands)
        self.scenarios = tuple(sink.scenarios)
        self.models = tuple(m for _, m in sink.models)
        self.part_owner = {id(part): plugin for plugin, part in sink.parts}
        self.abis = self._merge(sink.parts)

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_entry_points(cls, allow: Iterable[str] | None = None) -> Registry:
        """Discover plugins in the ``coco_core`` entry-point group.

        :param allow: the entry-point names the embedder trusts; None loads all
            (the ``coco`` command does this). Plugins that fail to import are
            listed in :attr:`failures`.
        """
        from coco_core._manager import PluginManager

        pm = PluginManager()
        pm.add_modules([_builtin_module()])
        pm.load_entry_points(allow)
        return cls._build(pm)

    @classmethod
    def from_plugins(cls, modules: Iterable[ModuleType]) -> Registry:
        """Register the given plugin modules, without discovery."""
        from coco_core._manager import PluginManager

        pm = PluginManager()
        pm.add_modules([_builtin_module(), *modules])
        return cls._build(pm)

    @classmethod
    def _build(cls, pm: object) -> Registry:
        from coco_core._manager import PluginManager

        assert isinstance(pm, PluginManager)
        pm.check_pending()
        sink = _Sink()
        pm.register_vendor(Registrar, sink)
        for p in pm.loaded:
            log.info("plugin %s: %s-%s", p.name, p.dist, p.version)
        return cls(sink, pm.loaded, pm.failures)

    @staticmethod
    def _merge(parts: list[tuple[str, AbiPart]]) -> dict[str, Abi]:
        by_name: dict[str, list[tuple[str, AbiPart]]] = {}
        for plugin, part in parts:
            by_name.setdefault(part.abi, []).append((plugin, part))
        abis: dict[str, Abi] = {}
        for name, plist in by_name.items():
            exit_owner: dict[str, tuple[str, int]] = {}
            num_owner: dict[int, tuple[str, str]] = {}
            claims: dict[tuple[str, int, int | None], tuple[str, ExitDecoder]] = {}
            for plugin, part in plist:
                for ename, num in part.exits.items():
                    prior = exit_owner.get(ename)
                    if prior is not None and prior[1] != num:
                        raise RegistrationError(
                            f"ABI {name!r}: {ename} is {prior[1]} for plugin {prior[0]!r} "
                            f"but {num} for plugin {plugin!r}"
                        )
                    prior_num = num_owner.get(num)
                    if prior_num is not None and prior_num[1] != ename:
                        raise RegistrationError(
                            f"ABI {name!r}: exit {num} is {prior_num[1]} for plugin "
                            f"{prior_num[0]!r} but {ename} for plugin {plugin!r}"
                        )
                    num_owner[num] = (plugin, ename)
                    exit_owner[ename] = (plugin, num)
                for dec in part.decoders:
                    scopes = [dec.vendor] if dec.vendor != "kvm" else ["kvm"]
                    for scope in scopes:
                        key = (scope, dec.reason, dec.discriminator)
                        prior_dec = claims.get(key)
                        if prior_dec is not None:
                            raise RegistrationError(
                                f"ABI {name!r}: exit ({dec.reason}, {dec.discriminator}) claimed "
                                f"by plugin {prior_dec[0]!r} ({prior_dec[1].name}) and by plugin "
                                f"{plugin!r} ({dec.name})"
                            )
                        claims[key] = (plugin, dec)
            abis[name] = Abi(name, tuple(p for _, p in plist))
        return dict(sorted(abis.items(), key=lambda kv: (kv[1].order, kv[0])))

    # -- queries ---------------------------------------------------------------------

    def abi(self, name: str) -> Abi:
        """The ABI called ``name``.

        :raises ConfigurationError: no plugin registered it (lists the known ones).
        """
        try:
            return self.abis[name]
        except KeyError:
            known = ", ".join(self.abis) or "none"
            raise ConfigurationError(f"unknown ABI {name!r}; registered ABIs: {known}") from None

    def space(self, space_id: str) -> ErrorSpace:
        """The error space ``space_id``.

        :raises ConfigurationError: no plugin registered it.
        """
        try:
            return self.spaces[space_id]
        except KeyError:
            known = ", ".join(sorted(self.spaces)) or "none"
            raise ConfigurationError(f"unknown error space {space_id!r}; known: {known}") from None

    def decoders_for(self, abi: str, vendor: str) -> dict[tuple[int, int | None], ExitDecoder]:
        """The dispatch table of ``vendor`` under ``abi``: its decoders plus ``kvm``'s.

        A vendor's own decoder wins over a generic one for the same key.
        """
        table: dict[tuple[int, int | None], ExitDecoder] = {}
        decs = self.abi(abi).decoders
        for dec in decs:
            if dec.vendor == "kvm":
                table[dec.key] = dec
        for dec in decs:
            if dec.vendor == vendor:
                table[dec.key] = dec
        return table

    def abis_of(self, vendor: str) -> list[Abi]:
        """ABIs with a part from ``vendor``."""
        return [a for a in self.abis.values() if any(p.vendor == vendor for p in a.parts)]


def _builtin_module() -> ModuleType:
    import coco_core.generic.decoders

    return coco_core.generic.decoders
