# SPDX-License-Identifier: Apache-2.0
"""KVM's side of the TDX guest calls, for the kernel model.

Each call reads the guest registers as TDG.VP.VMCALL passes them (R10 = 0 for a
GHCI call, R11 = leaf, R12/R13 = arguments), does what ``arch/x86/kvm/vmx/tdx.c``
does (kvm-x86 @ 09c6f74ecb863f76e2486a960431fe6e2b86f2c7; each rule names its
function) and writes the fields of ``kvm_run`` KVM writes, and only those: the rest
of the exit union keeps what it held. Or it answers in the kernel. On re-entry it
applies KVM's completion to the registers the guest sees.

``tdx.kvm_hypercall`` is a TDVMCALL with R10 ≠ 0: ``tdx_emulate_vmcall()`` hands
R10 (the KVM hypercall number) and R11..R14 to x86.c's ``__kvm_emulate_hypercall()``;
a ``KVM_HC_MAP_GPA_RANGE`` exits as ``KVM_EXIT_HYPERCALL`` and tdx.c's
``complete_hypercall_exit()`` copies ``hypercall.ret`` into R10 verbatim, with no
errno check in any release (:func:`coco_core.plugin.pv_hypercall`). ``kvm_run``
does not tell this exit from a MapGPA chunk: both write ``nr``, ``ret`` = 0,
``args[0..2]`` and ``flags`` = ``LONG_MODE``; only the kernel model knows which
path it took (the exit's name says).

Per-VM state (``ctx.vm_state``):

``shared_bit``
    GPA.SHARED, default ``1 << 47`` (GPAW 48; ``1 << 51`` for GPAW 52, see
    :func:`coco_tdx.ghci.shared_bit`). GPAs at or above ``shared_bit << 1``
    are not legal.
``pending_events``
    truthy: ``kvm_vcpu_has_events()`` is true, so a MapGPA that still has
    chunks to go stops with RETRY and R11 = next GPA.
``exit_hypercall_map_gpa``
    False models a VMM that did not enable ``KVM_CAP_EXIT_HYPERCALL`` bit 12:
    MapGPA answers SUBFUNC_UNSUPPORTED. Default True.
"""

from __future__ import annotations

import struct

from coco_core.plugin import (
    KVM_EXIT_HYPERCALL_LONG_MODE,
    X86_64_REGISTERS,
    CallExample,
    ExitImage,
    GuestCall,
    GuestCpu,
    GuestView,
    HypercallNr,
    KernelContext,
    KvmExitReason,
    KvmHypercallExit,
    KvmRunRejected,
    KvmSystemEventExit,
    MapGpaRangeAttr,
    ModelPart,
    SystemEventType,
    hypercall_ret,
    kernels,
    pv_hypercall,
    run_offset,
    write_exit,
)
from coco_tdx.ghci import TDVMCALL, TdvmcallStatus, map_gpa_guest_status
from coco_tdx.uapi import EXIT_REASON_TDCALL, TDX_RET_OFFSET, KvmTdxExit, TdvmcallLeaf

__all__ = [
    "DEFAULT_SHARED_BIT",
    "MODEL",
    "PAGE_SIZE",
    "TDX_MAP_GPA_MAX_LEN",
]

#: GPA.SHARED for GPAW 48 (the common TD configuration); see coco_tdx.ghci.GPAW_SHARED_BIT
DEFAULT_SHARED_BIT = 1 << 47
#: ``TDX_MAP_GPA_MAX_LEN`` = ``SZ_2M`` (arch/x86/kvm/vmx/tdx.c, Linux 6.16)
TDX_MAP_GPA_MAX_LEN = 2 * 1024 * 1024
#: ``PAGE_SIZE`` on x86-64
PAGE_SIZE = 4096

_U64 = (1 << 64) - 1
_Q = struct.Struct("<Q")
_HC_RET = run_offset(KvmHypercallExit, "ret")  # kvm_run.hypercall.ret (88)
_INFO = struct.Struct("<6Q")  # get_tdvmcall_info: ret, leaf, r11..r14 at offset 48


def _tdx_exit(ctx: KernelContext, nr: int, ret: int, data: tuple[int, ...]) -> ExitImage:
    """``KVM_EXIT_TDX``: ``flags`` = 0, ``nr``, ``ret`` and the leaf's own fields (data[...])."""
    fields: dict[str, int | tuple[int, ...]] = {"flags": 0, "nr": nr, "ret": ret, "data": data}
    write_exit(ctx.run, KvmExitReason.TDX, KvmTdxExit, fields)
    return ExitImage(f"KVM_EXIT_TDX/{TdvmcallLeaf(nr).name}", KvmExitReason.TDX)


def _shared_bit(ctx: KernelContext) -> int:
    bit = ctx.vm_state.get("shared_bit", DEFAULT_SHARED_BIT)
    if not isinstance(bit, int) or bit <= 0 or bit & (bit - 1) or bit > 1 << 63:
        raise ValueError(f"vm_state['shared_bit'] must be a single bit, not {bit!r}")
    return bit


def _args(cpu: GuestCpu) -> tuple[int, int]:
    """R12, R13 as the TDX module hands them to KVM (64-bit registers)."""
    return cpu.reg("r12") & _U64, cpu.reg("r13") & _U64


def _status(cpu: GuestCpu, status: int, **regs: int) -> GuestView:
    """Set R10 (and e.g. R11), return what the guest sees."""
    cpu.regs["r10"] = status
    cpu.regs.update(regs)
    values = {"r10": status, **regs}
    name = TDVMCALL.name_of(status) or f"{status:#x}"
    extra = "".join(f" {k.upper()}={v:#x}" for k, v in regs.items())
    return GuestView(values, f"R10={name}{extra}")


def _resume_simple(ctx: KernelContext, cpu: GuestCpu) -> GuestView:
    """``tdx_complete_simple()``: R10 <- ``tdx.unknown.ret``, verbatim."""
    (ret,) = _Q.unpack_from(ctx.run, TDX_RET_OFFSET)
    return _status(cpu, ret)


# -- GetQuote ----------------------------------------------------------------------------


def _enter_get_quote(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    gpa, size = _args(cpu)
    shared = _shared_bit(ctx)
    if not gpa & shared:  # vt_is_tdx_private_gpa(): only the shared bit is checked
        return _status(cpu, TdvmcallStatus.INVALID_OPERAND)
    return _tdx_exit(
        ctx, TdvmcallLeaf.GET_QUOTE, TdvmcallStatus.SUBFUNC_UNSUPPORTED, (gpa & ~shared, size)
    )


# -- SetupEventNotifyInterrupt -------------------------------------------------------------


def _enter_setup_event_notify(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    vector, _ = _args(cpu)
    if not 32 <= vector <= 255:  # tdx_setup_event_notify_interrupt()
        return _status(cpu, TdvmcallStatus.INVALID_OPERAND)
    return _tdx_exit(
        ctx,
        TdvmcallLeaf.SETUP_EVENT_NOTIFY_INTERRUPT,
        TdvmcallStatus.SUBFUNC_UNSUPPORTED,
        (vector,),
    )


# -- GetTdVmCallInfo -----------------------------------------------------------------------


def _enter_get_tdvmcall_info(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    leaf, _ = _args(cpu)
    if leaf == 0:  # answered in KVM: all GHCI base calls supported
        return _status(cpu, TdvmcallStatus.SUCCESS, r11=0, r12=0, r13=0, r14=0)
    if leaf == 1:  # exit with SUCCESS, leaf and zero r11..r14 pre-filled
        info = (1, 0, 0, 0, 0)
        return _tdx_exit(ctx, TdvmcallLeaf.GET_TD_VM_CALL_INFO, TdvmcallStatus.SUCCESS, info)
    return _status(cpu, TdvmcallStatus.INVALID_OPERAND)


def _resume_get_tdvmcall_info(ctx: KernelContext, cpu: GuestCpu) -> GuestView:
    """``tdx_complete_get_td_vm_call_info()``: R10 <- ret, R11..R14 <- r11..r14."""
    ret, _leaf, r11, r12, r13, r14 = _INFO.unpack_from(ctx.run, TDX_RET_OFFSET)
    return _status(cpu, ret, r11=r11, r12=r12, r13=r13, r14=r14)


# -- MapGPA --------------------------------------------------------------------------------


def _map_key(cpu: GuestCpu) -> str:
    return f"tdx.map_gpa.{cpu.apic_id}"  # tdx->map_gpa_next/_end are per vCPU


def _map_chunk(ctx: KernelContext, nxt: int, end: int) -> ExitImage:
    """``__tdx_map_gpa()``: one KVM_EXIT_HYPERCALL for at most 2 MiB (args[3..5] untouched)."""
    shared = _shared_bit(ctx)
    size = min(end - nxt, TDX_MAP_GPA_MAX_LEN)
    private = not nxt & shared
    attrs_ = MapGpaRangeAttr.ENCRYPTED if private else MapGpaRangeAttr.DECRYPTED
    fields: dict[str, int | tuple[int, ...]] = {
        "nr": int(HypercallNr.MAP_GPA_RANGE),
        "ret": 0,  # pre-zeroed for QEMU <= 9.2
        "args": (nxt & ~shared, size // PAGE_SIZE, int(attrs_)),
        "flags": KVM_EXIT_HYPERCALL_LONG_MODE,
    }
    write_exit(ctx.run, KvmExitReason.HYPERCALL, KvmHypercallExit, fields)
    return ExitImage(
        "KVM_EXIT_HYPERCALL/KVM_HC_MAP_GPA_RANGE (TDX MapGPA)", KvmExitReason.HYPERCALL
    )


def _enter_map_gpa(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    gpa, size = _args(cpu)
    shared = _shared_bit(ctx)
    if not ctx.vm_state.get("exit_hypercall_map_gpa", True):
        return _status(cpu, TdvmcallStatus.SUBFUNC_UNSUPPORTED, r11=gpa)
    end = gpa + size
    limit = shared << 1  # kvm_vcpu_is_legal_gpa(): below 1 << GPAW
    if (
        end <= gpa
        or end > _U64  # the u64 sum wrapped
        or gpa >= limit
        or end - 1 >= limit
        or bool(gpa & shared) != bool((end - 1) & shared)
    ):
        return _status(cpu, TdvmcallStatus.INVALID_OPERAND, r11=gpa)
    if gpa % PAGE_SIZE or size % PAGE_SIZE:
        return _status(cpu, TdvmcallStatus.ALIGN_ERROR, r11=gpa)
    ctx.vm_state[_map_key(cpu)] = (gpa, end)
    return _map_chunk(ctx, gpa, end)


def _resume_map_gpa(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    """``tdx_complete_vmcall_map_gpa()`` with the generation's ``ret`` rules."""
    state = ctx.vm_state.get(_map_key(cpu))
    if not isinstance(state, tuple):
        raise KvmRunRejected("MapGPA completion without a MapGPA in progress")
    nxt, end = state
    (ret,) = _Q.unpack_from(ctx.run, _HC_RET)
    status = map_gpa_guest_status(ctx.generation, ret)
    if status is None:
        ctx.vm_state.pop(_map_key(cpu), None)
        raise KvmRunRejected(
            f"{ctx.generation}: hypercall.ret {ret:#x} for KVM_HC_MAP_GPA_RANGE is not "
            "0, EINVAL or EAGAIN; KVM_RUN fails with EINVAL"
        )
    if status != TdvmcallStatus.SUCCESS:
        ctx.vm_state.pop(_map_key(cpu), None)
        return _status(cpu, status, r11=nxt)
    nxt += TDX_MAP_GPA_MAX_LEN
    if nxt >= end:
        ctx.vm_state.pop(_map_key(cpu), None)
        return _status(cpu, TdvmcallStatus.SUCCESS)
    if ctx.vm_state.get("pending_events"):
        ctx.vm_state.pop(_map_key(cpu), None)
        return _status(cpu, TdvmcallStatus.RETRY, r11=nxt)
    ctx.vm_state[_map_key(cpu)] = (nxt, end)
    return _map_chunk(ctx, nxt, end)


# -- ReportFatalError ----------------------------------------------------------------------

#: ``system_event.data[1..15]``: the TDX module's registers in SDM register-number order
#: (RSP and RBP reported as 0); ``data[0]`` is not RAX (see below).
_SDM_GPRS = (
    "rcx", "rdx", "rbx", None, None, "rsi", "rdi",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
)  # fmt: skip


def _enter_report_fatal_error(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    """``tdx_report_fatal_error()``: 16 values in SDM order, no parsing, no completion.

    ``regs[index++] = tdx->vp_enter_ret;``: ``data[0]`` is TDH.VP.ENTER's status, which
    tdx_handle_exit() only passes to handle_tdvmcall() when it is TDX_SUCCESS with exit
    reason ``EXIT_REASON_TDCALL``: 77, whatever the guest's RAX.
    """
    gprs = tuple(0 if r is None else cpu.reg(r) & _U64 for r in _SDM_GPRS)
    fields: dict[str, int | tuple[int, ...]] = {
        "type": int(SystemEventType.TDX_FATAL),
        "ndata": 16,
        "data": (EXIT_REASON_TDCALL, *gprs),
    }
    write_exit(ctx.run, KvmExitReason.SYSTEM_EVENT, KvmSystemEventExit, fields)
    return ExitImage("KVM_EXIT_SYSTEM_EVENT/KVM_SYSTEM_EVENT_TDX_FATAL", KvmExitReason.SYSTEM_EVENT)


# -- a TDVMCALL with R10 != 0: KVM's PV hypercall ----------------------------------------------


def _enter_kvm_hypercall(ctx: KernelContext, cpu: GuestCpu) -> ExitImage | GuestView:
    """``tdx_emulate_vmcall()``: RAX..RSI <- R10..R14, ``__kvm_emulate_hypercall(vcpu, 0, ...)``."""
    args = (cpu.reg("r11"), cpu.reg("r12"), cpu.reg("r13"))
    enabled = bool(ctx.vm_state.get("exit_hypercall_map_gpa", True))
    if pv_hypercall(ctx.run, cpu.reg("r10"), args, cpl=0, exit_enabled=enabled):
        return ExitImage(
            "KVM_EXIT_HYPERCALL/KVM_HC_MAP_GPA_RANGE (PV TDVMCALL R10=12)", KvmExitReason.HYPERCALL
        )
    return _resume_kvm_hypercall(ctx, cpu)


def _resume_kvm_hypercall(ctx: KernelContext, cpu: GuestCpu) -> GuestView:
    """tdx.c ``complete_hypercall_exit()``: R10 <- hypercall.ret, verbatim (no errno check)."""
    return _status(cpu, hypercall_ret(ctx.run))


#: The generations the calls below model: the released kernels with KVM_EXIT_TDX (the
#: 2025 separate-exit proposal is not modelled).
_MODELLED = frozenset(k.name for k in kernels.released() if kernels.has(k.name, kernels.TDX_EXIT))


def _example(name: str, **regs: int) -> CallExample:
    """A TDG.VP.VMCALL<GHCI> guest state (R10 = 0) for the conformance kit."""
    return CallExample(name=name, regs={"r10": 0, **regs}, generations=_MODELLED)


MODEL = ModelPart(
    vendor="tdx",
    registers=X86_64_REGISTERS,
    calls=(
        GuestCall(
            name="tdx.get_quote",
            description="TDG.VP.VMCALL<GetQuote> (R12 shared GPA, R13 size) → KVM_EXIT_TDX; "
            "tdx.c tdx_get_quote",
            enter=_enter_get_quote,
            resume=_resume_simple,
            examples=(
                _example(
                    "4 KiB shared buffer",
                    r11=TdvmcallLeaf.GET_QUOTE,
                    r12=0x1000 | DEFAULT_SHARED_BIT,
                    r13=4096,
                ),
            ),
        ),
        GuestCall(
            name="tdx.get_tdvmcall_info",
            description="TDG.VP.VMCALL<GetTdVmCallInfo> (R12 leaf): leaf 0 in KVM, leaf 1 → "
            "KVM_EXIT_TDX",
            enter=_enter_get_tdvmcall_info,
            resume=_resume_get_tdvmcall_info,
            examples=(_example("leaf 1", r11=TdvmcallLeaf.GET_TD_VM_CALL_INFO, r12=1),),
        ),
        GuestCall(
            name="tdx.setup_event_notify",
            description="TDG.VP.VMCALL<SetupEventNotifyInterrupt> (R12 vector 32..255) → "
            "KVM_EXIT_TDX",
            enter=_enter_setup_event_notify,
            resume=_resume_simple,
            examples=(
                _example("vector 0x40", r11=TdvmcallLeaf.SETUP_EVENT_NOTIFY_INTERRUPT, r12=0x40),
            ),
        ),
        GuestCall(
            name="tdx.map_gpa",
            description="TDG.VP.VMCALL<MapGPA> (R12 GPA with shared bit, R13 size) → one "
            "KVM_EXIT_HYPERCALL per 2 MiB; tdx.c tdx_map_gpa",
            enter=_enter_map_gpa,
            resume=_resume_map_gpa,
            examples=(
                _example(
                    "4 MiB to shared",
                    r11=TdvmcallLeaf.MAP_GPA,
                    r12=0x200000 | DEFAULT_SHARED_BIT,
                    r13=4 << 20,
                ),
                _example(
                    "one page to private", r11=TdvmcallLeaf.MAP_GPA, r12=0x200000, r13=PAGE_SIZE
                ),
            ),
        ),
        GuestCall(
            name="tdx.report_fatal_error",
            description="TDG.VP.VMCALL<ReportFatalError> → KVM_EXIT_SYSTEM_EVENT type 7: "
            "vp_enter_ret then 15 GPRs (tdx.c tdx_report_fatal_error)",
            enter=_enter_report_fatal_error,
            resume=None,
            examples=(
                _example("error code 0x10000", r11=TdvmcallLeaf.REPORT_FATAL_ERROR, r12=0x10000),
            ),
        ),
        GuestCall(
            name="tdx.kvm_hypercall",
            description="TDG.VP.VMCALL with R10 != 0: KVM's PV hypercall, R10 <- hypercall.ret "
            "verbatim (tdx.c tdx_emulate_vmcall, complete_hypercall_exit; x86.c)",
            enter=_enter_kvm_hypercall,
            resume=_resume_kvm_hypercall,
            examples=(
                CallExample(
                    name="MAP_GPA_RANGE: one page to private",
                    regs={
                        "r10": HypercallNr.MAP_GPA_RANGE,
                        "r11": 0x200000,
                        "r12": 1,
                        "r13": MapGpaRangeAttr.ENCRYPTED,
                    },
                    generations=_MODELLED,
                ),
            ),
        ),
    ),
)
