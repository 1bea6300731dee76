# SPDX-License-Identifier: Apache-2.0
"""coco: the vendor-neutral framework for the CoCo userspace exits of Linux KVM.

A Python VMM builds a :class:`Registry` from the plugins it trusts, a
:class:`Dispatcher` for its VM's vendor and kernel ABI, registers handlers for
neutral requests, and calls :meth:`Dispatcher.dispatch` on each exit::

    registry = Registry.from_entry_points(allow={"snp", "tdx"})
    dispatcher = Dispatcher(registry, "tdx", "linux-7.2")
    dispatcher.on(QuoteRequest, my_quote_handler)
    dispatcher.dispatch(vcpu.run_view, vcpu)

Importing ``coco_core`` imports attrs and pluggy only (no cryptography, no
plugin). The rooms of the house:

* :mod:`coco_core.plugin`: the plugin author's API;
* :mod:`coco_core.generic`: the core's own plugin (``struct kvm_run``, the
  generic exits, the errno spaces);
* :mod:`coco_core.services`: handlers coco ships (memory attributes);
* :mod:`coco_core.kvm`: the real ``/dev/kvm`` backend;
* :mod:`coco_core.model`: the kernel model, the oracle of the tests;
* :mod:`coco_core.emulated`: the emulated TEE on any KVM;
* :mod:`coco_core.review`: the reviewers' tooling (never imported by the runtime);
* :mod:`coco_core.testing`: the conformance kit;
* :mod:`coco_core.demo` and :mod:`coco_core.cli`: ``coco demo`` and the ``coco`` command.
"""

from __future__ import annotations

from typing import Any

from coco_core.abi import Abi, AbiPart, CompletionDuty, Discriminator, ExitDecoder
from coco_core.completion import Completed, Result
from coco_core.dispatch import Dispatcher, Handler, Tracer
from coco_core.errors import (
    CoCoError,
    CodeError,
    CompletionError,
    ConfigurationError,
    DecodeError,
    KvmRunRejected,
    LayoutError,
    RegistrationError,
)
from coco_core.errorspace import ErrorSpace, Landing, UnknownCode
from coco_core.exits import CoCoExit
from coco_core.kernels import DEFAULT_ABI
from coco_core.layout import CStruct, Layout, c_field, c_struct, struct_of, union_of
from coco_core.registry import Registrar, Registry
from coco_core.requests import (
    CertificateRequest,
    EventNotifySetup,
    MemoryConversion,
    MemoryFault,
    MsrAccess,
    NeutralRequest,
    PortIo,
    QuoteRequest,
    TdvmcallInfoQuery,
    Termination,
    Unsupported,
    VendorSpecific,
)
from coco_core.status import CoCoStatus, Outcome

__all__ = [
    "DEFAULT_ABI",
    "Abi",
    "AbiPart",
    "CStruct",
    "CertificateRequest",
    "CoCoError",
    "CoCoExit",
    "CoCoStatus",
    "CodeError",
    "Completed",
    "CompletionDuty",
    "CompletionError",
    "ConfigurationError",
    "DecodeError",
    "Discriminator",
    "Dispatcher",
    "ErrorSpace",
    "EventNotifySetup",
    "ExitDecoder",
    "Handler",
    "KvmRunRejected",
    "Landing",
    "Layout",
    "LayoutError",
    "MemoryConversion",
    "MemoryFault",
    "MsrAccess",
    "NeutralRequest",
    "Outcome",
    "PortIo",
    "QuoteRequest",
    "Registrar",
    "RegistrationError",
    "Registry",
    "Result",
    "TdvmcallInfoQuery",
    "Termination",
    "Tracer",
    "UnknownCode",
    "Unsupported",
    "VendorSpecific",
    "c_field",
    "c_struct",
    "struct_of",
    "union_of",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("coco-core")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
