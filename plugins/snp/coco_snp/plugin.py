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
        kernel_action="0: firmware called; ERR_INVALID_LEN (1): RBX <- npages, SW_EXITINFO2 = "
        "INVALID_LEN << 32; any other non-zero: SW_EXITINFO2 = SNP_GUEST_VMM_ERR_GENERIC "
        "(BIT(31)) << 32, ret not passed through ([PATCH v1 5/5] snp_complete_req_certs)",
        rejects="no check: every value is accepted",
    )
    v2_duty = CompletionDuty(
        exit_name=_COCO,
        field="kvm_run.coco.ret (u32), kvm_run.coco.req_certs.npages",
        kernel_action="errno: ENOSPC: INVALID_LEN and RBX <- npages; EAGAIN: BUSY; other non-zero: "
        "GENERIC",
        rejects="no check: other values are the generic error",
    )
    v3_duty = CompletionDuty(
        exit_name=_RC,
        field="kvm_run.snp_req_certs.ret (u32), kvm_run.snp_req_certs.npages (u32)",
        kernel_action=v2_duty.kernel_action,
        rejects="no check: other values are the generic error ([PATCH v5 1/1] "
        "snp_complete_req_certs)",
    )
    v6_duty = CompletionDuty(
        exit_name=_RC,
        field="kvm_run.snp_req_certs.ret, .npages (u64)",
        kernel_action=_REQ_CERTS_DUTY.kernel_action + "; enabled by KVM_SEV_SNP_ENABLE_REQ_CERTS, "
        "probed with device attribute KVM_X86_SEV_SNP_REQ_CERTS = 1",
        rejects="unknown ret: KVM_RUN -EINVAL (the strict switch asked for in the v5 review "
        "<Z78uu3VNoIu48--7@google.com>)",
    )
    cover = "thread 'SEV-SNP: Add KVM support for attestation and KVM_EXIT_COCO'"
    v3_notes = ("KVM_CAP_EXIT_SNP_REQ_CERTS 239 enables it", "gfn, not gpa: gpa = gfn << 12")
    return (
        _proposal(
            "kvm-exit-coco-v1",
            "[PATCH v1] SEV-SNP: Add KVM support for attestation and KVM_EXIT_COCO, 2024-06-21 "
            "(4/5 <20240621134041.3170480-5-michael.roth@amd.com>, 5/5 ...-6-)",
            "2024-06-21",
            {**pre_tdx, "KVM_EXIT_COCO": KVM_EXIT_COCO},
            complete.COCO_V1_REQ_CERTS,
            duty=v1_duty,
            notes=(
                "KVM_CAP_EXIT_COCO 237; nr 0 = KVM_EXIT_COCO_REQ_CERTS",
                "hybrid error space: ret is KVM-defined but GHCB-valued (rejected in review, "
                "<Zn8YM-s0TRUk-6T-@google.com>)",
                "v1 5/5: any ret other than 0 and ERR_INVALID_LEN becomes GENERIC (BIT(31)); "
                "v1 3/5: a misaligned RAX or a failed empty-table write is GENERIC too, a "
                "misaligned request/response page fails KVM_RUN with -EINVAL",
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
            "[PATCH v3] SEV-SNP: Add KVM support for SNP certificate fetching, 2024-12-18 "
            "<20241218152226.1113411-1-michael.roth@amd.com>",
            "2024-12-18",
            {**pre_tdx, _RC: KVM_EXIT_SNP_REQ_CERTS_V3},
            complete.REQ_CERTS_V3,
            duty=v3_duty,
            notes=(*v3_notes, "KVM_EXIT_COCO dropped after PUCK (v3 cover letter)"),
        ),
        _proposal(
            "snp-req-certs-v4",
            "[PATCH v4 1/1] KVM: Introduce KVM_EXIT_SNP_REQ_CERTS for SNP certificate-fetching, "
            "2025-01-20 <20250120215818.522175-2-huibo.wang@amd.com>",
            "2025-01-20",
            {**pre_tdx, _RC: KVM_EXIT_SNP_REQ_CERTS_V3},
            complete.REQ_CERTS_V3,
            duty=v3_duty,
            notes=v3_notes,
        ),
        _proposal(
            "snp-req-certs-v5",
            "[PATCH v5 1/1] KVM: Introduce KVM_EXIT_SNP_REQ_CERTS for SNP certificate-fetching, "
            "2025-02-19 <20250219151505.3538323-2-michael.roth@amd.com>",
            "2025-02-19",
            {**pre_tdx, _RC: KVM_EXIT_SNP_REQ_CERTS_V3},
            complete.REQ_CERTS_V3,
            duty=v3_duty,
            notes=(
                *v3_notes,
                "reviewed in <Z78uu3VNoIu48--7@google.com> (2025-02-26): u64 fields, a device "
                "attribute instead of the capability, EIO only, reject unknown ret",
            ),
        ),
        _proposal(
            "snp-req-certs-v6",
            "[PATCH v6 1/2] KVM: Introduce KVM_EXIT_SNP_REQ_CERTS for SNP certificate-fetching, "
            "2025-04-28 <20250428195113.392303-2-michael.roth@amd.com>",
            "2025-04-28",
            {**pre_tdx, _RC: KVM_EXIT_SNP_REQ_CERTS_V3},
            complete.REQ_CERTS_V6,
            duty=v6_duty,
            notes=(
                "u64 gfn (gpa_to_gfn(data_gpa)), npages and ret; still exit 40",
                "KVM_SEV_SNP_ENABLE_REQ_CERTS (103) instead of a capability; device attribute "
                "KVM_X86_SEV_SNP_REQ_CERTS = 1 ([PATCH v6 2/2] "
                "<20250428195113.392303-3-michael.roth@amd.com>)",
                "strict ret switch: 0, ENOSPC, EAGAIN, EIO; anything else fails KVM_RUN",
                "reviewed in <aC3m1uMmp28gSm3r@google.com> (2025-05-21): gpa instead of gfn, "
                "done in v7",
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
            notes=(
                "posted as exit 42; merged as 43 (ARM_LDST64B took 42), §1.2",
                "gpa instead of v6's gfn; device attribute KVM_X86_SEV_SNP_REQ_CERTS = 2",
            ),
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
