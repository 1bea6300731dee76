# SPDX-License-Identifier: Apache-2.0
"""The kernel's side of each CoCo exit, as data the plugins register.

The kernel model plays KVM's part when no TEE hardware is present, and is the
oracle the plugins' tests use: it turns a *guest-level* call (the registers a
TDX guest sets for TDG.VP.VMCALL, or an SNP guest's GHCB request) into the
byte-exact ``kvm_run`` KVM would write, and on re-entry applies KVM's
completion and reports what the guest sees, or fails the way ``KVM_RUN``
would (``-EINVAL`` for a ``ret`` the kernel rejects).

Vendor plugins register :class:`ModelPart` objects with
:meth:`~coco_core.registry.Registrar.add_model`; :class:`KernelModel` in
:mod:`coco_core.model.kernel` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Protocol

import attrs

from coco_core import kernels
from coco_core.errors import KvmRunRejected

__all__ = [
    "RISCV_REGISTERS",
    "X86_64_REGISTERS",
    "CallExample",
    "ExitImage",
    "GuestCall",
    "GuestCpu",
    "GuestMemoryLike",
    "GuestView",
    "KernelContext",
    "KvmRunRejected",
    "ModelPart",
    "RouteFn",
    "generation_key",
]


def generation_key(name: str) -> tuple[int, str]:
    """Sort key of a generation (an ABI name): releases in order, proposals after them."""
    return kernels.order(name)


class GuestMemoryLike(Protocol):
    """Guest memory as the model needs it: bounds-checked reads and writes."""

    def read(self, gpa: int, size: int) -> bytes:
        """Return ``size`` bytes at ``gpa``; raise if not wholly inside guest RAM."""
        ...

    def write(self, gpa: int, data: bytes) -> None:
        """Write ``data`` at ``gpa``; raise if not wholly inside guest RAM."""
        ...

    def contains(self, gpa: int, size: int) -> bool:
        """True if ``[gpa, gpa + size)`` lies wholly inside guest RAM."""
        ...


#: The x86-64 general-purpose registers, as the TDX and SNP model parts name them
#: (Intel SDM vol. 1, 3.4.1.1), plus ``rip`` and ``rflags``. (.. versionadded:: 0.2)
X86_64_REGISTERS = frozenset(
    {
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags",
    }
)  # fmt: skip
#: The RISC-V integer registers by ABI name (RISC-V ABIs Specification, riscv-cc
#: 1.1 "Integer Register Convention"), plus ``pc``; an SBI call passes a0..a5,
#: the function id in a6 and the extension id in a7 (SBI 2.0, 3 "Binary Encoding").
#: (.. versionadded:: 0.2)
RISCV_REGISTERS = frozenset(
    {
        "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1",
        *(f"a{i}" for i in range(8)), *(f"s{i}" for i in range(2, 12)),
        "t3", "t4", "t5", "t6", "pc",
    }
)  # fmt: skip


@attrs.define
class GuestCpu:
    """The guest state a call reads and KVM writes back: registers plus shared fields.

    ``regs`` uses the vendor's register names, lower case: x86-64 ``rax`` ..
    ``r15`` for TDX and SNP, RISC-V ``a0`` .. ``a7`` for a RISC-V TEE
    (:attr:`ModelPart.registers` says which a part uses). ``ghcb`` keeps the
    fields a guest exchanges through shared memory rather than registers (for
    SNP the GHCB's ``sw_exitinfo1``, ``sw_exitinfo2``...). ``apic_id`` is the
    vCPU's id (x86: its APIC id), for per-vCPU kernel state.
    """

    regs: dict[str, int] = attrs.field(factory=dict)
    ghcb: dict[str, int] = attrs.field(factory=dict)
    apic_id: int = 0

    def reg(self, name: str) -> int:
        """A register's value (0 if never set)."""
        return self.regs.get(name, 0)


@attrs.frozen
class ExitImage:
    """The kernel exited to userspace: ``kvm_run`` now holds this exit."""

    name: str
    exit_reason: int


@attrs.frozen
class GuestView:
    """What the guest sees once the call is over (registers, GHCB fields, notes).

    :param values: the guest-visible results (``r10``, ``sw_exitinfo2``...).
    :param summary: one line for people (``R10=SUCCESS``).
    """

    values: Mapping[str, int]
    summary: str


@attrs.define
class KernelContext:
    """One VM's kernel-side state for the model.

    :param generation: the ABI name of the kernel modelled (``linux-7.2``).
    :param run: the ``kvm_run`` buffer the model writes exits into.
    :param memory: guest memory.
    :param vm_state: per-VM state the vendor parts keep (capabilities enabled,
        a MapGPA in progress, ...).
    """

    generation: str
    run: bytearray | memoryview
    memory: GuestMemoryLike
    vm_state: MutableMapping[str, object] = attrs.field(factory=dict)

    @property
    def released(self) -> bool:
        """True if the modelled kernel is a release, False for a proposal."""
        return kernels.is_release(self.generation)

    def has(self, feature: str) -> bool:
        """True if the modelled kernel is a release with ``feature`` (:mod:`coco_core.kernels`).

        A proposal has none: each one's rules are written out by the plugin.
        """
        return kernels.has(self.generation, feature)


#: ``enter(ctx, cpu)``: write the first exit into ``ctx.run`` (ExitImage) or
#: answer inside the kernel (GuestView).
EnterFn = Callable[[KernelContext, GuestCpu], "ExitImage | GuestView"]
#: ``resume(ctx, cpu)``: apply the completion userspace wrote into ``ctx.run``;
#: return the next exit or the final view; raise :class:`KvmRunRejected`.
ResumeFn = Callable[[KernelContext, GuestCpu], "ExitImage | GuestView"]


@attrs.frozen(kw_only=True)
class CallExample:
    """A guest state that makes a call exit to userspace, for the conformance kit.

    The kit runs each example through the kernel model under every generation
    the call exists in, completes the exit with every status and a spread of
    :class:`~coco_core.status.Outcome` values, and fails any completion the
    model's ``resume`` refuses; ``coco golden record`` writes goldens from them.

    :param name: a short label (``"4 KiB buffer"``).
    :param regs: the guest registers, by the vendor's names.
    :param ghcb: the guest's shared fields (:attr:`GuestCpu.ghcb`).
    :param vm_state: per-VM kernel state to start from (``ctx.vm_state``).
    :param memory: guest RAM contents to start from, by GPA.
    :param generations: the generations it exits in; None: every one the call has.

    .. versionadded:: 0.2
    """

    name: str
    regs: Mapping[str, int] = attrs.field(factory=dict)
    ghcb: Mapping[str, int] = attrs.field(factory=dict)
    vm_state: Mapping[str, object] = attrs.field(factory=dict)
    memory: Mapping[int, bytes] = attrs.field(factory=dict)
    generations: frozenset[str] | None = None

    def cpu(self) -> GuestCpu:
        """A fresh :class:`GuestCpu` in this state."""
        return GuestCpu(regs=dict(self.regs), ghcb=dict(self.ghcb))


@attrs.frozen(kw_only=True)
class GuestCall:
    """One guest-level call the kernel turns into exits.

    :param name: ``vendor.call`` (``tdx.get_quote``, ``snp.ext_guest_request``).
    :param description: one line, with the spec or source of the call.
    :param enter: see :data:`EnterFn`.
    :param resume: see :data:`ResumeFn`; None for calls with no completion.
    :param since: the oldest released kernel the call exits to userspace in
        (proposals always have it).
    :param examples: guest states that make the call exit to userspace; the
        conformance kit uses them to hold every decoder's completions to the
        model (``.. versionadded:: 0.2``).
    """

    name: str
    description: str
    enter: EnterFn
    resume: ResumeFn | None
    since: str = "linux-6.16"
    examples: tuple[CallExample, ...] = ()


#: ``route(cpu) -> call name``: which guest call the registers at a doorbell
#: exit ask for (TDX: R11 leaf; SNP: the GHCB exit code), None if none.
RouteFn = Callable[[GuestCpu], "str | None"]


@attrs.frozen(kw_only=True)
class ModelPart:
    """A vendor's guest calls, registered for the kernel model.

    :param vendor: the vendor.
    :param calls: the guest calls.
    :param doorbell_port: the emulated TEE's doorbell port for this vendor.
    :param route: picks the call for a doorbell exit from the guest registers.
    :param ghcb_to_regs: GHCB fields the guest reads, mirrored into registers
        after a doorbell call (``{"sw_exitinfo2": "r13"}``); the emulated guest
        has no GHCB page of its own.
    :param registers: the register names the calls read and write
        (:data:`X86_64_REGISTERS`, :data:`RISCV_REGISTERS`...); None: not
        declared. The conformance kit holds the examples to it
        (``.. versionadded:: 0.2``).
    """

    vendor: str
    calls: tuple[GuestCall, ...]
    doorbell_port: int | None = None
    route: RouteFn | None = None
    ghcb_to_regs: Mapping[str, str] = attrs.field(factory=dict)
    registers: frozenset[str] | None = None

    def unknown_registers(self, cpu: GuestCpu) -> list[str]:
        """The names in ``cpu.regs`` that are not among :attr:`registers`, sorted.

        .. versionadded:: 0.2
        """
        if self.registers is None:
            return []
        return sorted(set(cpu.regs) - self.registers)
