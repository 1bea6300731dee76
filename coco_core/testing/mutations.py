# SPDX-License-Identifier: Apache-2.0
"""The kit tests itself: each bug class it claims to catch, seeded into the example plugin.

Every :class:`Mutation` is a few text edits to a copy of the example plugin
(``tests/example_plugin/coco_example/plugin.py``): one bug, the way a plugin
author would write it. :func:`run_mutant` imports the copy under a module
name of its own, runs every check of :class:`~coco_core.testing.PluginConformance`
on it (without goldens, so no bug is caught only because a golden happens to
cover it) and returns each check's outcome; :func:`mutation_problem` says
whether the kit failed with a message naming the bug. Each edit must apply
exactly once, so a change to the example that makes a mutation stale fails
loudly instead of testing nothing.

``tests/testing/test_mutations.py`` runs every mutation in ``make test``, and
the unmutated copy, which must pass every check.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest

from coco_core.testing.kit import CAPABILITIES, PluginConformance

__all__ = ["MUTATIONS", "KitOutcome", "Mutation", "mutation_problem", "run_mutant"]

#: the checks a mutant skips: it is a copy, not the installed distribution
NOT_FOR_COPIES = frozenset({"test_entry_point_is_installed"})


@attrs.frozen
class Mutation:
    """One seeded bug: text edits to the example plugin and what the kit must say.

    :param name: the bug class, as the issue names it.
    :param edits: ``(old, new)`` replacements; each ``old`` occurs exactly once.
    :param expect: fragments one failing check's message must all contain.

    .. versionadded:: 0.2
    """

    name: str
    edits: tuple[tuple[str, str], ...]
    expect: tuple[str, ...]


@attrs.frozen
class KitOutcome:
    """What one check of the kit did: ``passed``, ``skipped`` or ``failed``, and its message.

    .. versionadded:: 0.2
    """

    check: str
    result: str
    message: str = ""


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "completion value the kernel model rejects",
        (
            (
                '    run[_RET : _RET + 4] = raw.to_bytes(4, "little")',
                "    size = outcome.size_needed if outcome is not None else None\n"
                "    value = raw if size is None else size  # the bug: the size into ret\n"
                '    run[_RET : _RET + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")',
            ),
        ),
        ("the kernel model refuses it", "KVM_EXIT_EXAMPLE_ATTEST", "Outcome(BUFFER_TOO_SMALL"),
    ),
    Mutation(
        "error-space code the kernel model rejects",
        (
            ('3: "EXAMPLE_ERROR"}', '3: "EXAMPLE_ERROR", 4: "EXAMPLE_BUSY"}'),
            (
                "        CoCoStatus.ERROR: 3,\n    },",
                "        CoCoStatus.ERROR: 3,\n        CoCoStatus.IN_FLIGHT: 4,\n    },",
            ),
            ("        CoCoStatus.IN_FLIGHT: CoCoStatus.RETRY,\n", ""),
        ),
        ("the kernel model refuses it", "answering IN_FLIGHT", "example_attest.ret = 0x4"),
    ),
    Mutation(
        "decoder raising OverflowError on an all-ones field",
        (
            (
                "    gpa, length, _ret = _unpack(run, _U)\n    return QuoteRequest(gpa, length)",
                "    gpa, length, _ret = _unpack(run, _U)\n"
                '    (gpa + length).to_bytes(8, "little")  # the bug: the end as a u64\n'
                "    return QuoteRequest(gpa, length)",
            ),
        ),
        ("decoder raised OverflowError", "kvm_run.example_attest.gpa = 0xfffffffffffff"),
    ),
    Mutation(
        "decoder indexing a table with a guest number",
        (
            (
                '    fields = (("function_id", fid),',
                '    ("probe", "info")[fid]  # the bug: a table lookup by the guest\'s number\n'
                '    fields = (("function_id", fid),',
            ),
        ),
        ("KVM_EXIT_RISCV_SBI/unknown", "decoder raised IndexError"),
    ),
    Mutation(
        "completion writing inside the union but outside its fields",
        (
            (
                '    run[_RET : _RET + 4] = raw.to_bytes(4, "little")',
                '    run[_RET : _RET + 4] = raw.to_bytes(4, "little")\n'
                "    if outcome is not None:\n"
                "        run[_RET - 4 : _RET] = bytes(4)  # the bug: clears len too",
            ),
        ),
        ("outside its write set", "kvm_run.example_attest.len", "KVM_EXIT_EXAMPLE_ATTEST"),
    ),
    Mutation(
        "completion at a hand-coded wrong offset",
        (
            (
                "    _put_ret2(run, _SBI_RET, raw, value & _U64_MASK)",
                "    _put_ret2(run, _SBI_RET + 8, raw, value & _U64_MASK)  # the bug: one slot on",
            ),
        ),
        ("outside its write set", "EXAMPLE_SBI_GET_EVIDENCE", "wrote byte 0x0070"),
    ),
    Mutation(
        "status field at a hand-coded wrong offset",
        (
            (
                'status_field=StatusField(offset=_RET, fmt="<I"',
                'status_field=StatusField(offset=_RET - 4, fmt="<I"',
            ),
        ),
        ("status field kvm_run.example_attest.ret declared at 40 size 4", "layout puts"),
    ),
    Mutation(
        "two member names swapped (still valid C)",
        (
            (
                "    len: int = c_field(U32, offset=0x08)\n"
                "    ret: int = c_field(U32, offset=0x0C)",
                "    ret: int = c_field(U32, offset=0x08)\n"
                "    len: int = c_field(U32, offset=0x0C)",
            ),
        ),
        ("real header", "kvm_run.example_attest.len: coco 44 size 4, header: 40 size 4"),
    ),
    Mutation(
        "exit number reused from a released kernel",
        (("KVM_EXIT_EXAMPLE_ATTEST = 44", "KVM_EXIT_EXAMPLE_ATTEST = 43"),),
        ("exit 43 is", "KVM_EXIT_EXAMPLE_ATTEST", "KVM_EXIT_SNP_REQ_CERTS", "renumbers"),
    ),
    Mutation(
        "union member named like a generic one",
        (
            (
                '        "system_event": generic_union_members()["system_event"],',
                '        "system_event": _anon(KvmExitExampleAttest),',
            ),
        ),
        ("union member 'system_event'", "generic"),
    ),
    Mutation(
        "discriminator field that is not the layout's",
        (('more=("kvm_run.riscv_sbi.function_id",)', 'more=("kvm_run.riscv_sbi.args[0]",)'),),
        ("discriminator of exit 35", "kvm_run.riscv_sbi.args[0] at 40 size 8", "at 48 size 8"),
    ),
    Mutation(
        "compound key given as one number",
        (
            (
                "    discriminator=(EXAMPLE_SBI_EXT, EXAMPLE_SBI_CONVERT),",
                "    discriminator=EXAMPLE_SBI_CONVERT,",
            ),
        ),
        ("EXAMPLE_SBI_CONVERT", "sub-call 0 of exit 35 has 1 number(s)"),
    ),
    Mutation(
        "decoded exit without a kernel-model part",
        (("    registrar.add_model(MODEL)", "    pass  # the bug: no kernel model"),),
        ("no kernel-model example raises these exits", "KVM_EXIT_RISCV_SBI/EXAMPLE_SBI_CONVERT"),
    ),
)


def _copy(source: Path, mutation: Mutation | None, into: Path) -> Path:
    text = source.read_text(encoding="utf-8")
    if mutation is not None:
        for old, new in mutation.edits:
            count = text.count(old)
            if count != 1:
                raise ValueError(
                    f"mutation {mutation.name!r}: {old!r} occurs {count} times in {source}, "
                    "not once"
                )
            text = text.replace(old, new)
    path = into / "plugin.py"
    into.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as {name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _checks() -> list[tuple[str, tuple[Any, ...]]]:
    out: list[tuple[str, tuple[Any, ...]]] = []
    for name in sorted(dir(PluginConformance)):
        if not name.startswith("test_") or name in NOT_FOR_COPIES:
            continue
        if name == "test_capability_is_decoded":
            out.extend((name, (cap,)) for cap in sorted(CAPABILITIES))
        else:
            out.append((name, ()))
    return out


def run_mutant(
    source: Path,
    mutation: Mutation | None,
    into: Path,
    *,
    headers: Mapping[str, str | os.PathLike[str]],
    capabilities: frozenset[str],
) -> list[KitOutcome]:
    """Copy ``source`` with ``mutation`` into ``into``, and run every kit check on the copy.

    A mutant that does not even import (a layout the import-time checks
    refuse) gives one failed outcome, ``import``.

    :raises ValueError: an edit of ``mutation`` does not occur exactly once in ``source``.

    .. versionadded:: 0.2
    """
    tag = "unmutated" if mutation is None else mutation.name
    module = f"coco_mutant_{abs(hash((str(into), tag)))}"
    path = _copy(source, mutation, into)  # a stale mutation raises here, not as a kit failure
    try:
        plugin = _load(path, module)
    except Exception as exc:  # the import-time layout checks caught it
        return [KitOutcome("import", "failed", f"{type(exc).__name__}: {exc}")]
    try:
        kit_class: Any = type(
            "MutantConformance",
            (PluginConformance,),
            {
                "plugin": plugin,
                "entry_point": "example",
                "vendor": "example",
                "capabilities": capabilities,
                "headers": dict(headers),
                "fuzz_seconds": 0.0,
            },
        )
        kit = kit_class()
        out: list[KitOutcome] = []
        for name, args in _checks():
            label = f"{name}[{args[0]}]" if args else name
            try:
                getattr(kit, name)(*args)
            except pytest.skip.Exception as exc:
                out.append(KitOutcome(label, "skipped", str(exc)))
            except Exception as exc:  # every way a check fails: assertion, registration...
                out.append(KitOutcome(label, "failed", f"{type(exc).__name__}: {exc}"))
            else:
                out.append(KitOutcome(label, "passed"))
        return out
    finally:
        sys.modules.pop(module, None)


def mutation_problem(mutation: Mutation, outcomes: list[KitOutcome]) -> str | None:
    """Why the kit did not catch ``mutation`` (None when a failing check names it).

    .. versionadded:: 0.2
    """
    failed = [o for o in outcomes if o.result == "failed"]
    for o in failed:
        if all(fragment in o.message for fragment in mutation.expect):
            return None
    if not failed:
        return f"{mutation.name}: every check of the kit passed"
    shown = "\n".join(f"  {o.check}: {o.message[:300]}" for o in failed[:6])
    return (
        f"{mutation.name}: {len(failed)} check(s) failed, none with all of "
        f"{list(mutation.expect)}:\n{shown}"
    )
