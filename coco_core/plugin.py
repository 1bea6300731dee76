# SPDX-License-Identifier: Apache-2.0
"""The plugin author's API: everything a vendor plugin needs, from one module.

A plugin imports from here (and from :mod:`coco_core` for the embedder's
names: :class:`~coco_core.Dispatcher`, :class:`~coco_core.Registry`...), never
from a private module::

    from coco_core.plugin import (
        AbiPart, ErrorSpace, ExitDecoder, KVM_RUN_FRAME, Registrar, c_field, c_struct,
        hookimpl, kernels,
    )

What is here, by what it is for:

* the hook: :data:`hookimpl`, :class:`Registrar`;
* layouts that read like the C header: :func:`c_struct`, :func:`c_field`,
  :func:`struct_of`, :func:`union_of`, the scalar types (:data:`U8` ..
  :data:`U64`, :func:`c_scalar`), :class:`CStruct`, :class:`Layout`, and the C
  ABI they are laid out under (:class:`CAbi`: :data:`X86_64`, :data:`LP64_LE`
  for RISC-V and arm64);
* ABIs: :class:`AbiPart`, :class:`ExitDecoder`, :class:`Discriminator` (one
  number or a compound :data:`SubCall` key),
  :class:`StatusField`, :class:`CompletionDuty`, the run structure
  (:data:`KVM_RUN_FRAME`, :func:`run_offset` and the offsets of ``struct
  kvm_run``), the released kernels (:mod:`kernels <coco_core.kernels>`), and
  the generic exits a plugin builds on (``KVM_EXIT_*`` numbers, the
  ``hypercall`` and ``system_event`` members and discriminators, the
  ``KVM_HC_MAP_GPA_RANGE`` decoder and its errno spaces);
* error spaces: :class:`ErrorSpace`, :class:`Landing`, :class:`UnknownCode`,
  :class:`Errno`;
* requests and answers: the neutral requests, :class:`Unsupported` and
  :class:`NotHandled` (what a decoder returns to decline an exit),
  :class:`CoCoStatus`, :class:`Outcome`;
* the kernel model: :class:`ModelPart`, :class:`GuestCall`, :class:`CallExample`,
  :class:`GuestCpu` (register names: :data:`X86_64_REGISTERS`,
  :data:`RISCV_REGISTERS`),
  :class:`GuestView`, :class:`ExitImage`, :class:`KernelContext`,
  :class:`GuestMemoryLike`, :class:`KvmRunRejected`, the exit writer
  :func:`write_exit`, KVM's PV hypercall path (:func:`pv_hypercall`,
  :func:`hypercall_ret`), and the emulated TEE's doorbell ports;
* errors: :class:`CoCoError` and the ones a plugin raises.

Importing it loads no KVM backend and no demo: a demo scenario imports
:mod:`coco_core.demo`, the KVM enabling step :mod:`coco_core.kvm`.

.. versionadded:: 0.2
"""

from __future__ import annotations

from coco_core import kernels
from coco_core.abi import (
    Abi,
    AbiPart,
    CompletionDuty,
    Discriminator,
    ExitDecoder,
    RunFrame,
    StatusField,
    SubCall,
    WriteBack,
)
from coco_core.cabi import LP64_LE, X86_64, CAbi, c_scalar
from coco_core.emulated.ports import DOORBELL_TDVMCALL_PORT, DOORBELL_VMGEXIT_PORT
from coco_core.errors import (
    CoCoError,
    CompletionError,
    ConfigurationError,
    DecodeError,
    KvmRunRejected,
    LayoutError,
    RegistrationError,
)
from coco_core.errorspace import ErrorSpace, Landing, UnknownCode
from coco_core.generic.decoders import HYPERCALL_NR, SYSTEM_EVENT_TYPE, map_gpa_decoder
from coco_core.generic.hypercall import (
    KVM_EINVAL,
    KVM_ENOSYS,
    KVM_EPERM,
    PV_HYPERCALL_ERRORS,
    hypercall_ret,
    pv_hypercall,
    write_exit,
)
from coco_core.generic.kvmerrno import MAP_GPA_RANGE_ERRNO, MAP_GPA_RANGE_LEGACY, Errno
from coco_core.generic.plugin import released_exits
from coco_core.generic.uapi import (
    EXIT_REASON,
    EXIT_UNION_OFFSET,
    EXIT_UNION_SIZE,
    GENERIC_MEMBERS,
    KVM_EXIT_HYPERCALL_LONG_MODE,
    KVM_RUN_FRAME,
    KVM_RUN_SIZE,
    HypercallNr,
    KvmExitReason,
    KvmHypercallExit,
    KvmSystemEventExit,
    MapGpaRangeAttr,
    SystemEventType,
    generic_union_members,
    run_offset,
)
from coco_core.hookspecs import hookimpl
from coco_core.layout import (
    CHAR,
    S32,
    S64,
    U8,
    U16,
    U32,
    U64,
    CStruct,
    CType,
    Layout,
    MemberSpec,
    c_field,
    c_struct,
    struct_of,
    union_of,
)
from coco_core.model.base import (
    RISCV_REGISTERS,
    X86_64_REGISTERS,
    CallExample,
    ExitImage,
    GuestCall,
    GuestCpu,
    GuestMemoryLike,
    GuestView,
    KernelContext,
    ModelPart,
    RouteFn,
)
from coco_core.registry import Registrar
from coco_core.requests import (
    CertificateRequest,
    EventNotifySetup,
    MemoryConversion,
    MemoryFault,
    MsrAccess,
    NeutralRequest,
    NotHandled,
    PortIo,
    QuoteRequest,
    TdvmcallInfoQuery,
    Termination,
    Unsupported,
    VendorSpecific,
)
from coco_core.status import CoCoStatus, Outcome

__all__ = [
    "CHAR",
    "DOORBELL_TDVMCALL_PORT",
    "DOORBELL_VMGEXIT_PORT",
    "EXIT_REASON",
    "EXIT_UNION_OFFSET",
    "EXIT_UNION_SIZE",
    "GENERIC_MEMBERS",
    "HYPERCALL_NR",
    "KVM_EINVAL",
    "KVM_ENOSYS",
    "KVM_EPERM",
    "KVM_EXIT_HYPERCALL_LONG_MODE",
    "KVM_RUN_FRAME",
    "KVM_RUN_SIZE",
    "LP64_LE",
    "MAP_GPA_RANGE_ERRNO",
    "MAP_GPA_RANGE_LEGACY",
    "PV_HYPERCALL_ERRORS",
    "RISCV_REGISTERS",
    "S32",
    "S64",
    "SYSTEM_EVENT_TYPE",
    "U8",
    "U16",
    "U32",
    "U64",
    "X86_64",
    "X86_64_REGISTERS",
    "Abi",
    "AbiPart",
    "CAbi",
    "CStruct",
    "CType",
    "CallExample",
    "CertificateRequest",
    "CoCoError",
    "CoCoStatus",
    "CompletionDuty",
    "CompletionError",
    "ConfigurationError",
    "DecodeError",
    "Discriminator",
    "Errno",
    "ErrorSpace",
    "EventNotifySetup",
    "ExitDecoder",
    "ExitImage",
    "GuestCall",
    "GuestCpu",
    "GuestMemoryLike",
    "GuestView",
    "HypercallNr",
    "KernelContext",
    "KvmExitReason",
    "KvmHypercallExit",
    "KvmRunRejected",
    "KvmSystemEventExit",
    "Landing",
    "Layout",
    "LayoutError",
    "MapGpaRangeAttr",
    "MemberSpec",
    "MemoryConversion",
    "MemoryFault",
    "ModelPart",
    "MsrAccess",
    "NeutralRequest",
    "NotHandled",
    "Outcome",
    "PortIo",
    "QuoteRequest",
    "Registrar",
    "RegistrationError",
    "RouteFn",
    "RunFrame",
    "StatusField",
    "SubCall",
    "SystemEventType",
    "TdvmcallInfoQuery",
    "Termination",
    "UnknownCode",
    "Unsupported",
    "VendorSpecific",
    "WriteBack",
    "c_field",
    "c_scalar",
    "c_struct",
    "generic_union_members",
    "hookimpl",
    "hypercall_ret",
    "kernels",
    "map_gpa_decoder",
    "pv_hypercall",
    "released_exits",
    "run_offset",
    "struct_of",
    "union_of",
    "write_exit",
]
