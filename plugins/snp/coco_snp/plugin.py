# SPDX-License-Identifier: Apache-2.0
"""The SNP plugin's registration: vendor, ABIs (released and proposed), model, CLI.

Imports nothing that needs ``cryptography``: the certificate store and the service are
imported by the code that uses them, so ``coco --help`` stays fast.

Released kernels: one part per row of :data:`coco_core.kernels.RELEASES`. Every release
has ``KVM_SYSTEM_EVENT_SEV_TERM`` and the page-state changes through the core's
``KVM_HC_MAP_GPA_RANGE`` decoder (SNP host support exists since 6.11); a release with
:data:`~coco_core.kernels.SNP_REQ_CERTS_EXIT` (7.0 on) has ``KVM_EXIT_SNP_REQ_CERTS``
(43) too. Before that, KVM answers extended guest requests itself with an empty table.

Proposals (``released=False``): each defines its own exit numbers. Their ``exits`` are
the generic set of Linux 6.16 (0..39, from the core) without ``KVM_EXIT_TDX`` for
revisions posted before TDX took 40 (June 2025), plus the proposal's own exit; v7
(2026-01-09) sits on a tree with ``KVM_EXIT_TDX`` 40 and ``KVM_EXIT_ARM_SEA`` 41. They
carry the generic union members, the core's legacy MAP_GPA_RANGE decoder (every
proposal predates the 7.2 ret check) and SEV_TERM, so a VMM on such a kernel uses the
same handlers by naming the ABI.
"""

from __future__ import annotations

from coco_core.plugin import (
    HYPERCALL_NR,
    KVM_RUN_FRAME,
    MAP_GPA_RANGE_LEGACY,
    SYSTEM_EVENT_TYPE,
    AbiPart,
    CompletionDuty,
    Discriminator,
    ErrorSpace,
    ExitDecoder,
    KvmExitReason,
    Layout,
    Registrar,
    generic_union_members,
    hookimpl,
    kernels,
    map_gpa_decoder,
    released_exits,
)
from coco_snp import complete, doorbell, ghcb
from coco_snp.model import MODEL
from coco_snp.uapi import (
    KVM_EXIT_COCO,
    KVM_EXIT_SNP_REQ_CERTS,
    KVM_EXIT_SNP_REQ_CERTS_V3,
    KVM_EXIT_SNP_REQ_CERTS_V7,
    union_members,
)

__all__ = ["PROPOSALS", "coco_register_vendor", "parts"]

_RC = "KVM_EXIT_SNP_REQ_CERTS"
_COCO = "KVM_EXIT_COCO/KVM_EXIT_COCO_REQ_CERTS"
_TERM = CompletionDuty(
    exit_name="KVM_EXIT_SYSTEM_EVENT/KVM_SYSTEM_EVENT_SEV_TERM",
    field="(none)",
    kernel_action="no completion: the guest asked to terminate (data[0] = GHCB MSR value or GHCB "
    "GPA)",
)
_PSC = CompletionDuty(
    exit_name="KVM_EXIT_HYPERCALL/KVM_HC_MAP_GPA_RANGE (SNP PSC)",
    field="kvm_run.hypercall.ret",
    kernel_action="0: entries done (GHCB: cur_page/cur_entry, next batch) or GHCB_MSR_PSC_RESP; "
    "non-zero: VMGEXIT_PSC_ERROR_GENERIC or GHCB_MSR_PSC_RESP_ERROR (no retry on SNP)",
)
_REQ_CERTS_DUTY = CompletionDuty(
    exit_name=_RC,
    field="kvm_run.snp_req_certs.ret, kvm_run.snp_req_certs.npages",
    kernel_action="ret → SW_EXITINFO2 table (0: firmware called; ENOSPC: INVALID_LEN; EAGAIN: "
    "BUSY; "
    "EIO: GENERIC); ENOSPC: RBX ← npages",
    rejects="unknown ret: KVM_RUN -EINVAL",
)
_GUEST_SPACES: tuple[ErrorSpace, ...] = (ghcb.GHCB_VMM, ghcb.PSC, ghcb.GHCB_MSR_PSC)


def _released(k: kernels.Kernel) -> AbiPart:
    """The SNP part of released kernel ``k``."""
    source = f"Linux {k.name.removeprefix('linux-')} ({k.date}), {k.header}"
    if not kernels.has(k.name, kernels.SNP_REQ_CERTS_EXIT):
        return AbiPart(
            abi=k.name,
            vendor="snp",
            source=f"{source}: SEV_TERM; SNP host support since 6.11",
            released=True,
            error_spaces=(ghcb.PSC, ghcb.GHCB_MSR_PSC),
            duties=(_PSC, _TERM),
            decoders=(complete.SEV_TERM,),
            notes=("no KVM_EXIT_SNP_REQ_CERTS: KVM writes an empty table (24 zero bytes)",),
            order=k.date,
        )
    return AbiPart(
        abi=k.name,
        vendor="snp",
        source=source,
        released=True,
        exits={_RC: KVM_EXIT_SNP_REQ_CERTS},
        union_members=union_members("released"),
        error_spaces=(ghcb.REQ_CERTS, *_GUEST_SPACES),
        duties=(_REQ_CERTS_DUTY, _PSC, _TERM),
        decoders=(complete.REQ_CERTS_DECODER, complete.SEV_TERM),
        notes=("enable with KVM_SEV_SNP_ENABLE_REQ_CERTS (103, computed) before any vCPU exists",),
        order=k.date,
    )


def _generic_exits(with_tdx: bool) -> dict[str, int]:
    exits = released_exits("linux-6.16")  # the tree every proposal was posted against
    if not with_tdx:
        del exits["KVM_EXIT_TDX"]
    return exits


def _proposal(
    abi: str,
    source: str,
    order: str,
    exits: dict[str, int],
    decoder: ExitDecoder,
    *,
    duty: CompletionDuty,
    notes: tuple[str, ...],
    discriminators: tuple[Discriminator, ...] = (),
    renumbers: str = "posted before its exit number was allocated: mainline gave 40 to "
    "KVM_EXIT_TDX (6.16) and KVM_EXIT_SNP_REQ_CERTS 43 (7.0), kernel-abi.md §1.2",
) -> AbiPart:
    members: dict[str, Layout] = generic_union_members()
    members.update(union_members(abi))
    space = decoder.error_space
    assert space is not None
    guest = ghcb.GHCB_VMM_V1 if abi == "kvm-exit-coco-v1" else ghcb.GHCB_VMM
    return AbiPart(
        abi=abi,
        vendor="snp",
        source=source,
        released=False,
        exits=exits,
        union_members=members,
        error_spaces=(space, guest, ghcb.PSC, ghcb.GHCB_MSR_PSC, MAP_GPA_RANGE_LEGACY),
        duties=(duty, _PSC, _TERM),
        decoders=(decoder, complete.SEV_TERM, map_gpa_decoder(ret_checked=False)),
        discriminators=(HYPERCALL_NR, SYSTEM_EVENT_TYPE, *discriminators),
        notes=notes,
        order=order,
        frame=KVM_RUN_FRAME,
        renumbers=renumbers,
    )


def _proposals() -> tuple[AbiPart, ...]:
    pre_tdx = _generic_exits(with_tdx=False)
    v1_duty = CompletionDuty(
        exit_name=_COCO,
        field="kvm_run.coco.req_certs.ret (u32), kvm_run.coco.req_certs.npages",
        kernel_action="ret is the GHCB VMM error: 0 firmware called; ERR_INVALID_LEN (1): RBX ← "
        "npages; "
        "ERR_GENERIC (1 << 31): SW_EXITINFO2 = BIT(31) << 32",
        rejects="no check (inferred)",
    )
    v2_duty = CompletionDuty(
        exit_name=_COCO,
        field="kvm_run.coco.ret (u32), kvm_run.coco.req_certs.npages",
        kernel_action="errno: ENOSPC: INVALID_LEN and RBX ← npages; EAGAIN: BUSY; other non-zero: "
        "GENERIC",
        rejects="no check: other values are the generic error",
    )
    v3_duty = CompletionDuty(
        exit_name=_RC,
        field="kvm_run.snp_req_certs.ret (u32), kvm_run.snp_req_certs.npages (u32)",
        kernel_action=v2_duty.kernel_action,
        rejects="no check (inferred from v2)",
    )
    v6_duty = CompletionDuty(
        exit_name=_RC,
        field="kvm_run.snp_req_certs.ret, .npages (u64)",
        kernel_action=v2_duty.kernel_action,
        rejects="UNVERIFIED",
    )
    cover = "thread 'SEV-SNP: Add KVM support for attestation and KVM_EXIT_COCO'"
    v3_notes = ("KVM_CAP_EXIT_SNP_REQ_CERTS 239 enables it", "gfn, not gpa: gpa = gfn << 12")
    return (
        _proposal(
            "kvm-exit-coco-v1",
            "[PATCH v1] SEV-SNP: Add KVM support for attestation and KVM_EXIT_COCO, 2024-06-21",
            "2024-06-21",
            {**pre_tdx, "KVM_EXIT_COCO": KVM_EXIT_COCO},
            complete.COCO_V1_REQ_CERTS,
            duty=v1_duty,
            notes=(
                "KVM_CAP_EXIT_COCO 237; nr 0 = KVM_EXIT_COCO_REQ_CERTS",
                "hybrid error space: ret is the GHCB VMM error (rejected in review, §5 item 2)",
                "inferred: KVM passed any other ret through as the VMM error",
            ),
            discriminators=(complete.COCO_NR,),
        ),
        _proposal(
            "kvm-exit-coco-v2",
            f"[PATCH v2] KVM_EXIT_COCO, 2024-11-19, <20241119133513.3612633-*> ({cover})",
            "2024-11-19",
            {**pre_tdx, "KVM_EXIT_COCO": KVM_EXIT_COCO},
            complete.COCO_V2_REQ_CERTS,
            duty=v2_duty,
            notes=("KVM_CAP_EXIT_COCO 239; ret moved to the common header, errno",),
            discriminators=(complete.COCO_NR,),
        ),
        _proposal(
            "snp-req-certs-v3",
            f"[PATCH v3] KVM_EXIT_SNP_REQ_CERTS, Dec 2024 ({cover})",
            "2024-12",
            {**pre_tdx, _RC: KVM_EXIT_SNP_REQ_CERTS_V3},
            complete.REQ_CERTS_V3,
            duty=v3_duty,
            notes=v3_notes,
        ),
        _proposal(
            "snp-req-certs-v4",
            "[PATCH v4] KVM_EXIT_SNP_REQ_CERTS, 2025 (date UNVERIFIED; layout as v3, §5 item 6)",
            "2025-01",
            {**pre_tdx, _RC: KVM_EXIT_SNP_REQ_CERTS_V3},
            complete.REQ_CERTS_V3,
            duty=v3_duty,
            notes=(*v3_notes, "date and details UNVERIFIED beyond 'v3-v5' in kernel-abi.md §5"),
        ),
        _proposal(
            "snp-req-certs-v5",
            "[PATCH v5] KVM_EXIT_SNP_REQ_CERTS, by Apr 2025 (date UNVERIFIED; layout as v3)",
            "2025-03",
            {**pre_tdx, _RC: KVM_EXIT_SNP_REQ_CERTS_V3},
            complete.REQ_CERTS_V3,
            duty=v3_duty,
            notes=(*v3_notes, "date and details UNVERIFIED beyond 'v3-v5' in kernel-abi.md §5"),
        ),
        _proposal(
            "snp-req-certs-v6",
            "[PATCH v6] KVM_EXIT_SNP_REQ_CERTS, 2025-04-28 (review <aC3m1uMmp28gSm3r@google.com>)",
            "2025-04-28",
            {**pre_tdx, _RC: KVM_EXIT_SNP_REQ_CERTS_V3},
            complete.REQ_CERTS_V6,
            duty=v6_duty,
            notes=(
                "u64 gpa/npages/ret; KVM_SEV_SNP_ENABLE_REQ_CERTS instead of a capability",
                "exit number 40 UNVERIFIED (assumed as v3..v5)",
                "lenient ret rule UNVERIFIED: the strict switch and EIO-only were v6 review "
                "requests, done in v7",
            ),
        ),
        _proposal(
            "snp-req-certs-v7",
            "[PATCH v7 1/2] KVM: Introduce KVM_EXIT_SNP_REQ_CERTS, 2026-01-09 "
            "<20260109231732.1160759-2-michael.roth@amd.com>",
            "2026-01-09",
            {
                **_generic_exits(with_tdx=True),
                "KVM_EXIT_ARM_SEA": int(KvmExitReason.ARM_SEA),
                _RC: KVM_EXIT_SNP_REQ_CERTS_V7,
            },
            complete.REQ_CERTS_V7,
            duty=_REQ_CERTS_DUTY,
            notes=("posted as exit 42; merged as 43 (ARM_LDST64B took 42), §1.2",),
        ),
    )


#: The proposal ABI names, oldest first.
PROPOSALS = (
    "kvm-exit-coco-v1",
    "kvm-exit-coco-v2",
    "snp-req-certs-v3",
    "snp-req-certs-v4",
    "snp-req-certs-v5",
    "snp-req-certs-v6",
    "snp-req-certs-v7",
)


def parts() -> tuple[AbiPart, ...]:
    """Every ABI part this plugin contributes, released first."""
    return (*(_released(k) for k in kernels.released()), *_proposals())


@hookimpl
def coco_register_vendor(registrar: Registrar) -> None:
    """Register the SNP vendor, its ABIs, its kernel model and ``coco snp``."""
    registrar.add_vendor("snp", "AMD SEV-SNP")
    for part in parts():
        registrar.add_abi(part)
    registrar.add_error_space(ghcb.GHCB_VMM_V1)
    # The kernel's calls, and the emulated TEE's doorbell routing as a second part.
    registrar.add_model(MODEL)
    registrar.add_model(doorbell.DOORBELL_MODEL)
    registrar.add_scenario(
        "snp",
        "guest-requests",
        "coco_snp.demo:scenario",
        "certificates (INVALID_LEN, then the table), page-state changes, termination",
    )
    registrar.add_command(
        "snp",
        "coco_snp.cli:configure_parser",
        "AMD SEV-SNP: reports, certificates, certificate tables",
    )
