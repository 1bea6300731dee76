# SPDX-License-Identifier: Apache-2.0
"""``coco abi offsets``/``exits`` agree with the real Linux 7.2 ``linux/kvm.h``."""

from __future__ import annotations

import inspect
import json
import re
import shutil
from pathlib import Path

import pytest

from coco_core.abi import Abi
from coco_core.cli.main import main
from coco_core.review.gcc import header_defines, header_offsets

# header_dir: the Linux 7.2 uapi include folder, from the one fixture in tests/conftest.py
# (found, or fetched from Debian, in one documented place); gcc: skips where there is none.
pytestmark = pytest.mark.usefixtures("gcc")


def _cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(list(argv)) == 0
    doc: dict[str, object] = json.loads(capsys.readouterr().out)
    return doc


def test_offsets_agree_with_header(header_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every listed kvm_run member the header has sits at the header's offset and size."""
    doc = _cli_json(capsys, "abi", "offsets", "--abi", "linux-7.2", "--format", "json")
    offs = doc["offsets"]
    assert isinstance(offs, dict)
    measured = header_offsets(header_dir, list(offs))
    present = {p: v for p, v in measured.items() if v is not None}
    for path, got in present.items():
        assert list(got) == offs[path], path
    generic = [
        "kvm_run.exit_reason",
        "kvm_run.hypercall.nr",
        "kvm_run.hypercall.ret",
        "kvm_run.system_event.data",
        "kvm_run.memory_fault.gpa",
        "kvm_run.msr.data",
        "kvm_run.io.port",
        "kvm_run.s",
    ]
    assert all(p in present for p in generic)


def test_exits_agree_with_header(header_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every KVM_EXIT_* number of linux-7.2 equals the header's #define."""
    doc = _cli_json(capsys, "abi", "exits", "--abi", "linux-7.2", "--format", "json")
    exits = doc["exits"]
    assert isinstance(exits, dict)
    defs = header_defines(header_dir, list(exits))
    assert defs == exits
    assert defs["KVM_EXIT_SNP_REQ_CERTS"] == 43


def test_check_with_header(
    header_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """abi check --header passes for linux-7.2 and lists a changed exit number as a mismatch."""
    assert main(["abi", "check", "--header", str(header_dir)]) == 0
    assert "MISMATCH" not in capsys.readouterr().out
    import coco_core.review.gcc as gcc

    real = gcc.header_defines

    def shifted(hdr: object, names: list[str], **kw: object) -> dict[str, int | None]:
        out = real(hdr, names)  # type: ignore[arg-type]
        out["KVM_EXIT_TDX"] = 41
        return out

    monkeypatch.setattr(gcc, "header_defines", shifted)
    assert main(["abi", "check", "--header", str(header_dir)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH KVM_EXIT_TDX: linux-7.2 40, header 41" in out


def _define(path: Path, name: str) -> int:
    """The integer a header ``#define NAME value`` line gives (literal values only)."""
    m = re.search(rf"^\s*#\s*define\s+{name}\s+\(?([0-9a-fA-Fx]+)", path.read_text(), re.M)
    assert m is not None, f"{path} defines no {name}"
    return int(m.group(1), 0)


def _comment_above(module: object, assignment: str) -> str:
    """The ``#:`` comment block right above ``assignment`` in ``module``'s source."""
    lines = inspect.getsource(module).splitlines()  # type: ignore[arg-type]
    at = next(i for i, ln in enumerate(lines) if ln.startswith(assignment))
    block = []
    for ln in reversed(lines[:at]):
        if not ln.startswith("#:"):
            break
        block.append(ln)
    return " ".join(reversed(block))


def test_constants_match_the_72_headers(header_dir: Path) -> None:
    """asm/vmx.h ``#define EXIT_REASON_TDCALL 77``, asm/svm.h ``SVM_EXIT_VMMCALL 0x081``, ..."""
    import coco_snp.uapi
    import coco_tdx.uapi
    from coco_core.generic import hypercall

    asm = header_dir / "x86_64-linux-gnu" / "asm"
    assert _define(asm / "vmx.h", "EXIT_REASON_TDCALL") == coco_tdx.uapi.EXIT_REASON_TDCALL
    assert _define(asm / "svm.h", "SVM_EXIT_VMMCALL") == coco_snp.uapi.SVM_EXIT_VMMCALL
    para = header_dir / "linux" / "kvm_para.h"
    assert _define(para, "KVM_ENOSYS") == hypercall.KVM_ENOSYS
    assert _define(para, "KVM_HC_VAPIC_POLL_IRQ") == hypercall.KVM_HC_VAPIC_POLL_IRQ
    assert _define(asm / "kvm.h", "KVM_X86_SEV_SNP_REQ_CERTS") == 2  # v6 posted 1


def test_citations_do_not_name_uapi_headers_that_lack_the_value(header_dir: Path) -> None:
    """uapi sev-guest.h has no ``enum msg_type``, uapi tdx-guest.h no ``GET_QUOTE_*``."""
    import coco_snp.uapi
    from coco_tdx.ghci import GET_QUOTE_STATUS

    assert "SNP_MSG_REPORT_REQ" not in (header_dir / "linux" / "sev-guest.h").read_text()
    cited = _comment_above(coco_snp.uapi, "SNP_MSG_REPORT_REQ = ")
    assert "arch/x86/include/asm/sev.h" in cited
    assert "include/uapi/linux/sev-guest.h" not in cited
    assert "GET_QUOTE_" not in (header_dir / "linux" / "tdx-guest.h").read_text()
    assert "GHCI" in GET_QUOTE_STATUS.source
    assert not GET_QUOTE_STATUS.source.startswith("include/uapi/linux/tdx-guest.h")


def _linux72() -> Abi:
    import coco_snp.plugin
    import coco_tdx.plugin
    from coco_core.registry import Registry

    return Registry.from_plugins([coco_snp.plugin, coco_tdx.plugin]).abi("linux-7.2")


#: the line of include/uapi/linux/kvm.h (7.2) that a shifted copy rewrites
_RET = "\t__u64 ret;\n"
_RET_SHIFTED = "\t__u64 ret __attribute__((aligned(32)));\n"


def _shifted(header_dir: Path, dest: Path) -> Path:
    """A copy of the 7.2 include tree whose ``struct kvm_exit_snp_req_certs`` has ``ret`` at 32."""
    shutil.copytree(header_dir / "linux", dest / "linux")
    shutil.copytree(header_dir / "x86_64-linux-gnu" / "asm", dest / "x86_64-linux-gnu" / "asm")
    kvm = dest / "linux" / "kvm.h"
    text = kvm.read_text()
    start = text.index("struct kvm_exit_snp_req_certs {")
    at = text.index(_RET, start)
    kvm.write_text(text[:at] + _RET_SHIFTED + text[at + len(_RET) :])
    return kvm


def test_released_abi_against_its_own_header_is_identical(header_dir: Path) -> None:
    """``abi compare linux-7.2 .../linux/kvm.h`` (7.2): every member identical, no exit differs."""
    from coco_core.review.compare import compare_abis
    from coco_core.review.files import import_file

    abi = _linux72()
    hdr = import_file(header_dir / "linux" / "kvm.h", None, whole=True)
    c = compare_abis(abi, hdr)
    assert {m.member_a for m in c.members} == set(abi.union_members)
    assert all(m.identical for m in c.members), c.render()
    assert {m.member_a: m.paired_by for m in c.members}["hypercall"] == "exit"
    assert c.exits == ()
    assert not c.differs
    assert hdr.errors == {}  # asm/kvm.h was found: kvm_run's debug member laid out too
    assert "KVM_EXIT_IO_IN" not in hdr.exits  # made inside struct { ... } io;
    assert "KVM_EXIT_HYPERCALL_LONG_MODE" not in hdr.exits  # made by asm/kvm.h


def test_one_shifted_field_is_exactly_what_differs(header_dir: Path, tmp_path: Path) -> None:
    """``__u64 ret __attribute__((aligned(32)))`` shows ``ret`` moved +16 -> +32, nothing else."""
    from coco_core.review.compare import compare_abis
    from coco_core.review.files import import_file

    kvm = _shifted(header_dir, tmp_path)
    c = compare_abis(_linux72(), import_file(kvm, None, whole=True))
    (changed,) = [m for m in c.members if not m.identical]
    assert (changed.member_a, changed.size_a, changed.size_b) == ("snp_req_certs", 24, 64)
    assert [(ch.kinds, ch.path_a, ch.offset_a, ch.offset_b) for ch in changed.changes] == [
        (("moved",), "ret", 16, 32)
    ]
    assert c.exits == ()


def test_check_against_a_shifted_header_names_that_field(
    header_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """gcc on the shifted copy: one MISMATCH, ``kvm_run.snp_req_certs.ret`` at 64 instead of 48."""
    kvm = _shifted(header_dir, tmp_path)
    assert main(["abi", "check", "--header", str(kvm)]) == 1
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("MISMATCH")]
    assert lines == ["MISMATCH kvm_run.snp_req_certs.ret: linux-7.2 48 size 8, header 64 size 8"]


def test_struct_kvm_run_of_the_real_header_lays_out_as_gcc_does(header_dir: Path) -> None:
    """``--struct kvm_run`` parses 7.2's kvm.h (asm/kvm.h included) and every offset is gcc's."""
    from coco_core.review.files import import_file

    imported = import_file(header_dir / "linux" / "kvm.h", "kvm_run")
    run = imported.union_members["kvm_run"]
    mine = run.offsets("kvm_run")
    mine["kvm_run"] = (0, run.size)
    measured = header_offsets(header_dir, list(mine))
    assert {p: v for p, v in measured.items() if v != mine[p]} == {}
    assert run.size == 2352


@pytest.mark.parametrize(
    "form", ["root", "usr-tree", "linux-dir", "kvm.h", "loose-copy"], ids=lambda f: f
)
def test_check_header_takes_a_kvm_h_path_or_an_include_dir(
    form: str, header_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--header`` takes the include root, a tree, ``linux/``, the file, or a renamed copy."""
    loose = tmp_path / "proposal" / "kvm-7.2.h"
    if form == "loose-copy":  # what it includes next to it, where -I DIR finds it
        shutil.copytree(header_dir / "x86_64-linux-gnu" / "asm", loose.parent / "asm")
        shutil.copytree(header_dir / "linux", loose.parent / "linux")
        shutil.copy(header_dir / "linux" / "kvm.h", loose)
    path = {
        "root": header_dir,
        "usr-tree": header_dir.parent.parent,
        "linux-dir": header_dir / "linux",
        "kvm.h": header_dir / "linux" / "kvm.h",
        "loose-copy": loose,
    }[form]
    if form == "usr-tree" and header_dir.parts[-2:] != ("usr", "include"):
        pytest.skip(f"{header_dir} is not DIR/usr/include: no tree above it to name")
    assert main(["abi", "check", "--header", str(path)]) == 0
    out = capsys.readouterr().out
    assert "header: 52 offsets (0 mismatches), 44 exit numbers (0 mismatches)" in out
