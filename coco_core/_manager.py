# SPDX-License-Identifier: Apache-2.0
"""The typed façade over pluggy: the only module that calls ``pm.hook``."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Iterable
from types import ModuleType

import attrs
import pluggy

from coco_core import hookspecs
from coco_core.errors import RegistrationError
from coco_core.registry import Registrar

__all__ = ["LoadedPlugin", "PluginFailure", "PluginManager"]

log = logging.getLogger("coco_core.plugins")


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


class PluginManager:
    """Owns one pluggy manager; one typed method per hook (as tox does)."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.NAME)
        self._pm.add_hookspecs(hookspecs)
        self.loaded: list[LoadedPlugin] = []
        self.failures: list[PluginFailure] = []

    def load_entry_points(self, allow: Iterable[str] | None) -> None:
        """Import the entry points of the ``coco_core`` group whose names ``allow`` names.

        A plugin that fails to import is recorded in :attr:`failures` and logged
        by name; the others still load.
        """
        allowed = None if allow is None else set(allow)
        for ep in importlib.metadata.entry_points(group=hookspecs.NAME):
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

    def register_vendor(self, make_registrar: type[Registrar], sink: object) -> None:
        """Call ``coco_register_vendor`` on each plugin with its own registrar."""
        for plugin in self.loaded:
            module = self._pm.get_plugin(plugin.name)
            impl = getattr(module, "coco_register_vendor", None)
            if impl is None:
                continue
            registrar = make_registrar(plugin.name, sink)
            try:
                # pm.hook is untyped; calling the one implementation keeps the
                # failure attributable to its plugin.
                caller = self._pm.subset_hook_caller(
                    "coco_register_vendor",
                    remove_plugins=[p for p in self._pm.get_plugins() if p is not module],
                )
                caller(registrar=registrar)
            except RegistrationError as exc:
                raise RegistrationError(f"plugin {plugin.name!r} ({plugin.module}): {exc}") from exc
            except Exception as exc:
                raise RegistrationError(
                    f"plugin {plugin.name!r} ({plugin.module}) failed in coco_register_vendor: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            finally:
                registrar.close()

    @staticmethod
    def import_module(target: str) -> ModuleType:
        """Import ``target`` (a dotted module path)."""
        return importlib.import_module(target)
