# SPDX-License-Identifier: Apache-2.0
"""Synthetic ABI parts for the ABI tests: a v1-like KVM_EXIT_COCO and a released-like SNP exit."""

from __future__ import annotations

import types

from coco_core.abi import AbiPart, CompletionDuty, ExitDecoder
from coco_core.errorspace import ErrorSpace, Landing
from coco_core.generic.uapi import KVM_RUN_FRAME
from coco_core.hookspecs import hookimpl
from coco_core.layout import U8, U32, U64, struct_of, union_of
from coco_core.registry import Registrar, Registry
from coco_core.requests import CertificateRequest, NeutralRequest
from coco_core.status import CoCoStatus

V1_COCO = struct_of(
    "struct",
    [
        ("nr", U8),
        ("pad0", U8, 7),
        (
            None,
            union_of(
                "union",
                [("req_certs", struct_of("struct", [("gfn", U64), ("npages", U32), ("ret", U32)]))],
            ),
        ),
    ],
)
REQ_CERTS = struct_of(
    "struct kvm_exit_snp_req_certs", [("gpa", U64), ("npages", U64), ("ret", U64)]
)

V1_SPACE = ErrorSpace(
    id="test.coco_v1",
    title="v1 hybrid codes",
    width=32,
    landing=Landing.KVM_RUN_TRANSLATED,
    names={0: "OK", 1: "KVM_EXIT_COCO_REQ_CERTS_ERR_INVALID_LEN", 1 << 31: "ERR_GENERIC"},
    primary={
        CoCoStatus.OK: 0,
        CoCoStatus.BUFFER_TOO_SMALL: 1,
        CoCoStatus.ERROR: 1 << 31,
    },
    fallbacks={
        s: CoCoStatus.ERROR
        for s in CoCoStatus
        if s not in (CoCoStatus.OK, CoCoStatus.BUFFER_TOO_SMALL, CoCoStatus.ERROR)
    },
)
ERRNO_SPACE = ErrorSpace(
    id="test.errno",
    title="errno",
    width=64,
    landing=Landing.KVM_RUN_TRANSLATED,
    names={0: "0", 5: "EIO", 11: "EAGAIN", 28: "ENOSPC", 1: "EPERM"},
    primary={
        CoCoStatus.OK: 0,
        CoCoStatus.RETRY: 11,
        CoCoStatus.BUFFER_TOO_SMALL: 28,
        CoCoStatus.ERROR: 5,
    },
    decodes={1: CoCoStatus.INVALID},
    fallbacks={
        s: CoCoStatus.ERROR
        for s in CoCoStatus
        if s not in (CoCoStatus.OK, CoCoStatus.RETRY, CoCoStatus.BUFFER_TOO_SMALL, CoCoStatus.ERROR)
    },
)


def _decode(run: memoryview) -> NeutralRequest:
    return CertificateRequest(0, 0)


def _decoder(name: str, reason: int, space: ErrorSpace) -> ExitDecoder:
    return ExitDecoder(
        name=name,
        reason=reason,
        discriminator=None,
        vendor="snp",
        request_type=CertificateRequest,
        decode=_decode,
        write=None,
        error_space=space,
    )


V1 = AbiPart(
    abi="test-coco-v1",
    vendor="snp",
    source="synthetic v1",
    released=False,
    exits={"KVM_EXIT_COCO": 40},
    union_members={"coco": V1_COCO},
    error_spaces=(V1_SPACE,),
    duties=(
        CompletionDuty(
            exit_name="KVM_EXIT_COCO",
            field="kvm_run.coco.req_certs.ret",
            kernel_action="translates ret",
        ),
    ),
    decoders=(_decoder("KVM_EXIT_COCO", 40, V1_SPACE),),
    order="2024-06",
    frame=KVM_RUN_FRAME,
    renumbers="synthetic proposal: 40 before KVM_EXIT_TDX took it",
)
RELEASED = AbiPart(
    abi="test-snp-released",
    vendor="snp",
    source="synthetic released",
    released=True,
    exits={"KVM_EXIT_SNP_REQ_CERTS": 43},
    union_members={"snp_req_certs": REQ_CERTS},
    error_spaces=(ERRNO_SPACE,),
    duties=(
        CompletionDuty(
            exit_name="KVM_EXIT_SNP_REQ_CERTS",
            field="kvm_run.snp_req_certs.ret",
            kernel_action="sets SW_EXITINFO2",
        ),
    ),
    decoders=(_decoder("KVM_EXIT_SNP_REQ_CERTS", 43, ERRNO_SPACE),),
    order="2026-01",
    frame=KVM_RUN_FRAME,
)


def make_plugin(*parts: AbiPart) -> types.ModuleType:
    """A plugin module object registering ``parts``."""
    mod = types.ModuleType("coco_test_abi_plugin")

    @hookimpl
    def coco_register_vendor(registrar: Registrar) -> None:
        registrar.add_vendor("snp", "synthetic SNP")
        for p in parts:
            registrar.add_abi(p)

    mod.coco_register_vendor = coco_register_vendor  # type: ignore[attr-defined]
    return mod


def registry() -> Registry:
    """The core's built-in ABIs plus the two synthetic ones."""
    return Registry.from_plugins([make_plugin(V1, RELEASED)])
