# SPDX-License-Identifier: Apache-2.0
"""The conformance kit: the tests every coco vendor plugin runs.

A plugin's test suite subclasses :class:`PluginConformance` (the fsspec shape:
the kit owns the tests, the plugin names itself). The checks live in
:mod:`~coco_core.testing.kit_layout` (what the plugin registers) and
:mod:`~coco_core.testing.kit_exits` (what its exits do); what each proves is in
``docs/how-to/run-the-conformance-kit.md``. The kit tests itself:
:mod:`coco_core.testing.mutations` seeds every bug class it claims to catch into
copies of the example plugin and asserts the kit fails each with a message naming it.

The golden format is :mod:`coco_core.testing.golden`.
"""

from __future__ import annotations

from coco_core.testing.kit_base import CAPABILITIES, HEADER_ENV, registry_for
from coco_core.testing.kit_exits import ExitChecks
from coco_core.testing.kit_layout import LayoutChecks, status_field_problems

__all__ = [
    "CAPABILITIES",
    "HEADER_ENV",
    "PluginConformance",
    "registry_for",
    "status_field_problems",
]


class PluginConformance(LayoutChecks, ExitChecks):
    """The tests every coco vendor plugin runs: subclass it in the plugin's test suite.

    ::

        class TestTdxConformance(PluginConformance):
            plugin = coco_tdx.plugin          # the plugin module
            entry_point = "tdx"               # its name in the coco_core group
            vendor = "tdx"
            capabilities = frozenset({"get_quote", "map_gpa"})
            goldens = Golden.load_dir(__file__, "golden")
            headers = {"linux-7.2": "/path/to/usr/include"}      # optional
            unmodelled = {"KVM_EXIT_TDX/unknown": "why the model never raises it"}

    The oracle is the plugin's own kernel model: every
    :class:`~coco_core.model.base.CallExample` of its model parts is run under
    every ABI the call exists in, completed with every status and a spread of
    :class:`~coco_core.status.Outcome` values, and any value the model's
    ``resume`` refuses fails. Every decoder must be reached by an example, or
    be named in :attr:`unmodelled` with the reason. Every completion is diffed
    against the decoder's write set (fields, not goldens). Every scalar of a
    decoder's union member is set to each boundary value; random images follow
    for :attr:`fuzz_seconds`. Checks for capabilities the plugin does not
    declare, golden checks without goldens and the header check without a
    header are skipped with a reason, never passed silently. The class needs
    no fixture from :mod:`coco_core.testing.pytest_plugin`.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 the model oracle, write sets, boundary fuzzing,
       headers, :attr:`unmodelled`, :attr:`fuzz_seconds`.
    """
