# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_core.review.compare with synthetic SNP certificate ABIs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from coco_core.errors import ConfigurationError
from coco_core.layout import U32, U64, struct_of
from coco_core.review.compare import ImportedAbi, compare_abis, compare_layouts
from coco_core.review.history import history, render_history


def _fixtures() -> ModuleType:
    name = "coco_tests_abi_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("_abi_fixtures.py")
        )
        assert spec is not None
        assert spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


registry = _fixtures().registry
V1_COCO = _fixtures().V1_COCO


def test_v1_member_pairs_with_released_by_request() -> None:
    """v1's coco member is paired with snp_req_certs because both decode certificate requests."""
    reg = registry()
    c = compare_abis(reg.abi("test-coco-v1"), reg.abi("test-snp-released"))
    pair = next(m for m in c.members if m.member_a == "coco")
    assert pair.member_b == "snp_req_certs"
    assert pair.paired_by == "request"
    by_b = {ch.path_b: ch for ch in pair.changes}
    assert by_b["gpa"].path_a == "req_certs.gfn"
    assert "renamed" in by_b["gpa"].kinds
    assert set(by_b["npages"].kinds) >= {"moved", "widened"}
    assert by_b["ret"].type_a == "__u32"
    assert by_b["ret"].type_b == "__u64"
    removed = {ch.path_a for ch in pair.changes if ch.kinds == ("removed",)}
    assert removed == {"nr", "pad0"}


def test_exit_numbers_spaces_and_duties() -> None:
    """Exit names, colliding raw values, translations, fallbacks and duties are reported."""
    reg = registry()
    c = compare_abis(reg.abi("test-coco-v1"), reg.abi("test-snp-released"))
    assert {(e.name, e.a, e.b) for e in c.exits} == {
        ("KVM_EXIT_COCO", 40, None),
        ("KVM_EXIT_SNP_REQ_CERTS", None, 43),
    }
    (space,) = [s for s in c.spaces if s.space_a == "test.coco_v1"]
    assert [raw for raw, _, _ in space.collisions] == [1]
    assert ("RETRY", 1 << 31, 11) in space.translations
    assert ("RETRY", "ERROR") in space.fallbacks_a
    assert {d.exit_name for d in c.duties} == {"KVM_EXIT_COCO", "KVM_EXIT_SNP_REQ_CERTS"}
    assert c.differs


def test_same_abi_is_identical() -> None:
    """An ABI compared with itself has no differences."""
    reg = registry()
    c = compare_abis(reg.abi("linux-7.2"), reg.abi("linux-7.2"))
    assert not c.differs
    assert all(m.identical for m in c.members)


def test_renamed_same_offset() -> None:
    """A field with the same offset and size but a new name is a rename (gfn -> gpa)."""
    a = struct_of("struct", [("gfn", U64), ("npages", U32), ("ret", U32)])
    b = struct_of("struct", [("gpa", U64), ("npages", U64), ("ret", U64)])
    changes = {c.path_b: c.kinds for c in compare_layouts(a, b)}
    assert changes["gpa"] == ("renamed",)
    assert changes["npages"] == ("widened",)
    assert changes["ret"] == ("moved", "widened")


def test_explicit_pair_and_imported() -> None:
    """An explicit pair wins; an imported struct pairs by shared field names."""
    reg = registry()
    imp = ImportedAbi("file.h", "file.h", {"kvm_exit_coco": V1_COCO}, {"KVM_EXIT_COCO": 40})
    c = compare_abis(imp, reg.abi("test-snp-released"))
    pair = next(m for m in c.members if m.member_a == "kvm_exit_coco")
    assert pair.member_b == "snp_req_certs"
    assert pair.paired_by == "fields"
    c2 = compare_abis(imp, reg.abi("linux-7.2"), pairs={"kvm_exit_coco": "memory_fault"})
    assert next(m for m in c2.members if m.member_a == "kvm_exit_coco").paired_by == "explicit"
    with pytest.raises(ConfigurationError, match="no union member 'nope'"):
        compare_abis(imp, reg.abi("linux-7.2"), pairs={"nope": "io"})


def test_renderers_fit_80_columns() -> None:
    """The plain-text comparison and history fit 80 columns; Markdown has headings."""
    reg = registry()
    c = compare_abis(reg.abi("test-coco-v1"), reg.abi("test-snp-released"))
    assert all(len(ln) <= 80 for ln in c.render().splitlines())
    assert "## Union members" in c.render(markdown=True)
    text = render_history(history(reg))
    assert all(len(ln) <= 80 for ln in text.splitlines())


def test_history_tracks_certificate_exit() -> None:
    """history() follows the certificate request from KVM_EXIT_COCO=40 to SNP_REQ_CERTS=43."""
    entries = [e for e in history(registry()) if e.request == "certificate"]
    synthetic = [e for e in entries if e.abi.startswith("test-")]
    assert [e.exits for e in synthetic] == [
        (("KVM_EXIT_COCO", 40),),
        (("KVM_EXIT_SNP_REQ_CERTS", 43),),
    ]
    assert any("gfn -> gpa" in ch for ch in synthetic[1].changes)


def test_real_v1_proposal_against_released_snp_exit() -> None:
    """KVM_EXIT_COCO v1 vs Linux 7.2: gfn->gpa, u32->u64, ret moved, 40->43, error spaces."""
    import coco_snp.plugin
    import coco_tdx.plugin
    from coco_core.registry import Registry

    reg = Registry.from_plugins([coco_snp.plugin, coco_tdx.plugin])
    c = compare_abis(reg.abi("kvm-exit-coco-v1"), reg.abi("linux-7.2"))
    text = c.render()
    assert "renamed req_certs.gfn -> gpa" in text
    assert "widened __u32 -> __u64" in text
    assert "renamed req_certs.ret -> ret moved +20 -> +16" in text
    assert (c.renumbered[0][:4]) == (
        "KVM_EXIT_COCO/KVM_EXIT_COCO_REQ_CERTS",
        40,
        "KVM_EXIT_SNP_REQ_CERTS",
        43,
    )
    (certs,) = [s for s in c.spaces if s.exit_b == "KVM_EXIT_SNP_REQ_CERTS"]
    assert (certs.space_a, certs.space_b) == ("snp.coco_v1", "snp.req_certs")
    assert ("BUFFER_TOO_SMALL", 0x1, 28) in certs.translations  # INVALID_LEN -> ENOSPC
    assert ("RETRY", "ERROR") in certs.fallbacks_a  # v1 had no BUSY code
    assert max(len(line) for line in text.splitlines()) <= 80
