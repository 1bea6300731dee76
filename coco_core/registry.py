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
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import attrs

from coco_core._manager import LoadedPlugin, PluginFailure, PluginManager
from coco_core.abi import Abi, AbiPart, ExitDecoder, RunFrame, SubCall
from coco_core.errors import ConfigurationError, RegistrationError
from coco_core.errorspace import ErrorSpace
from coco_core.kernels import DEFAULT_ABI
from coco_core.layout import Layout

if TYPE_CHECKING:
    from coco_core.model.base import ModelPart

__all__ = [
    "DEFAULT_ABI",
    "CommandSpec",
    "PluginSummary",
    "Registrar",
    "Registry",
    "ScenarioSpec",
    "VendorInfo",
]

log = logging.getLogger("coco_core.registry")


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


@attrs.frozen
class PluginSummary:
    """What one plugin registered, for ``coco plugins list``.

    ``exit_numbers`` lists the plugin's own exit numbers; for the core plugin,
    which declares every ``KVM_EXIT_*`` of each release, only the generic exits
    it handles or shares (``KVM_EXIT_IO`` ... ``KVM_EXIT_MEMORY_FAULT``).
    """

    name: str
    module: str
    distribution: str | None
    version: str | None
    vendors: list[str]
    abis: list[str]
    exits: list[str]
    exit_numbers: list[str]
    error_spaces: list[str]


#: The generic exits the core plugin lists as its own in :class:`PluginSummary`.
_GENERIC_EXITS = frozenset(
    {
        "KVM_EXIT_IO",
        "KVM_EXIT_HYPERCALL",
        "KVM_EXIT_SYSTEM_EVENT",
        "KVM_EXIT_X86_RDMSR",
        "KVM_EXIT_X86_WRMSR",
        "KVM_EXIT_MEMORY_FAULT",
    }
)


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

    def __init__(self, plugin: str, sink: _Sink) -> None:
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
        :raises ConfigurationError: ``allow`` names an entry point that is not
            installed (the message lists the installed ones).
        """
        pm = PluginManager()
        pm.add_builtins()
        pm.load_entry_points(allow)
        return cls._build(pm)

    @classmethod
    def from_plugins(cls, modules: Iterable[ModuleType]) -> Registry:
        """Register the given plugin modules, without discovery."""
        pm = PluginManager()
        pm.add_builtins()
        pm.add_modules(modules)
        return cls._build(pm)

    @classmethod
    def _build(cls, pm: PluginManager) -> Registry:
        pm.check_pending()
        sink = _Sink()
        pm.register_vendor(lambda plugin: Registrar(plugin, sink))
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
            claims: dict[tuple[str, int, SubCall | None], tuple[str, ExitDecoder]] = {}
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
            abi = Abi(name, tuple(p for _, p in plist))
            _check_frame(abi, plist)
            _check_members(abi, plist)
            _check_paths(abi, plist)
            abis[name] = abi
        _check_numbering(abis, by_name)
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

    def decoders_for(self, abi: str, vendor: str) -> dict[tuple[int, SubCall | None], ExitDecoder]:
        """The dispatch table of ``vendor`` under ``abi``: its decoders plus ``kvm``'s.

        A vendor's own decoder wins over a generic one for the same key.
        """
        table: dict[tuple[int, SubCall | None], ExitDecoder] = {}
        decs = self.abi(abi).decoders
        for dec in decs:
            if dec.vendor == "kvm":
                table[dec.key] = dec
        for dec in decs:
            if dec.vendor == vendor:
                table[dec.key] = dec
        return table

    def plugin_summaries(self) -> list[PluginSummary]:
        """What each loaded plugin registered, in load order."""
        out: list[PluginSummary] = []
        for p in self.plugins:
            parts = [
                (a.name, part)
                for a in self.abis.values()
                for part in a.parts
                if self.part_owner.get(id(part)) == p.name
            ]
            numbers = {
                f"{n}={num}"
                for _, part in parts
                for n, num in part.exits.items()
                if part.vendor != "kvm" or n in _GENERIC_EXITS
            }
            out.append(
                PluginSummary(
                    name=p.name,
                    module=p.module,
                    distribution=p.dist,
                    version=p.version,
                    vendors=sorted(v.name for v in self.vendors.values() if v.plugin == p.name),
                    abis=sorted({a for a, _ in parts}),
                    exits=sorted({d.name for _, part in parts for d in part.decoders}),
                    exit_numbers=sorted(numbers),
                    error_spaces=sorted(k for k, o in self.space_owner.items() if o == p.name),
                )
            )
        return out

    def abis_of(self, vendor: str) -> list[Abi]:
        """ABIs with a part from ``vendor``."""
        return [a for a in self.abis.values() if any(p.vendor == vendor for p in a.parts)]


def _check_frame(abi: Abi, parts: list[tuple[str, AbiPart]]) -> None:
    """One run structure per ABI, and every decoder writes inside its exit union."""
    frames = {(plugin, p.frame) for plugin, p in parts if p.frame is not None}
    if len({f for _, f in frames}) > 1:
        who = ", ".join(sorted(f"{plugin!r} ({f.name})" for plugin, f in frames))
        raise RegistrationError(f"ABI {abi.name!r}: parts declare different run structures: {who}")
    frame = abi.frame
    if frame is None:
        who = ", ".join(sorted({plugin for plugin, _ in parts}))
        raise RegistrationError(
            f"ABI {abi.name!r} (plugin {who}): no part declares its run structure; set "
            "frame=KVM_RUN_FRAME (coco_core.plugin) in one of its AbiParts"
        )
    end = frame.union_offset + frame.union_size
    for plugin, part in parts:
        for dec in part.decoders:
            if dec.write is not None and dec.error_space is None:
                raise RegistrationError(
                    f"ABI {abi.name!r}: {dec.name} of plugin {plugin!r} has a write() but no "
                    "error space to encode statuses with"
                )
            field = dec.status_field
            if field is not None and not frame.union_offset <= field.offset <= end - field.size:
                raise RegistrationError(
                    f"ABI {abi.name!r}: {dec.name} of plugin {plugin!r}: status field "
                    f"{field.field} at {field.offset}..{field.offset + field.size} is outside "
                    f"the exit union ({frame.union_offset}..{end})"
                )


def _owners(parts: list[tuple[str, AbiPart]]) -> str:
    return ", ".join(sorted({f"{plugin!r}" for plugin, _ in parts}))


def _check_members(abi: Abi, parts: list[tuple[str, AbiPart]]) -> None:
    """A union member named like one of the frame's own is that member, unchanged."""
    frame = abi.frame
    assert frame is not None  # _check_frame ran first
    generic = _generic_members(frame)
    for plugin, part in parts:
        if part.frame is not None and part.vendor == "kvm":
            continue  # the frame's own part declares them
        for member, lay in part.union_members.items():
            if member in frame.generic_members and generic.get(member) != lay:
                raise RegistrationError(
                    f"ABI {abi.name!r}: plugin {plugin!r} declares union member {member!r}, "
                    f"which is {frame.name}'s own ({member} is a generic exit's member); "
                    "rename it, or reuse the generic layout (generic_union_members())"
                )


def _generic_members(frame: RunFrame) -> dict[str, Layout]:
    """The frame's own union members, by name, as its ``build`` lays them out."""
    for m in frame.build({}).members:
        if m.name is None and m.offset == frame.union_offset and isinstance(m.type, Layout):
            return {
                x.name: x.type
                for x in m.type.members
                if x.name is not None and isinstance(x.type, Layout)
            }
    return {}


def _check_paths(abi: Abi, parts: list[tuple[str, AbiPart]]) -> None:
    """Every status field, discriminator and write set names a member of the ABI's layout."""
    frame = abi.frame
    assert frame is not None
    lay = abi.kvm_run_layout()
    end = frame.union_offset + frame.union_size
    root = frame.name.removeprefix("struct ")

    def where(path: str, what: str, plugin: str) -> tuple[int, int, bool]:
        try:
            off, size, one = lay.locate(path, root)
        except KeyError as exc:
            raise RegistrationError(
                f"ABI {abi.name!r}, plugin {plugin!r}: {what} {path}: not a member of "
                f"{frame.name} ({exc.args[0]})"
            ) from None
        if not frame.union_offset <= off <= end - size:
            raise RegistrationError(
                f"ABI {abi.name!r}, plugin {plugin!r}: {what} {path} at {off}..{off + size} "
                f"is outside the exit union ({frame.union_offset}..{end})"
            )
        return off, size, one is not None

    discs = abi.discriminators
    for plugin, part in parts:
        for disc in part.discriminators:
            for path, (off, size) in zip(disc.fields, disc.positions, strict=True):
                got = where(path, f"discriminator of exit {disc.reason}", plugin)
                if got != (off, size, True):
                    raise RegistrationError(
                        f"ABI {abi.name!r}, plugin {plugin!r}: discriminator of exit "
                        f"{disc.reason} reads {path} at {off} size {size} (format {disc.fmt!r}), "
                        f"but the layout puts that scalar at {got[0]} size {got[1]}"
                    )
        for dec in part.decoders:
            field = dec.status_field
            if field is not None:
                got = where(field.field, f"{dec.name}: status field", plugin)
                if got != (field.offset, field.size, True):
                    raise RegistrationError(
                        f"ABI {abi.name!r}, plugin {plugin!r}: {dec.name}: status field "
                        f"{field.field} declared at {field.offset} size {field.size}, but the "
                        f"layout puts that scalar at {got[0]} size {got[1]}"
                    )
            for path in dec.writes or ():
                where(path, f"{dec.name}: written field", plugin)
            if dec.discriminator is None or dec.fallback:
                continue
            keyed = discs.get(dec.reason)
            if keyed is None:
                raise RegistrationError(
                    f"ABI {abi.name!r}, plugin {plugin!r}: {dec.name} has sub-call "
                    f"{dec.discriminator!r} but exit {dec.reason} has no registered Discriminator"
                )
            try:
                keyed.key(dec.discriminator)
            except ValueError as exc:
                raise RegistrationError(
                    f"ABI {abi.name!r}, plugin {plugin!r}: {dec.name}: {exc}"
                ) from None


def _check_numbering(abis: dict[str, Abi], parts: dict[str, list[tuple[str, AbiPart]]]) -> None:
    """An exit number (or name) means one thing in every ABI, unless one of two renumbers."""
    by_number: dict[int, dict[str, list[str]]] = {}
    by_name: dict[str, dict[int, list[str]]] = {}
    for name, abi in abis.items():
        if abi.released and abi.renumbers:
            raise RegistrationError(
                f"ABI {name!r} (plugin {_owners(parts[name])}) is a released kernel but says it "
                "renumbers exits: released numbers are allocated once"
            )
        for ename, num in abi.exits.items():
            by_number.setdefault(num, {}).setdefault(ename, []).append(name)
            by_name.setdefault(ename, {}).setdefault(num, []).append(name)

    def clash(a: str, b: str, what: str) -> None:
        either = abis[a].renumbers or abis[b].renumbers
        if either and not (abis[a].released and abis[b].released):
            return
        raise RegistrationError(
            f"{what}; reusing a number with another meaning is an error unless the ABI says it "
            f"renumbers (AbiPart.renumbers='why'): plugin {_owners(parts[a])} for {a!r}, "
            f"plugin {_owners(parts[b])} for {b!r}"
        )

    for num, names in sorted(by_number.items()):
        for ea, a, eb, b in _disagreements(names):
            clash(a, b, f"exit {num} is {ea} in ABI {a!r} but {eb} in ABI {b!r}")
    for ename, nums in sorted(by_name.items()):
        for na, a, nb, b in _disagreements(nums):
            clash(a, b, f"{ename} is {na} in ABI {a!r} but {nb} in ABI {b!r}")


def _disagreements(
    meanings: dict[Any, list[str]],
) -> Iterator[tuple[Any, str, Any, str]]:
    """``(meaning, ABI, other meaning, other ABI)`` for every two ABIs that disagree."""
    items = sorted(meanings.items())
    for i, (ma, in_a) in enumerate(items):
        for mb, in_b in items[i + 1 :]:
            for a in in_a:
                for b in in_b:
                    yield ma, a, mb, b
