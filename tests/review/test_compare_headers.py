# SPDX-License-Identifier: Apache-2.0
"""Comparing a registered ABI with a header that defines ``struct kvm_run`` (read whole)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from coco_core.errors import ConfigurationError, CParseError
from coco_core.review.compare import compare_abis
from coco_core.review.files import import_file, load_abi_or_file


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
    reg = _fixtures().registry()
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
    reg = _fixtures().registry()
    c = compare_abis(reg.abi("test-snp-released"), load_abi_or_file(reg, str(_header(tmp_path))))
    assert any("2 exit-union member(s)" in n and "(io, aaa)" in n for n in c.notes)
    assert [(m.member_a, m.member_b) for m in c.members] == [("snp_req_certs", "certs")]


def test_registered_member_missing_from_the_header_is_a_difference(tmp_path: Path) -> None:
    """Without the certs member, snp_req_certs is on one side only: ``aaa`` is for another exit."""
    text = HEADER.replace(
        "\t\t/* KVM_EXIT_SNP_REQ_CERTS */\n\t\tstruct kvm_exit_snp_req_certs certs;\n", ""
    )
    text = text.replace("#define KVM_EXIT_SNP_REQ_CERTS    43\n", "")
    reg = _fixtures().registry()
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
    reg = _fixtures().registry()
    with pytest.raises(ConfigurationError, match=re.escape(f"{hdr}:7: unknown type 'foo_t'")):
        compare_abis(reg.abi("test-snp-released"), import_file(hdr, None, whole=True))


def test_a_patch_struct_that_cannot_be_laid_out_is_an_error_not_found_none(tmp_path: Path) -> None:
    """Without --struct, the req_certs struct's own error is raised, not "found: none"."""
    patch = tmp_path / "v9.patch"
    patch.write_text("+struct kvm_exit_snp_req_certs_v9 {\n+\t__u64 gpa;\n+\tfoo_t npages;\n+};\n")
    with pytest.raises(CParseError, match="^" + re.escape(f"{patch}:3: unknown type 'foo_t'")):
        load_abi_or_file(_fixtures().registry(), str(patch))
