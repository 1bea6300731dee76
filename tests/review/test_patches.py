# SPDX-License-Identifier: Apache-2.0
"""What a reviewer hands ``coco abi``: ``+``-line excerpts, format-patch mails, mboxes, series."""

from __future__ import annotations

import difflib
import shutil
import subprocess
from pathlib import Path

import pytest

from coco_core.errors import CParseError
from coco_core.review.cparse import parse_c
from coco_core.review.files import import_file
from coco_core.review.patches import read_patches, source_chunks

#: the v8 excerpt of docs/how-to/compare-an-abi-proposal.md: '+' lines, no @@, no ---/+++
EXCERPT = """\
+#define KVM_EXIT_SNP_REQ_CERTS_V8 44
+struct kvm_exit_snp_req_certs_v8 {
+\t__u64 gpa;
+\t__u32 npages;
+\t__u32 flags;
+\t__u64 ret;
+};
"""

#: a base uapi header, as the series below starts from it
BASE = """\
#ifndef __LINUX_KVM_H
#define __LINUX_KVM_H

#include <linux/types.h>

#define KVM_EXIT_TDX              40

struct kvm_run {
\t__u32 exit_reason;
\tunion {
\t\t/* KVM_EXIT_TDX */
\t\tstruct {
\t\t\t__u64 flags;
\t\t} tdx;
\t\t/* Fix the size of the union. */
\t\tchar padding[256];
\t};
};

#endif
"""

#: what `git format-patch --stdout HEAD~2` wrote for the two commits built by _series()
#: (git 2.39.5; one sev.c line changed): patch 1 adds a v6-like member and an sev.c
#: line, patch 2 rewrites the member to the merged layout; ``<SP>`` is the space git
#: writes on a blank context line and after the ``--`` signature separator
SERIES = """\
From c76ab4001d4080ffb6a724543b80c88f42323c44 Mon Sep 17 00:00:00 2001
From: A <a@b>
Date: Tue, 1 Dec 2026 22:43:09 +0000
Subject: [PATCH 1/2] KVM: SEV: add SNP_REQ_CERTS exit

---
 arch/x86/kvm/sev.c       | 1 +
 include/uapi/linux/kvm.h | 7 +++++++
 2 files changed, 8 insertions(+)

diff --git a/arch/x86/kvm/sev.c b/arch/x86/kvm/sev.c
index 6d1a0d4..2b9d16b 100644
--- a/arch/x86/kvm/sev.c
+++ b/arch/x86/kvm/sev.c
@@ -1 +1,2 @@
 int x;
+\treturn snp_complete_req_certs(vcpu) ? : -EINVAL;
diff --git a/include/uapi/linux/kvm.h b/include/uapi/linux/kvm.h
index 0fce7cd..c1ed554 100644
--- a/include/uapi/linux/kvm.h
+++ b/include/uapi/linux/kvm.h
@@ -4,6 +4,7 @@
 #include <linux/types.h>
<SP>
 #define KVM_EXIT_TDX              40
+#define KVM_EXIT_SNP_REQ_CERTS    41
<SP>
 struct kvm_run {
 \t__u32 exit_reason;
@@ -12,6 +13,12 @@ struct kvm_run {
 \t\tstruct {
 \t\t\t__u64 flags;
 \t\t} tdx;
+\t\t/* KVM_EXIT_SNP_REQ_CERTS */
+\t\tstruct {
+\t\t\t__u64 gfn;
+\t\t\t__u32 npages;
+\t\t\t__u32 ret;
+\t\t} snp_req_certs;
 \t\t/* Fix the size of the union. */
 \t\tchar padding[256];
 \t};
--<SP>
2.39.5


From 21a4cadc1a74bbc05fb69a41f3cf6434a32d6ad2 Mon Sep 17 00:00:00 2001
From: A <a@b>
Date: Tue, 1 Dec 2026 22:43:10 +0000
Subject: [PATCH 2/2] KVM: SEV: widen the SNP_REQ_CERTS fields

---
 include/uapi/linux/kvm.h | 6 +++---
 1 file changed, 3 insertions(+), 3 deletions(-)

diff --git a/include/uapi/linux/kvm.h b/include/uapi/linux/kvm.h
index c1ed554..0c8f113 100644
--- a/include/uapi/linux/kvm.h
+++ b/include/uapi/linux/kvm.h
@@ -15,9 +15,9 @@ struct kvm_run {
 \t\t} tdx;
 \t\t/* KVM_EXIT_SNP_REQ_CERTS */
 \t\tstruct {
-\t\t\t__u64 gfn;
-\t\t\t__u32 npages;
-\t\t\t__u32 ret;
+\t\t\t__u64 gpa;
+\t\t\t__u64 npages;
+\t\t\t__u64 ret;
 \t\t} snp_req_certs;
 \t\t/* Fix the size of the union. */
 \t\tchar padding[256];
--<SP>
2.39.5

""".replace("<SP>", " ")


def _mails(text: str) -> list[str]:
    """The mails of an mbox, each from its ``From `` separator line."""
    parts = text.split("\nFrom ")
    return [parts[0] + "\n", *("From " + p + "\n" for p in parts[1:])]


def _fields(text: str) -> list[tuple[str, int, int]]:
    lay = parse_c(text, source="series.mbox").struct("snp_req_certs")
    return [(m.name or "", m.offset, m.size) for m in lay.members]


def test_plus_line_excerpt_is_read() -> None:
    """The how-to's v8 excerpt (``+`` lines only, no ``@@``, no ``---``/``+++``) lays out."""
    parsed = parse_c(EXCERPT, source="v8.patch")
    lay = parsed.struct("kvm_exit_snp_req_certs_v8")
    assert [(m.name, m.offset, m.size) for m in lay.members] == [
        ("gpa", 0, 8),
        ("npages", 8, 4),
        ("flags", 12, 4),
        ("ret", 16, 8),
    ]
    assert parsed.defines["KVM_EXIT_SNP_REQ_CERTS_V8"] == 44
    assert source_chunks(EXCERPT).kind == "excerpt"


def test_one_mail_reads_only_its_uapi_hunks() -> None:
    """One mail gives its kvm.h hunks; sev.c's ``return ... ? : -EINVAL;`` is not read."""
    first = _mails(SERIES)[0]
    parsed = parse_c(first, source="0001.patch")
    assert _fields(first) == [("gfn", 0, 8), ("npages", 8, 4), ("ret", 12, 4)]
    assert parsed.defines["KVM_EXIT_SNP_REQ_CERTS"] == 41
    assert parsed.series == (
        "[PATCH 1/2] KVM: SEV: add SNP_REQ_CERTS exit: include/uapi/linux/kvm.h (2 hunks)",
    )


def test_series_applies_the_uapi_hunks_in_order() -> None:
    """Patch 2's ``-__u64 gfn;`` / ``+__u64 gpa;`` replaces what patch 1 added (all u64)."""
    assert _fields(SERIES) == [("gpa", 0, 8), ("npages", 8, 8), ("ret", 16, 8)]
    assert [p.subject for p in read_patches(SERIES) or []] == [
        "[PATCH 1/2] KVM: SEV: add SNP_REQ_CERTS exit",
        "[PATCH 2/2] KVM: SEV: widen the SNP_REQ_CERTS fields",
    ]


def test_series_order_is_the_patch_number_and_replies_are_left_out() -> None:
    """A thread's mbox is by date: ``N/M`` orders the mails; a ``Re:`` with a diff is no patch."""
    one, two = _mails(SERIES)
    reply = (
        "From mboxrd@z Thu Jan  1 00:00:00 1970\n"
        "From: Reviewer <r@example.org>\n"
        "Subject: Re: [PATCH 1/2] KVM: SEV: add SNP_REQ_CERTS exit\n\n"
        "Try this instead:\n\n"
        "--- a/include/uapi/linux/kvm.h\n"
        "+++ b/include/uapi/linux/kvm.h\n"
        "@@ -15,3 +15,3 @@\n"
        " \t\tstruct {\n"
        "-\t\t\t__u64 gfn;\n"
        "+\t\t\t__u32 gfn;\n"
        " \t\t\t__u32 npages;\n"
    )
    assert _fields(two + reply + one) == _fields(SERIES)


def test_quoted_printable_mail_is_decoded() -> None:
    """A quoted-printable body (``=09`` tabs, ``=`` soft breaks) reads as the plain mail."""
    first = _mails(SERIES)[0]
    head, body = first.split("\n\n", 1)
    qp = body.replace("\t", "=09").replace(" __u32 npages;", " __u32 =\nnpages;")
    mail = (
        head + "\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
        "Content-Transfer-Encoding: quoted-printable\n\n" + qp
    )
    assert _fields(mail) == _fields(first)


def test_parse_error_names_the_mail_line() -> None:
    """A bitfield the series leaves in kvm.h is an error naming the mail file and its line."""
    text = SERIES.replace("+\t\t\t__u64 npages;\n", "+\t\t\t__u64 npages:3;\n", 1)
    with pytest.raises(CParseError) as info:
        parse_c(text, source="series.mbox")
    where, line, _ = str(info.value).split(":", 2)
    assert where == "series.mbox"
    assert "npages:3" in text.splitlines()[int(line) - 1]


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=A", "-c", "user.email=a@b", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def test_git_format_patch_output_is_read(tmp_path: Path) -> None:
    """What ``git format-patch --stdout`` writes for a two-patch series reads as that series."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed (apt-get install git) to write the series")
    (tmp_path / "include/uapi/linux").mkdir(parents=True)
    kvm = tmp_path / "include/uapi/linux/kvm.h"
    kvm.write_text(BASE)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "base")
    one = BASE.replace("40\n", "40\n#define KVM_EXIT_SNP_REQ_CERTS    41\n").replace(
        "\t\t} tdx;\n",
        "\t\t} tdx;\n\t\t/* KVM_EXIT_SNP_REQ_CERTS */\n\t\tstruct {\n"
        "\t\t\t__u64 gfn;\n\t\t\t__u32 npages;\n\t\t\t__u32 ret;\n\t\t} snp_req_certs;\n",
    )
    kvm.write_text(one)
    _git(tmp_path, "commit", "-qam", "KVM: SEV: add SNP_REQ_CERTS exit")
    two = one.replace(
        "__u64 gfn;\n\t\t\t__u32 npages;\n\t\t\t__u32 ret;",
        "__u64 gpa;\n\t\t\t__u64 npages;\n\t\t\t__u64 ret;",
    )
    kvm.write_text(two)
    _git(tmp_path, "commit", "-qam", "KVM: SEV: widen the SNP_REQ_CERTS fields")
    mbox = _git(tmp_path, "format-patch", "--stdout", "HEAD~2")
    assert _fields(mbox) == [("gpa", 0, 8), ("npages", 8, 8), ("ret", 16, 8)]
    assert parse_c(mbox).member_exits["snp_req_certs"] == ("KVM_EXIT_SNP_REQ_CERTS",)
    assert parse_c(two).struct("snp_req_certs") == parse_c(mbox).struct("snp_req_certs")


def _mail(n: int, subject: str, before: str, after: str, context: int = 3) -> str:
    """A format-patch mail of ``before`` -> ``after`` (kvm.h), diff by :mod:`difflib`."""
    diff = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        "a/include/uapi/linux/kvm.h",
        "b/include/uapi/linux/kvm.h",
        n=context,
    )
    return (
        f"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        f"From: A <a@b>\nSubject: [PATCH {n}/2] {subject}\n\n---\n"
        "diff --git a/include/uapi/linux/kvm.h b/include/uapi/linux/kvm.h\n" + "".join(diff)
    )


def test_a_series_gives_the_members_and_exits_it_adds_not_its_context(tmp_path: Path) -> None:
    """Context lines show the base (``KVM_EXIT_TDX 40``, ``} tdx;``); ``+`` lines, the change."""
    series = tmp_path / "series.mbox"
    series.write_text(SERIES)
    imported = import_file(series, None)
    assert list(imported.union_members) == ["snp_req_certs"]
    assert dict(imported.exits) == {"KVM_EXIT_SNP_REQ_CERTS": 41}


def test_a_member_shown_again_as_context_is_still_added(tmp_path: Path) -> None:
    """Patch 2 quotes patch 1's whole ``certs`` member as context: both members are the series'."""
    one = BASE.replace("\t\t} tdx;\n", "\t\t} tdx;\n\t\tstruct {\n\t\t\t__u64 gpa;\n\t\t} certs;\n")
    two = one.replace(
        "\t\t} certs;\n", "\t\t} certs;\n\t\tstruct {\n\t\t\t__u64 vector;\n\t\t} notify;\n"
    )
    series = tmp_path / "series.mbox"
    series.write_text(
        _mail(1, "add certs", BASE, one) + _mail(2, "add notify", one, two, context=8)
    )
    assert list(import_file(series, None).union_members) == ["certs", "notify"]


def test_tdx_2025_proposal_is_what_its_two_patches_add(tmp_path: Path) -> None:
    """[PATCH 1/2] adds ``KVM_EXIT_TDX_GET_QUOTE 41``, [PATCH 2/2] ``..._SETUP_EVENT_NOTIFY 42``.

    <20250402001557.173586-2-binbin.wu@linux.intel.com> and -3-: ``struct { __u64 ret;
    __u64 gpa; __u64 size; } tdx_get_quote;`` then ``struct { __u64 ret; __u8 vector; }
    tdx_setup_event_notify;``, the second hunk quoting the first's member as context. The
    registered ``tdx-separate-exits-2025`` must read identical to the series.
    """
    import coco_tdx.plugin
    from coco_core.registry import Registry
    from coco_core.review.compare import compare_abis

    base = BASE.replace("40\n", "39\n").replace("KVM_EXIT_TDX ", "KVM_EXIT_MEMORY_FAULT")
    base = base.replace("/* KVM_EXIT_TDX */", "/* KVM_EXIT_MEMORY_FAULT */")
    base = base.replace("} tdx;", "} memory_fault;")
    one = base.replace("39\n", "39\n#define KVM_EXIT_TDX_GET_QUOTE    41\n").replace(
        "\t\t} memory_fault;\n",
        "\t\t} memory_fault;\n\t\t/* KVM_EXIT_TDX_GET_QUOTE */\n\t\tstruct {\n"
        "\t\t\t__u64 ret;\n\t\t\t__u64 gpa;\n\t\t\t__u64 size;\n\t\t} tdx_get_quote;\n",
    )
    two = one.replace("41\n", "41\n#define KVM_EXIT_TDX_SETUP_EVENT_NOTIFY 42\n").replace(
        "\t\t} tdx_get_quote;\n",
        "\t\t} tdx_get_quote;\n\t\t/* KVM_EXIT_TDX_SETUP_EVENT_NOTIFY */\n\t\tstruct {\n"
        "\t\t\t__u64 ret;\n\t\t\t__u8 vector;\n\t\t} tdx_setup_event_notify;\n",
    )
    series = tmp_path / "tdx-2025.mbox"
    series.write_text(_mail(2, "notify", one, two) + _mail(1, "quote", base, one))
    proposal = Registry.from_plugins([coco_tdx.plugin]).abi("tdx-separate-exits-2025")
    c = compare_abis(proposal, import_file(series, None))
    assert [(m.member_a, m.member_b, m.identical) for m in c.members] == [
        ("tdx_get_quote", "tdx_get_quote", True),
        ("tdx_setup_event_notify", "tdx_setup_event_notify", True),
    ]
    assert c.exits == ()
