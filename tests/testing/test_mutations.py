# SPDX-License-Identifier: Apache-2.0
"""The conformance kit catches every bug class it claims to, seeded into the example plugin."""

from __future__ import annotations

from pathlib import Path

import coco_example.plugin as example
import pytest

from coco_core.testing.mutations import MUTATIONS, Mutation, mutation_problem, run_mutant

SOURCE = Path(example.__file__)
HEADERS = {"example-1": Path(__file__).resolve().parents[1] / "example_plugin" / "include"}
CAPABILITIES = frozenset({"get_quote", "map_gpa", "termination"})


def test_unmutated_copy_passes_every_check(tmp_path: Path) -> None:
    """A copy of the example plugin without a seeded bug passes every check the mutants run."""
    outcomes = run_mutant(
        SOURCE, None, tmp_path / "clean", headers=HEADERS, capabilities=CAPABILITIES
    )
    failed = [f"{o.check}: {o.message}" for o in outcomes if o.result == "failed"]
    assert not failed, "\n".join(failed)
    assert sum(o.result == "passed" for o in outcomes) >= 20


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_kit_fails_the_mutant_naming_the_bug(mutation: Mutation, tmp_path: Path) -> None:
    """The kit fails the example plugin with this bug seeded, in a message that names the bug."""
    outcomes = run_mutant(
        SOURCE, mutation, tmp_path / "mutant", headers=HEADERS, capabilities=CAPABILITIES
    )
    problem = mutation_problem(mutation, outcomes)
    assert problem is None, problem


def test_stale_mutation_is_refused(tmp_path: Path) -> None:
    """A mutation whose text no longer occurs in the example plugin fails instead of passing."""
    stale = Mutation("stale", (("no such text in the plugin", "x"),), ("x",))
    with pytest.raises(ValueError, match="occurs 0 times"):
        run_mutant(SOURCE, stale, tmp_path, headers=HEADERS, capabilities=CAPABILITIES)
