# SPDX-License-Identifier: Apache-2.0
"""ioctl numbers and struct layouts against literals and against the Linux 7.2 uapi headers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from coco_core.generic.uapi import EXIT_REASON, IMMEDIATE_EXIT, KVM_MEMORY_ATTRIBUTE_PRIVATE
from coco_core.kvm import ioctls, structs
from coco_core.kvm.structs import (
    CpuidEntry2,
    DTable,
    MsrEntry,
    Regs,
    Segment,
    Sregs,
    pack_cpuid2,
    pack_msrs,
    unpack_cpuid2,
    unpack_msrs,
)

# Literal values as printed by a C program built against the uapi headers.
KNOWN = {
    "KVM_GET_API_VERSION": 0xAE00,
    "KVM_CREATE_VM": 0xAE01,
    "KVM_CHECK_EXTENSION": 0xAE03,
    "KVM_GET_VCPU_MMAP_SIZE": 0xAE04,
    "KVM_GET_SUPPORTED_CPUID": 0xC008AE05,
    "KVM_CREATE_VCPU": 0xAE41,
    "KVM_SET_USER_MEMORY_REGION": 0x4020AE46,
    "KVM_RUN": 0xAE80,
    "KVM_GET_REGS": 0x8090AE81,
    "KVM_SET_REGS": 0x4090AE82,
    "KVM_GET_SREGS": 0x8138AE83,
    "KVM_SET_SREGS": 0x4138AE84,
    "KVM_SET_CPUID2": 0x4008AE90,
    "KVM_ENABLE_CAP": 0x4068AEA3,
    "KVM_MEMORY_ENCRYPT_OP": 0xC008AEBA,
    "KVM_SET_MEMORY_ATTRIBUTES": 0x4020AED2,
    "KVM_CREATE_GUEST_MEMFD": 0xC040AED4,
    "KVM_HAS_DEVICE_ATTR": 0x4018AEE3,
}


@pytest.mark.parametrize(("name", "value"), sorted(KNOWN.items()))
def test_known_literal(name: str, value: int) -> None:
    """Each ioctl number equals its well-known literal value."""
    assert getattr(ioctls, name) == value


def test_capability_and_type_numbers() -> None:
    """The capability, VM-type and attribute numbers match the values in the brief."""
    assert ioctls.KVM_CAP_EXIT_HYPERCALL == 201
    assert ioctls.KVM_CAP_MEMORY_ATTRIBUTES == 233
    assert [
        ioctls.KVM_X86_DEFAULT_VM,
        ioctls.KVM_X86_SW_PROTECTED_VM,
        ioctls.KVM_X86_SEV_VM,
        ioctls.KVM_X86_SEV_ES_VM,
        ioctls.KVM_X86_SNP_VM,
        ioctls.KVM_X86_TDX_VM,
    ] == [0, 1, 2, 3, 4, 5]
    assert (ioctls.KVM_X86_GRP_SEV, ioctls.KVM_X86_SEV_SNP_REQ_CERTS) == (1, 2)
    assert KVM_MEMORY_ATTRIBUTE_PRIVATE == 1 << 3


def test_ioc_rejects_oversized_argument() -> None:
    """An argument size that does not fit the 14-bit size field is refused."""
    with pytest.raises(ValueError, match="14 bits"):
        ioctls._IOW(ioctls.KVMIO, 0, 1 << 14)


def _int_names() -> list[str]:
    return [n for n in ioctls.__all__ if isinstance(getattr(ioctls, n), int) and n != "KVMIO"] + [
        "KVMIO"
    ]


_OFFSETS = {
    "immediate_exit": ("struct kvm_run", "immediate_exit", IMMEDIATE_EXIT),
    "exit_reason": ("struct kvm_run", "exit_reason", EXIT_REASON),
    "io.direction": ("struct kvm_run", "io.direction", 32),
    "io.size": ("struct kvm_run", "io.size", 33),
    "io.port": ("struct kvm_run", "io.port", 34),
    "io.count": ("struct kvm_run", "io.count", 36),
    "io.data_offset": ("struct kvm_run", "io.data_offset", 40),
    "msr.error": ("struct kvm_run", "msr.error", 32),
    "msr.reason": ("struct kvm_run", "msr.reason", 40),
    "msr.index": ("struct kvm_run", "msr.index", 44),
    "msr.data": ("struct kvm_run", "msr.data", 48),
    "memory_fault.gpa": ("struct kvm_run", "memory_fault.gpa", 40),
    "sregs.gdt": ("struct kvm_sregs", "gdt", 8 * 24),
    "sregs.cr0": ("struct kvm_sregs", "cr0", 8 * 24 + 2 * 16),
    "sregs.efer": ("struct kvm_sregs", "efer", 8 * 24 + 2 * 16 + 5 * 8),
    "segment.l": ("struct kvm_segment", "l", 19),
}

_STRUCT_SIZES = {
    "struct kvm_regs": structs.REGS.size,
    "struct kvm_segment": structs.SEGMENT.size,
    "struct kvm_dtable": structs.DTABLE.size,
    "struct kvm_sregs": structs.SREGS.size,
    "struct kvm_userspace_memory_region": structs.USERSPACE_MEMORY_REGION.size,
    "struct kvm_userspace_memory_region2": structs.USERSPACE_MEMORY_REGION2.size,
    "struct kvm_enable_cap": structs.ENABLE_CAP.size,
    "struct kvm_cpuid2": structs.CPUID2_HEADER.size,
    "struct kvm_cpuid_entry2": structs.CPUID_ENTRY2.size,
    "struct kvm_memory_attributes": structs.MEMORY_ATTRIBUTES.size,
    "struct kvm_device_attr": structs.DEVICE_ATTR.size,
    "struct kvm_msrs": structs.MSRS_HEADER.size,
    "struct kvm_msr_entry": structs.MSR_ENTRY.size,
}


@pytest.fixture(scope="module")
def uapi_values(
    tmp_path_factory: pytest.TempPathFactory, uapi_include: Path, gcc: str
) -> dict[str, int]:
    """Every constant, sizeof and offsetof as gcc computes it from the uapi headers."""
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <linux/kvm.h>",
        "#include <linux/kvm_para.h>",
        "int main(void){",
    ]
    for name in _int_names():
        expr = (
            f"sizeof(struct {name[len('SIZEOF_') :].lower()})"
            if name.startswith("SIZEOF_")
            else name
        )
        lines.append(f'printf("%s %llu\\n", "{name}", (unsigned long long)({expr}));')
    for key, (ctype, member, _) in _OFFSETS.items():
        lines.append(
            f'printf("%s %llu\\n", "off:{key}", (unsigned long long)offsetof({ctype}, {member}));'
        )
    for ctype in _STRUCT_SIZES:
        lines.append(f'printf("%s %llu\\n", "size:{ctype}", (unsigned long long)sizeof({ctype}));')
    lines.append("return 0;}")
    work = tmp_path_factory.mktemp("uapi")
    src = work / "abi.c"
    src.write_text("\n".join(lines))
    exe = work / "abi"
    arch = uapi_include / "x86_64-linux-gnu"
    proc = subprocess.run(
        [gcc, f"-I{uapi_include}", f"-I{arch}", "-o", str(exe), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.rsplit(" ", 1) for line in out.splitlines())}


@pytest.mark.parametrize("name", _int_names())
def test_constant_matches_uapi(uapi_values: dict[str, int], name: str) -> None:
    """Each constant (ioctl number, capability, flag, sizeof) equals the header's value."""
    assert getattr(ioctls, name) == uapi_values[name], f"{name}: {getattr(ioctls, name):#x}"


@pytest.mark.parametrize("key", sorted(_OFFSETS))
def test_offset_matches_uapi(uapi_values: dict[str, int], key: str) -> None:
    """Each kvm_run/kvm_sregs field offset used here equals gcc's offsetof."""
    assert _OFFSETS[key][2] == uapi_values[f"off:{key}"]


@pytest.mark.parametrize("ctype", sorted(_STRUCT_SIZES))
def test_struct_size_matches_uapi(uapi_values: dict[str, int], ctype: str) -> None:
    """Each precompiled struct format has the C struct's size."""
    assert _STRUCT_SIZES[ctype] == uapi_values[f"size:{ctype}"]


def test_regs_round_trip() -> None:
    """Regs packs to 144 bytes and unpacks to an equal value."""
    regs = Regs(rax=1, r15=2**64 - 1, rip=0x100000)
    raw = regs.pack()
    assert len(raw) == 144
    assert Regs.unpack(raw) == regs
    assert regs.replace(r10=5).r10 == 5


def test_sregs_round_trip() -> None:
    """Sregs packs to 312 bytes and unpacks to an equal value, segment fields in place."""
    code = Segment(base=0, limit=0xFFFFFFFF, selector=8, type=11, present=1, s=1, l=1, g=1)
    sregs = Sregs(
        cs=code, gdt=DTable(0x4000, 23), cr0=0x80050033, efer=0x500, interrupt_bitmap=(1, 2, 3, 4)
    )
    raw = sregs.pack()
    assert len(raw) == 312
    assert Sregs.unpack(raw) == sregs
    assert raw[19] == 1  # kvm_segment.l of cs at offset 19


def test_cpuid2_and_msrs_round_trip() -> None:
    """kvm_cpuid2 and kvm_msrs encode their entry counts and entries."""
    entries = (CpuidEntry2(0, 0, 0, 1, 2, 3, 4), CpuidEntry2(0x80000001, edx=1 << 29))
    buf = pack_cpuid2(entries, capacity=4)
    assert isinstance(buf, bytearray)
    assert len(buf) == 8 + 4 * 40
    assert unpack_cpuid2(pack_cpuid2(entries)) == entries
    with pytest.raises(ValueError, match="capacity"):
        pack_cpuid2(entries, capacity=1)
    msrs = (MsrEntry(0xC0010130, 7), MsrEntry(0x10, 2**64 - 1))
    assert unpack_msrs(pack_msrs(msrs)) == msrs
