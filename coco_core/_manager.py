# SPDX-License-Identifier: Apache-2.0
"""The typed façade over pluggy: loading plugins, the built-ins, calling the hook.

The only module that touches pluggy's manager. It imports no other coco
module at run time but :mod:`coco_core.hookspecs` and the errors: the registry
hands it a factory for registrars, so loading goes one way (registry →
manager → plugins). The built-in plugins are named by module path and
imported like any plugin.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Protocol

import attrs
import pluggy

from coco_core import hookspecs
from coco_core.errors import ConfigurationError, RegistrationError

__all__ = ["BUILTINS", "LoadedPlugin", "PluginFailure", "PluginManager"]

log = logging.getLogger("coco_core.plugins")

#: The core's own plugins, registered before any other: name → module.
BUILTINS = {"core": "coco_core.generic.plugin"}


@attrs.frozen
class LoadedPlugin:
    """A plugin that was registered: its name, module and distribution version."""

    name: str
    module: str
    dist: str | None
    version: str | None


@attrs.frozen
class PluginFailure:
    """A plugin that could not be loaded or registered, and why."""

    name: str
    target: str
    error: str


class _Registrar(Protocol):
    """What the hook is called with (the registry's ``Registrar``)."""

    def close(self) -> None:
        """End registration."""


class PluginManager:
    """Owns one pluggy manager; one typed method per hook (as tox does)."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.NAME)
        self._pm.add_hookspecs(hookspecs)
        self.loaded: list[LoadedPlugin] = []
        self.failures: list[PluginFailure] = []

    def add_builtins(self) -> None:
        """Register the core's own plugins (:data:`BUILTINS`)."""
        for name, target in BUILTINS.items():
            self._register(name, importlib.import_module(target), None, None)

    def load_entry_points(self, allow: Iterable[str] | None) -> None:
        """Import the entry points of the ``coco_core`` group whose names ``allow`` names.

        A plugin that fails to import is recorded in :attr:`failures` and logged
        by name; the others still load.

        :raises ConfigurationError: ``allow`` names an entry point that is not installed.
        """
        allowed = None if allow is None else set(allow)
        points = list(importlib.metadata.entry_points(group=hookspecs.NAME))
        if allowed is not None:
            missing = sorted(allowed - {ep.name for ep in points})
            if missing:
                installed = ", ".join(sorted(ep.name for ep in points)) or "none"
                raise ConfigurationError(
                    f"allow={sorted(allowed)}: no installed coco plugin is called "
                    f"{', '.join(map(repr, missing))}; installed: {installed}"
                )
        for ep in points:
            if allowed is not None and ep.name not in allowed:
                log.info("plugin %s skipped: not in the allow-list", ep.name)
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not stop the others
                self.failures.append(
                    PluginFailure(ep.name, ep.value, f"{type(exc).__name__}: {exc}")
                )
                log.error("plugin %s (%s) failed to import: %s", ep.name, ep.value, exc)
                continue
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            self._register(ep.name, module, dist, version)

    def add_modules(self, modules: Iterable[ModuleType]) -> None:
        """Register plugin modules directly, without discovery."""
        for module in modules:
            name = module.__name__.split(".")[0].removeprefix("coco_")
            self._register(name, module, None, None)

    def _register(
        self, name: str, module: ModuleType, dist: str | None, version: str | None
    ) -> None:
        if self._pm.is_registered(module):
            return
        self._pm.register(module, name=name)
        self.loaded.append(LoadedPlugin(name, module.__name__, dist, version))
        log.info("plugin %s loaded from %s (%s-%s)", name, module.__name__, dist, version)

    def check_pending(self) -> None:
        """Fail if a plugin implements a hook that no spec defines."""
        self._pm.check_pending()

    def register_vendor(self, make_registrar: Callable[[str], _Registrar]) -> None:
        """Call each plugin's ``coco_register_vendor`` with a registrar of its own.

        Implementations are found through pluggy (``get_hookimpls()``) and
        called one at a time, in registration order (built-ins first), so a
        failure is attributed to its plugin.

        :raises RegistrationError: a plugin registered something inconsistent
            or failed in the hook (the message names the plugin).
        """
        for impl in self._pm.hook.coco_register_vendor.get_hookimpls():
            plugin = impl.plugin_name
            module = getattr(impl.plugin, "__name__", plugin)
            registrar = make_registrar(plugin)
            try:
                impl.function(**dict.fromkeys(impl.argnames, registrar))
            except RegistrationError as exc:
                raise RegistrationError(f"plugin {plugin!r} ({module}): {exc}") from exc
            except Exception as exc:
                raise RegistrationError(
                    f"plugin {plugin!r} ({module}) failed in coco_register_vendor: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            finally:
                registrar.close()
