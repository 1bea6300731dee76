# SPDX-License-Identifier: Apache-2.0
"""The plugin contract: the hooks a coco plugin implements.

A vendor plugin is a module registered under the ``coco_core`` entry-point
group::

    [project.entry-points.coco_core]
    tdx = "coco_tdx.plugin"

and implements one hook, :func:`coco_register_vendor`, with the
:data:`hookimpl` marker::

    from coco_core.hookspecs import hookimpl

    @hookimpl
    def coco_register_vendor(registrar):
        registrar.add_vendor("tdx", "Intel TDX")
        registrar.add_abi(...)

Hooks register; tables dispatch. Hooks run once, when a
:class:`~coco_core.registry.Registry` is built; the per-exit path makes no
pluggy call. New parameters may be added to a hook in later versions, never
renamed or removed; implementations may accept fewer parameters than the spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from coco_core.registry import Registrar

__all__ = ["NAME", "coco_register_vendor", "hookimpl", "hookspec"]

#: The pluggy project name and the entry-point group, one string.
NAME = "coco_core"

hookspec = pluggy.HookspecMarker(NAME)
hookimpl = pluggy.HookimplMarker(NAME)


@hookspec
def coco_register_vendor(registrar: Registrar) -> None:
    """Register a vendor's ABIs, exits, error spaces, kernel models and commands.

    Called once for every plugin when a registry is built, in no particular
    order; every implementation is called (not ``firstresult``). Everything a
    plugin registers is checked at once: an inconsistent error space, a
    duplicate ``(exit reason, discriminator)`` or a duplicate error-space id
    raises :class:`~coco_core.errors.RegistrationError` naming both plugins.

    :param registrar: the object to register through; see
        :class:`~coco_core.registry.Registrar`. It is only valid during the call.

    .. versionadded:: 0.1
    """
