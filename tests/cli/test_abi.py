# SPDX-License-Identifier: Apache-2.0
"""Tests for ``coco abi``: JSON shapes, text width, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coco_core.cli.main import main

V1_PATCH = """\
diff --git a/include/uapi/linux/kvm.h b/include/uapi/linux/kvm.h
--- a/include/uapi/linux/kvm.h
+++ b/include/uapi/linux/kvm.h
@@ -1,3 +1,12 @@
+#define KVM_EXIT_COCO 40
+struct kvm_exit_coco {
+	__u8 nr;
+	__u8 pad0[7];
+	union {
+		struct { __u64 gfn; __u32 npages; __u32 ret; } req_certs;
+	};
+};
"""


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_list_json_marks_default(capsys: pytest.CaptureFixture[str]) -> None:
    """abi list --format json lists every ABI with vendor, source, exits, and marks linux-7.2."""
    rc, out, _ = _run(capsys, "abi", "list", "--format", "json")
    assert rc == 0
    abis = {a["name"]: a for a in json.loads(out)["abis"]}
    assert abis["linux-7.2"]["default"] is True
    assert abis["linux-6.16"]["default"] is False
    assert abis["linux-7.2"]["exits"]["KVM_EXIT_HYPERCALL"] == 3
    assert all({"name", "vendor", "source", "exits"} <= a.keys() for a in abis.values())


def test_offsets_json(capsys: pytest.CaptureFixture[str]) -> None:
    """abi offsets gives [offset, size] per kvm_run path, s as one member, no union padding."""
    rc, out, _ = _run(capsys, "abi", "offsets", "--abi", "linux-7.2", "--format", "json")
    assert rc == 0
    doc = json.loads(out)
    offs = doc["offsets"]
    assert doc["abi"] == "linux-7.2"
    assert offs["kvm_run.exit_reason"] == [8, 4]
    assert offs["kvm_run.hypercall.ret"] == [88, 8]
    assert offs["kvm_run.memory_fault.gpa"] == [40, 8]
    assert offs["kvm_run.s"] == [304, 2048]
    assert "kvm_run.padding" not in offs
    assert "kvm_run.s.padding" not in offs


def test_exits_json(capsys: pytest.CaptureFixture[str]) -> None:
    """abi exits gives the KVM_EXIT_* numbers of an ABI."""
    rc, out, _ = _run(capsys, "abi", "exits", "--abi", "linux-6.16", "--format", "json")
    assert rc == 0
    exits = json.loads(out)["exits"]
    assert exits["KVM_EXIT_TDX"] == 40
    assert "KVM_EXIT_SNP_REQ_CERTS" not in exits


@pytest.mark.parametrize("fmt", ["c", "markdown", "json"])
def test_show_formats(capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    """abi show renders members, error spaces and duties in each format (text ≤ 80 columns)."""
    rc, out, _ = _run(capsys, "abi", "show", "linux-7.2", "--format", fmt)
    assert rc == 0
    if fmt == "json":
        doc = json.loads(out)
        hc = doc["union_members"]["hypercall"]
        assert hc["kvm_run_offsets"]["kvm_run.hypercall.ret"] == [88, 8]
        assert hc["union_bytes_used"] == 72
        assert doc["error_spaces"]
    else:
        assert "hypercall" in out
        assert "MAP_GPA_RANGE" in out
    if fmt == "c":
        assert all(len(ln) <= 80 for ln in out.splitlines())


def test_history_and_compare_text(capsys: pytest.CaptureFixture[str]) -> None:
    """abi history and abi compare print 80-column text."""
    rc, out, _ = _run(capsys, "abi", "history")
    assert rc == 0
    assert "memory_conversion" in out
    assert all(len(ln) <= 80 for ln in out.splitlines())
    rc, out, _ = _run(capsys, "abi", "compare", "linux-7.1", "linux-7.2")
    assert rc == 0
    assert "kvm.map_gpa_range" in out
    assert all(len(ln) <= 80 for ln in out.splitlines())


def test_compare_and_import_patch_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A patch file can be imported and compared with a registered ABI."""
    patch = tmp_path / "v1.patch"
    patch.write_text(V1_PATCH)
    rc, out, _ = _run(
        capsys, "abi", "import", str(patch), "--struct", "kvm_exit_coco", "--format", "json"
    )
    assert rc == 0
    assert json.loads(out)["layout"]["offsets"]["kvm_exit_coco.req_certs.ret"] == [20, 4]
    rc, out, _ = _run(
        capsys, "abi", "compare", str(patch), "linux-7.2", "--pair", "kvm_exit_coco:memory_fault"
    )
    assert rc == 0
    assert "kvm_exit_coco ~ memory_fault (paired by explicit)" in out
    assert "KVM_EXIT_COCO" in out


def test_unknown_abi_is_one_line_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown ABI exits 1 with one line naming the registered ABIs."""
    rc, out, err = _run(capsys, "abi", "show", "linux-0.1")
    assert rc == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "linux-7.2" in err


def test_unreadable_file_names_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A directory given as a header is reported with its path, exit 1."""
    rc, _, err = _run(capsys, "abi", "import", str(tmp_path), "--struct", "x")
    assert rc == 1
    assert str(tmp_path) in err
    assert err.count("\n") == 1


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Bad arguments exit 2 with one line."""
    with pytest.raises(SystemExit) as info:
        main(["abi", "offsets", "--format", "yaml"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1


def test_check_without_header(capsys: pytest.CaptureFixture[str]) -> None:
    """abi check verifies every registered layout with gcc and exits 0."""
    pytest.importorskip("shutil").which("gcc") or pytest.skip("gcc is not installed")
    rc, out, _ = _run(capsys, "abi", "check")
    assert rc == 0
    assert "0 mismatches" in out


def test_compare_a_struct_pasted_from_a_patch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reviewer's patch file compares against linux-7.2: paired by fields, only real changes."""
    patch = tmp_path / "v8.patch"
    patch.write_text(
        "--- a/include/uapi/linux/kvm.h\n"
        "+++ b/include/uapi/linux/kvm.h\n"
        "@@ -140,6 +140,12 @@\n"
        "+#define KVM_EXIT_SNP_REQ_CERTS_V8 44\n"
        "+struct kvm_exit_snp_req_certs_v8 {\n"
        "+\t__u64 gpa;\n"
        "+\t__u32 npages;\n"
        "+\t__u32 flags;\n"
        "+\t__u64 ret;\n"
        "+};\n"
    )
    rc = main(["abi", "compare", "linux-7.2", str(patch), "--struct", "kvm_exit_snp_req_certs_v8"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "snp_req_certs ~ kvm_exit_snp_req_certs_v8 (paired by fields)" in out
    assert "npages: narrowed __u64 -> __u32" in out
    assert "added flags (__u32 at +12)" in out
    assert "KVM_EXIT_SNP_REQ_CERTS_V8  -          44" in out
    assert "KVM_EXIT_HLT" not in out  # exits the patch does not define are not listed


def test_check_with_an_unknown_abi_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    """``abi check --abi NAME`` with a name nothing registers exits 1 with one line."""
    rc, out, err = _run(capsys, "abi", "check", "--abi", "linux-0.1")
    assert rc == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "unknown ABI 'linux-0.1'" in err


@pytest.mark.parametrize(
    ("line", "cause"),
    [
        ("+\t__u32 npages:3;\n", "bitfield 'npages' is not supported"),
        ("+\tfoo_t npages;\n", "unknown type 'foo_t'"),
    ],
)
def test_compare_names_file_and_line_of_a_parse_error(
    line: str, cause: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``abi compare`` reports what ``abi import`` reports: ``FILE:LINE: cause``, exit 1."""
    patch = tmp_path / "v9.patch"
    patch.write_text("+struct kvm_exit_snp_req_certs_v9 {\n+\t__u64 gpa;\n" + line + "+};\n")
    for argv in (
        ("abi", "compare", "linux-7.2", str(patch)),
        ("abi", "import", str(patch), "--struct", "kvm_exit_snp_req_certs_v9"),
    ):
        rc, _, err = _run(capsys, *argv)
        assert rc == 1
        assert err == f"coco: error: {patch}:3: {cause}" + err.split(cause, 1)[1]
        assert err.count("\n") == 1


def _fenced(text: str, lang: str, after: str) -> str:
    """The first ``lang`` fenced block of ``text`` after the line ``after``."""
    rest = text[text.index(after) :]
    start = rest.index(f"```{lang}\n") + len(lang) + 4
    return rest[start : rest.index("```", start)]


def test_how_to_v8_example_runs_as_shown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The how-to's ``v8.patch`` (bare ``+`` lines) and command print the text the page shows."""
    page = (Path(__file__).parents[2] / "docs/how-to/compare-an-abi-proposal.md").read_text()
    intro = "A hypothetical v8 that narrows `npages` and adds a"
    (tmp_path / "v8.patch").write_text(_fenced(page, "diff", intro))
    command = _fenced(page, "sh", intro).strip()
    assert command.startswith("coco abi compare ")
    monkeypatch.chdir(tmp_path)
    rc, out, _ = _run(capsys, *command.split()[1:])
    assert rc == 0
    assert out == _fenced(page, "text", intro)


def test_history_shows_the_v6_completion_rule(capsys: pytest.CaptureFixture[str]) -> None:
    """v6's ``default: return -EINVAL;`` switch, attribute 1 and exit 40 are in ``abi history``."""
    rc, out, _ = _run(capsys, "abi", "history", "--format", "json")
    assert rc == 0
    (v6,) = [
        e
        for e in json.loads(out)["history"]
        if e["request"] == "certificate" and e["abi"] == "snp-req-certs-v6"
    ]
    assert v6["exits"] == [["KVM_EXIT_SNP_REQ_CERTS", 40]]
    (rule,) = [ch for ch in v6["changes"] if ch.startswith("completion KVM_EXIT_SNP_REQ_CERTS")]
    assert "KVM_X86_SEV_SNP_REQ_CERTS = 1" in rule
    assert "unknown ret: KVM_RUN -EINVAL" in rule
    assert "<Z78uu3VNoIu48--7@google.com>" in rule
    rc, text, _ = _run(capsys, "abi", "history")
    assert "<Z78uu3VNoIu48--7@google.com>" in text  # a Message-ID is not broken at its hyphens
