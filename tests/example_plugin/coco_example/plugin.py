# SPDX-License-Identifier: Apache-2.0
"""A fictitious RISC-V TEE vendor, ``example``: the smallest complete third-party plugin.

It exists to prove the extension path end to end: it is installed as its own
distribution (``coco-example``) with an entry point in the ``coco_core`` group,
``tests/testing/test_example_plugin.py`` runs the conformance kit against it,
and the kit's mutation suite (:mod:`coco_core.testing.mutations`) seeds every
bug class the kit claims to catch into copies of this file. Copy it to start a
real plugin.

The TEE is a RISC-V one: its layouts are declared under the LP64
little-endian C ABI (:data:`~coco_core.plugin.LP64_LE`: unsigned ``char``),
its guest registers are RISC-V's (``a0`` .. ``a7``), and it reaches userspace
three ways, all in the ABI ``example-1``:

``KVM_EXIT_EXAMPLE_ATTEST`` = 44, the TEE's own (fictitious) exit
    Exit number 44 is *not allocated* in mainline Linux (7.2 ends at
    ``KVM_EXIT_SNP_REQ_CERTS`` 43; two unmerged proposals, planes and arm64
    TIO, each want 44), which is why a fictitious vendor may borrow it here
    and nowhere else. Its union member::

        /* KVM_EXIT_EXAMPLE_ATTEST */
        struct {
                __u64 gpa;      /* in: shared buffer for the evidence (guest a0) */
                __u32 len;      /* in: its size in bytes (guest a1) */
                __u32 ret;      /* out: EXAMPLE_* status, copied to the guest's a0 */
        } example_attest;

    It decodes to the neutral :class:`~coco_core.requests.QuoteRequest`, so
    any VMM's quote handler answers it unchanged.

``KVM_EXIT_RISCV_SBI`` = 35, a vendor SBI extension
    KVM forwards every SBI call of the vendor extension space (0x09000000 ..
    0x09FFFFFF) to userspace (``kvm_sbi_ext_forward_handler``, vcpu_sbi_base.c)
    and numbers it by *two* fields, ``extension_id`` and ``function_id``: a
    compound sub-call key. The example's extension is :data:`EXAMPLE_SBI_EXT`;
    function 0 converts memory (:class:`~coco_core.requests.MemoryConversion`),
    function 1 asks for evidence (:class:`~coco_core.requests.QuoteRequest`,
    ``ret[1]`` carries the size needed or written), any other function of the
    extension is answered ``SBI_ERR_NOT_SUPPORTED``, and a call of *another*
    vendor's extension is declined: it goes back to the VMM untouched.

``KVM_EXIT_SYSTEM_EVENT`` = 24, from SBI SRST
    ``sbi_system_reset`` becomes ``KVM_SYSTEM_EVENT_SHUTDOWN`` or ``_RESET``
    with the reason in ``data[0]`` (``kvm_sbi_ext_srst_handler``): a write-less
    exit that decodes to :class:`~coco_core.requests.Termination`.

The kernel's side of all three is the model part :data:`MODEL`, with the guest
states the conformance kit runs through it (:class:`~coco_core.plugin.CallExample`).
"""

from __future__ import annotations

import struct

from coco_core.plugin import (
    EXIT_REASON,
    EXIT_UNION_OFFSET,
    EXIT_UNION_SIZE,
    KVM_RUN_FRAME,
    LP64_LE,
    RISCV_REGISTERS,
    SYSTEM_EVENT_TYPE,
    U32,
    U64,
    AbiPart,
    CallExample,
    CoCoStatus,
    CompletionDuty,
    CStruct,
    Discriminator,
    ErrorSpace,
    ExitDecoder,
    ExitImage,
    GuestCall,
    GuestCpu,
    GuestView,
    KernelContext,
    KvmExitReason,
    KvmRunRejected,
    KvmSystemEventExit,
    Landing,
    Layout,
    MemoryConversion,
    ModelPart,
    NeutralRequest,
    Outcome,
    QuoteRequest,
    Registrar,
    StatusField,
    SystemEventType,
    Termination,
    Unsupported,
    VendorSpecific,
    c_field,
    c_scalar,
    c_struct,
    generic_union_members,
    hookimpl,
    run_offset,
)

__all__ = [
    "ABI",
    "ATTEST",
    "EXAMPLE_SBI",
    "EXAMPLE_SBI_CONVERT",
    "EXAMPLE_SBI_EXT",
    "EXAMPLE_SBI_GET_EVIDENCE",
    "EXAMPLE_STATUS",
    "KVM_EXIT_EXAMPLE_ATTEST",
    "MODEL",
    "SBI_CONVERT",
    "SBI_GET_EVIDENCE",
    "SBI_KEY",
    "SBI_OTHER",
    "KvmExitExampleAttest",
    "KvmRiscvSbiExit",
    "coco_register_vendor",
]

SOURCE = "example plugin for the conformance kit (a fictitious RISC-V TEE)"
#: Where the RISC-V facts come from (read at these commits).
RISCV_SOURCE = (
    "include/uapi/linux/kvm.h (Linux 7.2) riscv_sbi; arch/riscv/kvm/vcpu_sbi.c "
    "kvm_riscv_vcpu_sbi_forward, kvm_riscv_vcpu_sbi_return, kvm_riscv_vcpu_sbi_system_reset "
    "(torvalds/linux @ 023c1515); vcpu_sbi_replace.c kvm_sbi_ext_srst_handler (@ 0611f78f); "
    "arch/riscv/include/asm/sbi.h (@ 03c11eb3)"
)

#: Unallocated in mainline (Linux 7.2 ends at 43); fictitious vendor only.
KVM_EXIT_EXAMPLE_ATTEST = 44
#: The example's SBI extension: inside SBI_EXT_VENDOR_START 0x09000000 ..
#: SBI_EXT_VENDOR_END 0x09FFFFFF (asm/sbi.h), low bits "EXP"; fictitious.
EXAMPLE_SBI_EXT = 0x09455850
EXAMPLE_SBI_CONVERT = 0  # a0 GPA, a1 4 KiB pages, a2 bit 0: to private
EXAMPLE_SBI_GET_EVIDENCE = 1  # a0 GPA, a1 length; ret[1]: bytes written or needed
SBI_EXT_VENDOR_START = 0x09000000  # SBI_EXT_VENDOR_START (asm/sbi.h)
SBI_EXT_VENDOR_END = 0x09FFFFFF  # SBI_EXT_VENDOR_END (asm/sbi.h)
SBI_EXT_SRST = 0x53525354  # SBI_EXT_SRST (asm/sbi.h)
SBI_EXT_SRST_RESET = 0  # SBI_EXT_SRST_RESET
SBI_SRST_RESET_TYPE_SHUTDOWN = 0  # SBI_SRST_RESET_TYPE_SHUTDOWN
SBI_SRST_RESET_TYPE_COLD_REBOOT = 1  # SBI_SRST_RESET_TYPE_COLD_REBOOT

ABI = "example-1"
_ULONG = c_scalar("unsigned long")  # 8 bytes under LP64 (riscv-cc 4.1.1, Table 2)
_U64_MASK = (1 << 64) - 1


def _sbi(err: int) -> int:
    """An SBI error (a negative ``long``) as ``unsigned long`` ret[0] holds it."""
    return err & _U64_MASK


SBI_SUCCESS = 0  # SBI_SUCCESS
SBI_ERR_FAILURE = _sbi(-1)  # SBI_ERR_FAILURE
SBI_ERR_NOT_SUPPORTED = _sbi(-2)  # SBI_ERR_NOT_SUPPORTED
SBI_ERR_INVALID_PARAM = _sbi(-3)  # SBI_ERR_INVALID_PARAM
SBI_ERR_DENIED = _sbi(-4)  # SBI_ERR_DENIED
SBI_ERR_INVALID_ADDRESS = _sbi(-5)  # SBI_ERR_INVALID_ADDRESS


@c_struct("struct kvm_exit_example_attest", size=0x10, source=SOURCE, c_abi=LP64_LE)
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


@c_struct("struct kvm_run_riscv_sbi", size=0x50, source=RISCV_SOURCE, c_abi=LP64_LE)
class KvmRiscvSbiExit(CStruct):
    """
    /* KVM_EXIT_RISCV_SBI */
    struct {
            unsigned long extension_id;
            unsigned long function_id;
            unsigned long args[6];
            unsigned long ret[2];
    } riscv_sbi;
    """

    extension_id: int = c_field(_ULONG, offset=0x00)
    function_id: int = c_field(_ULONG, offset=0x08)
    args: tuple[int, ...] = c_field(_ULONG, offset=0x10, count=6)
    ret: tuple[int, ...] = c_field(_ULONG, offset=0x40, count=2)


_U = EXIT_UNION_OFFSET
_RET = run_offset(KvmExitExampleAttest, "ret")  # kvm_run.example_attest.ret (44)
_unpack = KvmExitExampleAttest._c_struct.unpack_from
_SBI_RET = run_offset(KvmRiscvSbiExit, "ret")  # kvm_run.riscv_sbi.ret[0] (96); ret[1] at 104
_sbi_unpack = KvmRiscvSbiExit._c_struct.unpack_from
_sysev = KvmSystemEventExit._c_struct.unpack_from

#: ``kvm_run.example_attest.ret``: the value KVM copies into the guest's a0.
EXAMPLE_STATUS = ErrorSpace(
    id="example.status",
    title="example_attest.ret, copied verbatim into the guest's a0",
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

#: ``kvm_run.riscv_sbi.ret[0]``: an SBI error code, copied into the guest's a0.
EXAMPLE_SBI = ErrorSpace(
    id="example.sbi",
    title="riscv_sbi.ret[0], an SBI error copied verbatim into the guest's a0",
    width=64,
    landing=Landing.KVM_RUN_VERBATIM,
    names={
        SBI_SUCCESS: "SBI_SUCCESS",
        SBI_ERR_FAILURE: "SBI_ERR_FAILURE",
        SBI_ERR_NOT_SUPPORTED: "SBI_ERR_NOT_SUPPORTED",
        SBI_ERR_INVALID_PARAM: "SBI_ERR_INVALID_PARAM",
        SBI_ERR_DENIED: "SBI_ERR_DENIED",
        SBI_ERR_INVALID_ADDRESS: "SBI_ERR_INVALID_ADDRESS",
    },
    primary={
        CoCoStatus.OK: SBI_SUCCESS,
        CoCoStatus.INVALID: SBI_ERR_INVALID_PARAM,
        CoCoStatus.UNSUPPORTED: SBI_ERR_NOT_SUPPORTED,
        CoCoStatus.ERROR: SBI_ERR_FAILURE,
    },
    decodes={SBI_ERR_DENIED: CoCoStatus.ERROR, SBI_ERR_INVALID_ADDRESS: CoCoStatus.INVALID},
    fallbacks={
        CoCoStatus.RETRY: CoCoStatus.ERROR,
        CoCoStatus.BUFFER_TOO_SMALL: CoCoStatus.INVALID,
        CoCoStatus.IN_FLIGHT: CoCoStatus.ERROR,
        CoCoStatus.SERVICE_UNAVAILABLE: CoCoStatus.ERROR,
    },
    source=RISCV_SOURCE,
)


# -- KVM_EXIT_EXAMPLE_ATTEST ----------------------------------------------------------


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


# -- KVM_EXIT_RISCV_SBI ------------------------------------------------------------------

#: KVM_EXIT_RISCV_SBI's compound key: (extension_id, function_id), one unpack at 32.
SBI_KEY = Discriminator(
    reason=KvmExitReason.RISCV_SBI,
    offset=run_offset(KvmRiscvSbiExit, "extension_id"),
    fmt="<QQ",
    field="kvm_run.riscv_sbi.extension_id",
    more=("kvm_run.riscv_sbi.function_id",),
)
_SBI_RET0 = StatusField(offset=_SBI_RET, fmt="<Q", field="kvm_run.riscv_sbi.ret[0]")
_put_ret = _SBI_RET0.writer
_put_ret2 = struct.Struct("<QQ").pack_into  # ret[0], ret[1]


def _decode_convert(run: memoryview) -> NeutralRequest:
    _ext, _fid, gpa, npages, flags, _a3, _a4, _a5, _r0, _r1 = _sbi_unpack(run, _U)
    return MemoryConversion(gpa, npages, bool(flags & 1))


def _decode_get_evidence(run: memoryview) -> NeutralRequest:
    _ext, _fid, gpa, length, _a2, _a3, _a4, _a5, _r0, _r1 = _sbi_unpack(run, _U)
    return QuoteRequest(gpa, length)


def _decode_other(run: memoryview) -> NeutralRequest:
    ext, fid, *args, _r0, _r1 = _sbi_unpack(run, _U)
    if ext != EXAMPLE_SBI_EXT:  # another vendor's extension: not ours to answer
        return Unsupported(KvmExitReason.RISCV_SBI, detail=f"SBI extension {ext:#x} is not ours")
    fields = (("function_id", fid), *((f"a{i}", a) for i, a in enumerate(args)))
    return VendorSpecific("example", "KVM_EXIT_RISCV_SBI/unknown", fields)


def _write_sbi(run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None) -> None:
    _put_ret(run, _SBI_RET, raw)


def _write_evidence(
    run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None
) -> None:
    """ret[0] the SBI error; with an Outcome, ret[1] the size needed or written (else 0)."""
    if outcome is None:  # a plain status: ret[0] alone, as the status field says
        _put_ret(run, _SBI_RET, raw)
        return
    value = 0
    if outcome.status is CoCoStatus.BUFFER_TOO_SMALL and outcome.size_needed is not None:
        value = outcome.size_needed
    elif outcome.status is CoCoStatus.OK and outcome.value is not None:
        value = outcome.value
    _put_ret2(run, _SBI_RET, raw, value & _U64_MASK)


_SBI = {
    "reason": KvmExitReason.RISCV_SBI,
    "vendor": "example",
    "error_space": EXAMPLE_SBI,
    "status_field": _SBI_RET0,
}
SBI_CONVERT = ExitDecoder(
    name="KVM_EXIT_RISCV_SBI/EXAMPLE_SBI_CONVERT",
    discriminator=(EXAMPLE_SBI_EXT, EXAMPLE_SBI_CONVERT),
    request_type=MemoryConversion,
    decode=_decode_convert,
    write=_write_sbi,
    **_SBI,  # type: ignore[arg-type]
)
SBI_GET_EVIDENCE = ExitDecoder(
    name="KVM_EXIT_RISCV_SBI/EXAMPLE_SBI_GET_EVIDENCE",
    discriminator=(EXAMPLE_SBI_EXT, EXAMPLE_SBI_GET_EVIDENCE),
    request_type=QuoteRequest,
    decode=_decode_get_evidence,
    write=_write_evidence,
    writes=("kvm_run.riscv_sbi.ret[0]", "kvm_run.riscv_sbi.ret[1]"),
    **_SBI,  # type: ignore[arg-type]
)
#: Any other SBI call: another function of the example's extension is answered
#: SBI_ERR_NOT_SUPPORTED; another vendor's extension is declined (back to the VMM).
SBI_OTHER = ExitDecoder(
    name="KVM_EXIT_RISCV_SBI/unknown",
    discriminator=None,
    request_type=VendorSpecific,
    decode=_decode_other,
    write=_write_sbi,
    fallback=True,
    **_SBI,  # type: ignore[arg-type]
)


# -- KVM_EXIT_SYSTEM_EVENT from SBI SRST ---------------------------------------------------


def _decode_reset(run: memoryview) -> NeutralRequest:
    kind, ndata, reason, *_ = _sysev(run, _U)
    name = "shutdown" if kind == SystemEventType.SHUTDOWN else "reset"
    return Termination(f"guest asked for {name} (sbi_system_reset, ndata {ndata})", reason)


def _reset_decoder(kind: SystemEventType) -> ExitDecoder:
    return ExitDecoder(
        name=f"KVM_EXIT_SYSTEM_EVENT/KVM_SYSTEM_EVENT_{kind.name}",
        reason=KvmExitReason.SYSTEM_EVENT,
        discriminator=kind,
        vendor="example",
        request_type=Termination,
        decode=_decode_reset,
        write=None,  # no completion: the guest does not run again
        error_space=None,
        default_status=None,
    )


SHUTDOWN = _reset_decoder(SystemEventType.SHUTDOWN)
RESET = _reset_decoder(SystemEventType.RESET)


def _anon(c: type[CStruct]) -> Layout:
    """``c`` as kvm_run nests it: an anonymous struct."""
    lay = c.c_layout()
    return Layout(
        "struct", "struct", lay.members, lay.size, lay.align, lay.packed, lay.source, lay.c_abi
    )


def _union_member() -> Layout:
    """``example_attest`` as kvm_run nests it."""
    return _anon(KvmExitExampleAttest)


def union_members() -> dict[str, Layout]:
    """The union members of ``example-1``: the TEE's own, riscv_sbi, the generic system_event."""
    return {
        "example_attest": _union_member(),
        "riscv_sbi": _anon(KvmRiscvSbiExit),
        "system_event": generic_union_members()["system_event"],
    }


# -- the kernel's side, for the kernel model ------------------------------------------

#: The values the fictitious kernel accepts in example_attest.ret (kvm_example_complete).
_ATTEST_ACCEPTS = frozenset({0, 1, 2, 3})


def _begin(ctx: KernelContext, reason: int) -> None:
    run = ctx.run
    run[_U : _U + EXIT_UNION_SIZE] = bytes(EXIT_UNION_SIZE)
    run[EXIT_REASON : EXIT_REASON + 4] = reason.to_bytes(4, "little")


def _enter_attest(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    """The guest put the buffer in a0 and its length in a1; exit to userspace."""
    _begin(ctx, KVM_EXIT_EXAMPLE_ATTEST)
    gpa, length = cpu.reg("a0") & _U64_MASK, cpu.reg("a1") & 0xFFFF_FFFF
    KvmExitExampleAttest(gpa, length, 0).pack_into(ctx.run, _U)
    return ExitImage("KVM_EXIT_EXAMPLE_ATTEST", KVM_EXIT_EXAMPLE_ATTEST)


def _resume_attest(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    """Copy ``ret`` into a0; the fictitious kernel rejects values above EXAMPLE_ERROR."""
    ret = int.from_bytes(ctx.run[_RET : _RET + 4], "little")
    if ret not in _ATTEST_ACCEPTS:
        raise KvmRunRejected(f"example_attest.ret = {ret:#x} is not an EXAMPLE_* status")
    cpu.regs["a0"] = ret
    return GuestView({"a0": ret}, f"a0={EXAMPLE_STATUS.names[ret]}")


def _enter_sbi(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    """``kvm_riscv_vcpu_sbi_ecall``: a vendor extension is forwarded, others refused in KVM."""
    ext = cpu.reg("a7") & _U64_MASK
    if not SBI_EXT_VENDOR_START <= ext <= SBI_EXT_VENDOR_END:
        cpu.regs["a0"] = SBI_ERR_NOT_SUPPORTED  # not modelled: no such extension
        return GuestView({"a0": SBI_ERR_NOT_SUPPORTED}, "a0=SBI_ERR_NOT_SUPPORTED (no exit)")
    # kvm_riscv_vcpu_sbi_forward: a7, a6, a0..a5; ret[0] = SBI_ERR_NOT_SUPPORTED, ret[1] = 0
    _begin(ctx, KvmExitReason.RISCV_SBI)
    args = tuple(cpu.reg(f"a{i}") & _U64_MASK for i in range(6))
    fid = cpu.reg("a6") & _U64_MASK
    KvmRiscvSbiExit(ext, fid, args, (SBI_ERR_NOT_SUPPORTED, 0)).pack_into(ctx.run, _U)
    return ExitImage("KVM_EXIT_RISCV_SBI", KvmExitReason.RISCV_SBI)


def _resume_sbi(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    """``kvm_riscv_vcpu_sbi_return``: a0 <- ret[0], a1 <- ret[1], verbatim (no check)."""
    *_, ret0, ret1 = _sbi_unpack(ctx.run, _U)
    cpu.regs.update(a0=ret0, a1=ret1)
    return GuestView({"a0": ret0, "a1": ret1}, f"a0={EXAMPLE_SBI.name_of(ret0) or hex(ret0)}")


def _enter_srst(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    """``kvm_sbi_ext_srst_handler`` + ``kvm_riscv_vcpu_sbi_system_reset``: ndata 1."""
    kind, reason = cpu.reg("a0") & 0xFFFF_FFFF, cpu.reg("a1") & 0xFFFF_FFFF  # u32 type, reason
    if cpu.reg("a7") != SBI_EXT_SRST or cpu.reg("a6") != SBI_EXT_SRST_RESET or kind > 2:
        cpu.regs["a0"] = SBI_ERR_NOT_SUPPORTED
        return GuestView({"a0": SBI_ERR_NOT_SUPPORTED}, "a0=SBI_ERR_NOT_SUPPORTED (no exit)")
    event = (
        SystemEventType.SHUTDOWN if kind == SBI_SRST_RESET_TYPE_SHUTDOWN else SystemEventType.RESET
    )
    _begin(ctx, KvmExitReason.SYSTEM_EVENT)
    KvmSystemEventExit(event, 1, (reason, *(0,) * 15)).pack_into(ctx.run, _U)
    return ExitImage(
        f"KVM_EXIT_SYSTEM_EVENT/KVM_SYSTEM_EVENT_{event.name}", KvmExitReason.SYSTEM_EVENT
    )


def _ecall(a7: int, a6: int, *args: int) -> dict[str, int]:
    return {"a7": a7, "a6": a6, **{f"a{i}": a for i, a in enumerate(args)}}


MODEL = ModelPart(
    vendor="example",
    registers=RISCV_REGISTERS,
    calls=(
        GuestCall(
            name="example.attest",
            description="ask for evidence over a shared buffer (a0 GPA, a1 length; fictitious, "
            + SOURCE
            + ")",
            enter=_enter_attest,
            resume=_resume_attest,
            since=ABI,
            examples=(CallExample(name="4 KiB buffer", regs={"a0": 0x80001000, "a1": 4096}),),
        ),
        GuestCall(
            name="example.sbi_call",
            description="ecall to the example's vendor SBI extension (a7 EID, a6 FID, a0..a5): "
            "forwarded as KVM_EXIT_RISCV_SBI, vcpu_sbi.c",
            enter=_enter_sbi,
            resume=_resume_sbi,
            since=ABI,
            examples=(
                CallExample(
                    name="convert 16 pages to private",
                    regs=_ecall(EXAMPLE_SBI_EXT, EXAMPLE_SBI_CONVERT, 0x80200000, 16, 1),
                ),
                CallExample(
                    name="evidence into 4 KiB",
                    regs=_ecall(EXAMPLE_SBI_EXT, EXAMPLE_SBI_GET_EVIDENCE, 0x80001000, 4096),
                ),
                CallExample(name="unknown function 7", regs=_ecall(EXAMPLE_SBI_EXT, 7, 1, 2)),
                CallExample(name="another vendor's extension", regs=_ecall(0x09000001, 0, 5)),
            ),
        ),
        GuestCall(
            name="example.srst",
            description="sbi_system_reset (SBI SRST, a0 type, a1 reason) → KVM_EXIT_SYSTEM_EVENT "
            "SHUTDOWN or RESET, data[0] = reason; vcpu_sbi_replace.c",
            enter=_enter_srst,
            resume=None,
            since=ABI,
            examples=(
                CallExample(name="shutdown", regs=_ecall(SBI_EXT_SRST, SBI_EXT_SRST_RESET, 0, 0)),
                CallExample(
                    name="cold reboot", regs=_ecall(SBI_EXT_SRST, SBI_EXT_SRST_RESET, 1, 1)
                ),
            ),
        ),
    ),
)


@hookimpl
def coco_register_vendor(registrar: Registrar) -> None:
    """Register the ``example`` vendor, its ABI, error spaces and kernel model."""
    registrar.add_vendor("example", "Example TEE (fictitious, RISC-V)")
    registrar.add_abi(
        AbiPart(
            abi=ABI,
            vendor="example",
            source=SOURCE,
            released=False,
            exits={
                "KVM_EXIT_SYSTEM_EVENT": int(KvmExitReason.SYSTEM_EVENT),
                "KVM_EXIT_RISCV_SBI": int(KvmExitReason.RISCV_SBI),
                "KVM_EXIT_EXAMPLE_ATTEST": KVM_EXIT_EXAMPLE_ATTEST,
            },
            union_members=union_members(),
            error_spaces=(EXAMPLE_STATUS, EXAMPLE_SBI),
            duties=(
                CompletionDuty(
                    exit_name="KVM_EXIT_EXAMPLE_ATTEST",
                    field="kvm_run.example_attest.ret",
                    kernel_action="copied verbatim into the guest's a0",
                    rejects="values other than EXAMPLE_* fail KVM_RUN with EINVAL (fictitious)",
                ),
                CompletionDuty(
                    exit_name="KVM_EXIT_RISCV_SBI",
                    field="kvm_run.riscv_sbi.ret[0], kvm_run.riscv_sbi.ret[1]",
                    kernel_action="ret[0] → a0, ret[1] → a1, sepc += 4 "
                    "(kvm_riscv_vcpu_sbi_return); KVM pre-fills SBI_ERR_NOT_SUPPORTED and 0",
                ),
                CompletionDuty(
                    exit_name="KVM_EXIT_SYSTEM_EVENT/SHUTDOWN, RESET",
                    field="(none)",
                    kernel_action="no completion: every vCPU is stopped (KVM_REQ_SLEEP)",
                ),
            ),
            decoders=(ATTEST, SBI_CONVERT, SBI_GET_EVIDENCE, SBI_OTHER, SHUTDOWN, RESET),
            discriminators=(SBI_KEY, SYSTEM_EVENT_TYPE),
            frame=KVM_RUN_FRAME,
            notes=(
                "KVM_EXIT_EXAMPLE_ATTEST 44 is unallocated in mainline Linux",
                "a RISC-V TEE: layouts under the LP64 little-endian C ABI, registers a0..a7",
            ),
            order="9999-example",
        )
    )
    registrar.add_model(MODEL)
