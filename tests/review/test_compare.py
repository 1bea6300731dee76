# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_core.review.compare: synthetic SNP certificate ABIs, and headers read whole."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from coco_core.errors import ConfigurationError, CParseError
from coco_core.layout import U32, U64, struct_of
from coco_core.review.compare import ImportedAbi, compare_abis, compare_layouts
from coco_core.review.files import import_file, load_abi_or_file
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


# -- a header that defines struct kvm_run, read whole ------------------------------


#: kvm.h's shape: exit reasons at file scope, kvm_run's anonymous union of members, each
#: under its ``/* KVM_EXIT_* */`` comment; ``aaa`` shares every field name with ``certs``
HEADER = """\
#define KVM_EXIT_IO               2
#define KVM_EXIT_SNP_REQ_CERTS    43
#define KVM_EXIT_DECOY            44

struct kvm_exit_snp_req_certs {
\t__u64 gpa;
\t__u64 npages;
\t__u64 ret;
};

struct kvm_run {
\t__u32 exit_reason;
\tunion {
\t\t/* KVM_EXIT_IO */
\t\tstruct {
#define KVM_EXIT_IO_IN  0
\t\t\t__u8 direction;
\t\t} io;
\t\t/* KVM_EXIT_DECOY */
\t\tstruct {
\t\t\t__u64 gpa;
\t\t\t__u64 npages;
\t\t\t__u64 ret;
\t\t} aaa;
\t\t/* KVM_EXIT_SNP_REQ_CERTS */
\t\tstruct kvm_exit_snp_req_certs certs;
\t\tchar padding[256];
\t};
};
"""


def _header(tmp_path: Path, text: str = HEADER) -> Path:
    (tmp_path / "linux").mkdir(exist_ok=True)
    p = tmp_path / "linux" / "kvm.h"
    p.write_text(text)
    return p


def test_header_member_pairs_by_its_kvm_exit_comment(tmp_path: Path) -> None:
    """``/* KVM_EXIT_SNP_REQ_CERTS */`` above ``certs`` pairs it with the exit-43 member."""
    reg = registry()
    c = compare_abis(reg.abi("test-snp-released"), import_file(_header(tmp_path), None, whole=True))
    (pair,) = c.members
    assert (pair.member_a, pair.member_b, pair.paired_by) == ("snp_req_certs", "certs", "exit")
    assert pair.identical
    # the header's exit reasons the ABI lacks are differences; KVM_EXIT_IO_IN, made
    # inside ``struct { ... } io;``, is no exit reason
    assert [(e.name, e.a, e.b) for e in c.exits] == [
        ("KVM_EXIT_IO", None, 2),
        ("KVM_EXIT_DECOY", None, 44),
    ]


def test_header_members_not_registered_are_named_once(tmp_path: Path) -> None:
    """The header's io and aaa, which the ABI does not register, are one note, not differences."""
    reg = registry()
    c = compare_abis(reg.abi("test-snp-released"), load_abi_or_file(reg, str(_header(tmp_path))))
    assert any("2 exit-union member(s)" in n and "(io, aaa)" in n for n in c.notes)
    assert [(m.member_a, m.member_b) for m in c.members] == [("snp_req_certs", "certs")]


def test_registered_member_missing_from_the_header_is_a_difference(tmp_path: Path) -> None:
    """Without the certs member, snp_req_certs is on one side only: ``aaa`` is for another exit."""
    text = HEADER.replace(
        "\t\t/* KVM_EXIT_SNP_REQ_CERTS */\n\t\tstruct kvm_exit_snp_req_certs certs;\n", ""
    )
    text = text.replace("#define KVM_EXIT_SNP_REQ_CERTS    43\n", "")
    reg = registry()
    c = compare_abis(
        reg.abi("test-snp-released"), import_file(_header(tmp_path, text), None, whole=True)
    )
    assert [(m.member_a, m.member_b) for m in c.members] == [("snp_req_certs", None)]
    assert [(e.name, e.a, e.b) for e in c.exits] == [
        ("KVM_EXIT_IO", None, 2),
        ("KVM_EXIT_SNP_REQ_CERTS", 43, None),
        ("KVM_EXIT_DECOY", None, 44),
    ]
    assert c.differs


def test_registered_member_whose_header_struct_failed_is_an_error(tmp_path: Path) -> None:
    """A registered member whose header struct cannot be laid out is an error naming FILE:LINE."""
    text = HEADER.replace(
        "\t\tstruct kvm_exit_snp_req_certs certs;",
        "\t\tstruct kvm_exit_snp_req_certs snp_req_certs;",
    )
    text = text.replace("\t__u64 npages;\n\t__u64 ret;\n};", "\tfoo_t npages;\n\t__u64 ret;\n};", 1)
    hdr = _header(tmp_path, text)
    reg = registry()
    with pytest.raises(ConfigurationError, match=re.escape(f"{hdr}:7: unknown type 'foo_t'")):
        compare_abis(reg.abi("test-snp-released"), import_file(hdr, None, whole=True))


def test_a_patch_struct_that_cannot_be_laid_out_is_an_error_not_found_none(tmp_path: Path) -> None:
    """Without --struct, the req_certs struct's own error is raised, not "found: none"."""
    patch = tmp_path / "v9.patch"
    patch.write_text("+struct kvm_exit_snp_req_certs_v9 {\n+\t__u64 gpa;\n+\tfoo_t npages;\n+};\n")
    with pytest.raises(CParseError, match="^" + re.escape(f"{patch}:3: unknown type 'foo_t'")):
        load_abi_or_file(registry(), str(patch))
