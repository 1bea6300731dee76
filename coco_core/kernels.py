# SPDX-License-Identifier: Apache-2.0
"""The released Linux kernels coco knows, declared once.

Every plugin derives its released ABIs from :data:`RELEASES`, and the kernel
model derives its generation rules from it: a row says when the kernel was
released, where its uapi header was read, the highest ``KVM_EXIT_*`` number it
defines, and which CoCo features it *adds* (features accumulate: a kernel has
every feature of the kernels before it). A new kernel with the same CoCo ABI
as the last one is one new row, with no ``adds``.

Features are named once here; code asks :func:`has` instead of comparing
version numbers, so a proposal (an ABI that is not a release) has none of them.

Sources: ``include/uapi/linux/kvm.h`` of each release (6.16 read in
ColinIanKing/linux-next @ 022880fb, 7.2 in Debian ``linux-libc-dev`` 7.2.13);
the kvm-x86 commits named per row.
"""

from __future__ import annotations

import attrs

from coco_core.errors import ConfigurationError

__all__ = [
    "DEFAULT_ABI",
    "FEATURES",
    "MAP_GPA_RANGE_RET_CHECKED",
    "RELEASES",
    "SNP_REQ_CERTS_EXIT",
    "TDX_EXIT",
    "Kernel",
    "default_abi",
    "features",
    "has",
    "is_release",
    "kernel",
    "order",
    "released",
]

#: ``KVM_EXIT_TDX`` (40) and ``KVM_SYSTEM_EVENT_TDX_FATAL`` (7).
TDX_EXIT = "KVM_EXIT_TDX"
#: ``KVM_EXIT_SNP_REQ_CERTS`` (43) and ``KVM_SEV_SNP_ENABLE_REQ_CERTS``.
SNP_REQ_CERTS_EXIT = "KVM_EXIT_SNP_REQ_CERTS"
#: ``KVM_HC_MAP_GPA_RANGE``'s ``hypercall.ret`` must be 0, EINVAL or EAGAIN;
#: anything else fails ``KVM_RUN`` with EINVAL (``kvm_is_valid_map_gpa_range_ret``).
MAP_GPA_RANGE_RET_CHECKED = "map_gpa_range_ret_checked"

#: Every feature a row may add, with what it means.
FEATURES = {
    TDX_EXIT: "KVM_EXIT_TDX (40) and KVM_SYSTEM_EVENT_TDX_FATAL (7) for TDX guests",
    SNP_REQ_CERTS_EXIT: "KVM_EXIT_SNP_REQ_CERTS (43), enabled by KVM_SEV_SNP_ENABLE_REQ_CERTS",
    MAP_GPA_RANGE_RET_CHECKED: "KVM_HC_MAP_GPA_RANGE ret must be 0, EINVAL or EAGAIN",
}


def _known_features(
    _: object, attribute: attrs.Attribute[frozenset[str]], value: frozenset[str]
) -> None:
    unknown = sorted(value - FEATURES.keys())
    if unknown:
        raise ValueError(
            f"{attribute.name}: unknown feature(s) {unknown}; known: {sorted(FEATURES)}"
        )


@attrs.frozen(kw_only=True)
class Kernel:
    """One released kernel.

    :param name: the ABI name (``linux-7.2``).
    :param date: year and month of the release (``2026-08``); also the ABI's sort key.
    :param header: where its uapi ``kvm.h`` was read.
    :param last_exit: the highest ``KVM_EXIT_*`` number the header defines.
    :param changes: what the release changed for the CoCo exits, with commits.
    :param adds: the features (names from :data:`FEATURES`) it brings.

    .. versionadded:: 0.2
    """

    name: str
    date: str
    header: str
    last_exit: int
    changes: str
    adds: frozenset[str] = attrs.field(default=frozenset(), validator=_known_features)


#: Released kernels, oldest first.
RELEASES: tuple[Kernel, ...] = (
    Kernel(
        name="linux-6.16",
        date="2025-07",
        header="include/uapi/linux/kvm.h (ColinIanKing/linux-next @ 022880fb)",
        last_exit=40,  # KVM_EXIT_TDX
        changes="KVM_EXIT_TDX (40) and KVM_SYSTEM_EVENT_TDX_FATAL (7), commits cf207eac06f6, "
        "25e8b1dd4883, 4580dbef5ce0; MapGPA: any non-zero hypercall.ret gives TDVMCALL "
        "INVALID_OPERAND (arch/x86/kvm/vmx/tdx.c)",
        adds=frozenset({TDX_EXIT}),
    ),
    Kernel(
        name="linux-7.0",
        date="2026-04",
        header="include/uapi/linux/kvm.h",
        last_exit=43,  # KVM_EXIT_ARM_SEA 41, KVM_EXIT_ARM_LDST64B 42, KVM_EXIT_SNP_REQ_CERTS 43
        changes="KVM_EXIT_SNP_REQ_CERTS (43) with KVM_SEV_SNP_ENABLE_REQ_CERTS "
        "(kvm-x86 svm, fa9893fadbc2); 41 and 42 are arm64's",
        adds=frozenset({SNP_REQ_CERTS_EXIT}),
    ),
    Kernel(
        name="linux-7.1",
        date="2026-06",
        header="include/uapi/linux/kvm.h",
        last_exit=43,
        changes="no CoCo exit change",
    ),
    Kernel(
        name="linux-7.2",
        date="2026-08",
        header="include/uapi/linux/kvm.h (Debian linux-libc-dev 7.2.13)",
        last_exit=43,
        changes="KVM_HC_MAP_GPA_RANGE ret must be 0, EINVAL or EAGAIN, anything else fails "
        "KVM_RUN with EINVAL; TDX maps EAGAIN to RETRY, SNP maps both errors to PSC GENERIC "
        "(kvm-x86 misc 3e2dec1ede0a / 5d40e5b49442, applied 2026-05-29)",
        adds=frozenset({MAP_GPA_RANGE_RET_CHECKED}),
    ),
)


def released() -> tuple[Kernel, ...]:
    """The released kernels, oldest first (read at call time, so a new row is seen)."""
    return RELEASES


def kernel(name: str) -> Kernel:
    """The released kernel called ``name``.

    :raises ConfigurationError: ``name`` is not a released kernel (lists the known ones).
    """
    for k in RELEASES:
        if k.name == name:
            return k
    known = ", ".join(k.name for k in RELEASES)
    raise ConfigurationError(f"{name!r} is not a released kernel; known: {known}")


def is_release(name: str) -> bool:
    """True if ``name`` is a released kernel (not a proposal)."""
    return any(k.name == name for k in RELEASES)


def features(name: str) -> frozenset[str]:
    """Every feature kernel ``name`` has (its own and its predecessors'); none for a proposal."""
    out: set[str] = set()
    for k in RELEASES:
        out |= k.adds
        if k.name == name:
            return frozenset(out)
    return frozenset()


def has(name: str, feature: str) -> bool:
    """True if ABI ``name`` is a released kernel that has ``feature``.

    :raises ValueError: ``feature`` is not one of :data:`FEATURES`.
    """
    if feature not in FEATURES:
        raise ValueError(f"unknown kernel feature {feature!r}; known: {sorted(FEATURES)}")
    return feature in features(name)


def order(name: str) -> tuple[int, str]:
    """Sort key of an ABI name: releases in table order, then every other name by itself."""
    for i, k in enumerate(RELEASES):
        if k.name == name:
            return (i, "")
    return (len(RELEASES), name)


def default_abi() -> str:
    """The newest released kernel: the ABI a dispatcher uses unless told otherwise."""
    return RELEASES[-1].name


#: The newest released kernel when coco was imported (see :func:`default_abi`).
DEFAULT_ABI = default_abi()
