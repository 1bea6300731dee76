# SPDX-License-Identifier: Apache-2.0
"""``coco abi offsets``/``exits`` agree with the real Linux 7.2 ``linux/kvm.h``."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from coco_core.cli.main import main
from coco_core.review.gcc import find_header_dir, header_defines, header_offsets

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")

_REPO = Path(__file__).resolve().parents[2]
_SOURCES = "deb http://deb.debian.org/debian unstable main\n"


def _download(dest: Path) -> None:
    """Fetch linux-libc-dev from Debian unstable with apt-get download + dpkg -x (no install)."""
    work = dest.parent / "uapi72-apt"
    lists = work / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    src = work / "sources.list"
    src.write_text(_SOURCES)
    opts = [
        "-o",
        f"Dir::Etc::SourceList={src}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={lists}",
    ]
    subprocess.run(["apt-get", *opts, "update"], check=True, capture_output=True, timeout=600)
    subprocess.run(
        ["apt-get", *opts, "download", "linux-libc-dev"],
        check=True,
        capture_output=True,
        timeout=600,
        cwd=work,
    )
    (deb,) = sorted(work.glob("linux-libc-dev_*.deb"))
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg", "-x", str(deb), str(dest)], check=True, capture_output=True)


@pytest.fixture(scope="session")
def header_dir() -> Path:
    """The Linux 7.2 uapi include dir: $COCO_KVM_HEADER_DIR, /tmp/uapi72, or downloaded."""
    for cand in (
        os.environ.get("COCO_KVM_HEADER_DIR"),
        "/tmp/uapi72",
        _REPO / ".venv/cache/uapi72",
    ):
        if cand:
            try:
                return find_header_dir(cand)
            except Exception:
                continue
    cache = _REPO / ".venv" / "cache" / "uapi72"
    try:
        _download(cache)
        return find_header_dir(cache)
    except Exception as exc:
        pytest.skip(f"no Linux 7.2 linux/kvm.h (set COCO_KVM_HEADER_DIR; download failed: {exc})")


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
