# SPDX-License-Identifier: Apache-2.0
"""A fictitious TEE vendor, ``example``: the smallest complete third-party plugin.

It exists to prove the extension path end to end: it is installed as its own
distribution (``coco-example``) with an entry point in the ``coco_core`` group,
and ``tests/test_example_plugin.py`` runs the conformance kit against it.
Copy it to start a real plugin.

The ABI ``example-1`` is not a kernel: it adds one exit,
``KVM_EXIT_EXAMPLE_ATTEST`` = 44. Exit number 44 is *not allocated* in
mainline Linux (7.2 ends at ``KVM_EXIT_SNP_REQ_CERTS`` 43; two unmerged
proposals, planes and arm64 TIO, each want 44), which is why a fictitious
vendor may borrow it here and nowhere else. Its union member is::

    /* KVM_EXIT_EXAMPLE_ATTEST */
    struct {
            __u64 gpa;      /* in: shared buffer for the evidence */
            __u32 len;      /* in: its size in bytes */
            __u32 ret;      /* out: EXAMPLE_* status, copied to the guest's RAX */
    } example_attest;

The guest asks for evidence over a buffer, which is what a TDX GetQuote is
too, so the exit decodes to the neutral
:class:`~coco_core.requests.QuoteRequest` and any VMM's quote handler answers
it unchanged.
"""

from __future__ import annotations

from coco_core.plugin import (
    EXIT_REASON,
    EXIT_UNION_OFFSET,
    EXIT_UNION_SIZE,
    KVM_RUN_FRAME,
    U32,
    U64,
    AbiPart,
    CoCoStatus,
    CompletionDuty,
    CStruct,
    ErrorSpace,
    ExitDecoder,
    ExitImage,
    GuestCall,
    GuestCpu,
    GuestView,
    KernelContext,
    KvmRunRejected,
    Landing,
    Layout,
    ModelPart,
    NeutralRequest,
    Outcome,
    QuoteRequest,
    Registrar,
    StatusField,
    c_field,
    c_struct,
    hookimpl,
    run_offset,
)

__all__ = [
    "ABI",
    "ATTEST",
    "EXAMPLE_STATUS",
    "KVM_EXIT_EXAMPLE_ATTEST",
    "KvmExitExampleAttest",
    "coco_register_vendor",
]

SOURCE = "example plugin for the conformance kit"

#: Unallocated in mainline (Linux 7.2 ends at 43); fictitious vendor only.
KVM_EXIT_EXAMPLE_ATTEST = 44

ABI = "example-1"


@c_struct("struct kvm_exit_example_attest", size=0x10, source=SOURCE)
class KvmExitExampleAttest(CStruct):
    """
    struct kvm_exit_example_attest {
            __u64 gpa;
            __u32 len;
            __u32 ret;
    };
    """

    gpa: int = c_field(U64, offset=0x00)
    len: int = c_field(U32, offset=0x08)
    ret: int = c_field(U32, offset=0x0C)


_U = EXIT_UNION_OFFSET
_RET = run_offset(KvmExitExampleAttest, "ret")  # kvm_run.example_attest.ret
_unpack = KvmExitExampleAttest._c_struct.unpack_from

#: ``kvm_run.example_attest.ret``: the value KVM copies into the guest's RAX.
EXAMPLE_STATUS = ErrorSpace(
    id="example.status",
    title="example_attest.ret, copied verbatim into the guest's RAX",
    width=32,
    landing=Landing.KVM_RUN_VERBATIM,
    names={0: "EXAMPLE_OK", 1: "EXAMPLE_RETRY", 2: "EXAMPLE_INVALID", 3: "EXAMPLE_ERROR"},
    primary={
        CoCoStatus.OK: 0,
        CoCoStatus.RETRY: 1,
        CoCoStatus.INVALID: 2,
        CoCoStatus.ERROR: 3,
    },
    fallbacks={
        CoCoStatus.BUFFER_TOO_SMALL: CoCoStatus.INVALID,
        CoCoStatus.UNSUPPORTED: CoCoStatus.ERROR,
        CoCoStatus.IN_FLIGHT: CoCoStatus.RETRY,
        CoCoStatus.SERVICE_UNAVAILABLE: CoCoStatus.ERROR,
    },
    source=SOURCE,
)


def _decode_attest(run: memoryview) -> NeutralRequest:
    gpa, length, _ret = _unpack(run, _U)
    return QuoteRequest(gpa, length)


def _write_attest(
    run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None
) -> None:
    run[_RET : _RET + 4] = raw.to_bytes(4, "little")


ATTEST = ExitDecoder(
    name="KVM_EXIT_EXAMPLE_ATTEST",
    reason=KVM_EXIT_EXAMPLE_ATTEST,
    discriminator=None,
    vendor="example",
    request_type=QuoteRequest,
    decode=_decode_attest,
    write=_write_attest,
    error_space=EXAMPLE_STATUS,
    status_field=StatusField(offset=_RET, fmt="<I", field="kvm_run.example_attest.ret"),
)


def _union_member() -> Layout:
    """``example_attest`` as kvm_run nests it: an anonymous struct."""
    lay = KvmExitExampleAttest.c_layout()
    return Layout("struct", "struct", lay.members, lay.size, lay.align, lay.packed, SOURCE)


# -- the kernel's side, for the kernel model ------------------------------------------


def _enter_attest(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    """The guest put the buffer in RCX and its length in RDX; exit to userspace."""
    run = ctx.run
    run[_U : _U + EXIT_UNION_SIZE] = bytes(EXIT_UNION_SIZE)
    run[EXIT_REASON : EXIT_REASON + 4] = KVM_EXIT_EXAMPLE_ATTEST.to_bytes(4, "little")
    KvmExitExampleAttest(cpu.reg("rcx"), cpu.reg("rdx") & 0xFFFF_FFFF, 0).pack_into(run, _U)
    return ExitImage("KVM_EXIT_EXAMPLE_ATTEST", KVM_EXIT_EXAMPLE_ATTEST)


def _resume_attest(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    """Copy ``ret`` into RAX; the fictitious kernel rejects values above EXAMPLE_ERROR."""
    ret = int.from_bytes(ctx.run[_RET : _RET + 4], "little")
    if ret not in EXAMPLE_STATUS.names:
        raise KvmRunRejected(f"example_attest.ret = {ret:#x} is not an EXAMPLE_* status")
    cpu.regs["rax"] = ret
    return GuestView({"rax": ret}, f"RAX={EXAMPLE_STATUS.names[ret]}")


MODEL = ModelPart(
    vendor="example",
    calls=(
        GuestCall(
            name="example.attest",
            description="ask for evidence over a shared buffer (fictitious, " + SOURCE + ")",
            enter=_enter_attest,
            resume=_resume_attest,
            since=ABI,
        ),
    ),
)


@hookimpl
def coco_register_vendor(registrar: Registrar) -> None:
    """Register the ``example`` vendor, its ABI, error space and kernel model."""
    registrar.add_vendor("example", "Example TEE (fictitious)")
    registrar.add_abi(
        AbiPart(
            abi=ABI,
            vendor="example",
            source=SOURCE,
            released=False,
            exits={"KVM_EXIT_EXAMPLE_ATTEST": KVM_EXIT_EXAMPLE_ATTEST},
            union_members={"example_attest": _union_member()},
            error_spaces=(EXAMPLE_STATUS,),
            duties=(
                CompletionDuty(
                    exit_name="KVM_EXIT_EXAMPLE_ATTEST",
                    field="kvm_run.example_attest.ret",
                    kernel_action="copied verbatim into the guest's RAX",
                    rejects="values other than EXAMPLE_* fail KVM_RUN with EINVAL (fictitious)",
                ),
            ),
            decoders=(ATTEST,),
            frame=KVM_RUN_FRAME,
            notes=("KVM_EXIT_EXAMPLE_ATTEST 44 is unallocated in mainline Linux",),
            order="9999-example",
        )
    )
    registrar.add_model(MODEL)
