# SPDX-License-Identifier: Apache-2.0
"""KVM ioctl, capability and flag numbers, computed the way the kernel does.

Every request number is built with :func:`_IO`, :func:`_IOR`, :func:`_IOW` and
:func:`_IOWR`, which follow ``include/uapi/asm-generic/ioctl.h`` (x86_64 uses the
generic encoding). The ``KVMIO`` type, the command numbers and the struct
sizes come from the Linux 7.2 uapi headers as shipped in Debian's
``linux-libc-dev`` 7.2.13-1: ``include/uapi/linux/kvm.h`` (written ``kvm.h``
below) and ``arch/x86/include/uapi/asm/kvm.h`` (written ``asm/kvm.h``).
``tests/kvm/test_ioctls.py`` recompiles the numbers with gcc against those
headers when they are present.

Names are the C macro names, so ``git grep KVM_RUN`` finds the Python line.
"""

from __future__ import annotations

from coco_core.generic.uapi import KVM_RUN_SIZE

__all__ = [
    "GUEST_MEMFD_FLAG_INIT_SHARED",
    "GUEST_MEMFD_FLAG_MMAP",
    "KVMIO",
    "KVM_API_VERSION",
    "KVM_CAP_EXIT_HYPERCALL",
    "KVM_CAP_GUEST_MEMFD",
    "KVM_CAP_GUEST_MEMFD_FLAGS",
    "KVM_CAP_IMMEDIATE_EXIT",
    "KVM_CAP_MAX_VCPUS",
    "KVM_CAP_MEMORY_ATTRIBUTES",
    "KVM_CAP_MEMORY_FAULT_INFO",
    "KVM_CAP_NR_VCPUS",
    "KVM_CAP_SYSTEM_EVENT_DATA",
    "KVM_CAP_USER_MEMORY",
    "KVM_CAP_USER_MEMORY2",
    "KVM_CAP_VM_TYPES",
    "KVM_CAP_X86_MSR_FILTER",
    "KVM_CAP_X86_USER_SPACE_MSR",
    "KVM_CHECK_EXTENSION",
    "KVM_CREATE_GUEST_MEMFD",
    "KVM_CREATE_VCPU",
    "KVM_CREATE_VM",
    "KVM_ENABLE_CAP",
    "KVM_GET_API_VERSION",
    "KVM_GET_DEVICE_ATTR",
    "KVM_GET_MSRS",
    "KVM_GET_REGS",
    "KVM_GET_SREGS",
    "KVM_GET_SUPPORTED_CPUID",
    "KVM_GET_VCPU_MMAP_SIZE",
    "KVM_HAS_DEVICE_ATTR",
    "KVM_MEMORY_ENCRYPT_OP",
    "KVM_MEM_GUEST_MEMFD",
    "KVM_MEM_LOG_DIRTY_PAGES",
    "KVM_MEM_READONLY",
    "KVM_NR_INTERRUPTS",
    "KVM_RUN",
    "KVM_SET_CPUID2",
    "KVM_SET_DEVICE_ATTR",
    "KVM_SET_MEMORY_ATTRIBUTES",
    "KVM_SET_MSRS",
    "KVM_SET_REGS",
    "KVM_SET_SREGS",
    "KVM_SET_TSS_ADDR",
    "KVM_SET_USER_MEMORY_REGION",
    "KVM_SET_USER_MEMORY_REGION2",
    "KVM_SIGNAL_MSI",
    "KVM_X86_DEFAULT_VM",
    "KVM_X86_GRP_SEV",
    "KVM_X86_GRP_SYSTEM",
    "KVM_X86_SEV_ES_VM",
    "KVM_X86_SEV_SNP_REQ_CERTS",
    "KVM_X86_SEV_VM",
    "KVM_X86_SEV_VMSA_FEATURES",
    "KVM_X86_SNP_POLICY_BITS",
    "KVM_X86_SNP_VM",
    "KVM_X86_SW_PROTECTED_VM",
    "KVM_X86_TDX_VM",
    "SIZEOF_KVM_CPUID2",
    "SIZEOF_KVM_CPUID_ENTRY2",
    "SIZEOF_KVM_CREATE_GUEST_MEMFD",
    "SIZEOF_KVM_DEVICE_ATTR",
    "SIZEOF_KVM_ENABLE_CAP",
    "SIZEOF_KVM_MEMORY_ATTRIBUTES",
    "SIZEOF_KVM_MSI",
    "SIZEOF_KVM_MSRS",
    "SIZEOF_KVM_MSR_ENTRY",
    "SIZEOF_KVM_REGS",
    "SIZEOF_KVM_RUN",
    "SIZEOF_KVM_SREGS",
    "SIZEOF_KVM_USERSPACE_MEMORY_REGION",
    "SIZEOF_KVM_USERSPACE_MEMORY_REGION2",
]

# --- include/uapi/asm-generic/ioctl.h (Linux 7.2) -------------------------------
_IOC_NRBITS = 8  # _IOC_NRBITS
_IOC_TYPEBITS = 8  # _IOC_TYPEBITS
_IOC_SIZEBITS = 14  # _IOC_SIZEBITS (generic; x86 does not override it)
_IOC_DIRBITS = 2  # _IOC_DIRBITS
_IOC_NRSHIFT = 0  # _IOC_NRSHIFT
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS  # _IOC_TYPESHIFT
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS  # _IOC_SIZESHIFT
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS  # _IOC_DIRSHIFT
_IOC_NONE = 0  # _IOC_NONE
_IOC_WRITE = 1  # _IOC_WRITE
_IOC_READ = 2  # _IOC_READ


def _IOC(direction: int, type_: int, nr: int, size: int) -> int:
    """Encode an ioctl request number exactly as ``_IOC()`` does."""
    if not 0 <= size < (1 << _IOC_SIZEBITS):
        raise ValueError(f"ioctl argument size {size} does not fit in {_IOC_SIZEBITS} bits")
    return (
        (direction << _IOC_DIRSHIFT)
        | (type_ << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


def _IO(type_: int, nr: int) -> int:
    """``_IO(type, nr)``: no argument."""
    return _IOC(_IOC_NONE, type_, nr, 0)


def _IOR(type_: int, nr: int, size: int) -> int:
    """``_IOR(type, nr, T)`` with ``size = sizeof(T)``: the kernel writes the argument."""
    return _IOC(_IOC_READ, type_, nr, size)


def _IOW(type_: int, nr: int, size: int) -> int:
    """``_IOW(type, nr, T)`` with ``size = sizeof(T)``: the kernel reads the argument."""
    return _IOC(_IOC_WRITE, type_, nr, size)


def _IOWR(type_: int, nr: int, size: int) -> int:
    """``_IOWR(type, nr, T)`` with ``size = sizeof(T)``: both directions."""
    return _IOC(_IOC_READ | _IOC_WRITE, type_, nr, size)


# --- struct sizes (x86_64, LP64) -------------------------------------------------
# Each is checked against gcc's sizeof() in tests/kvm/test_ioctls.py.
SIZEOF_KVM_REGS = 144  # asm/kvm.h struct kvm_regs: 18 x __u64
# asm/kvm.h struct kvm_sregs: 8 kvm_segment (24) + 2 kvm_dtable (16) + 7 __u64
# + interrupt_bitmap[(KVM_NR_INTERRUPTS + 63) / 64] (4 x __u64)
SIZEOF_KVM_SREGS = 312
SIZEOF_KVM_USERSPACE_MEMORY_REGION = 32  # kvm.h struct kvm_userspace_memory_region
SIZEOF_KVM_USERSPACE_MEMORY_REGION2 = 160  # kvm.h struct kvm_userspace_memory_region2
SIZEOF_KVM_ENABLE_CAP = 104  # kvm.h struct kvm_enable_cap: cap, flags, args[4], pad[64]
SIZEOF_KVM_CPUID2 = 8  # asm/kvm.h struct kvm_cpuid2 header (flexible entries[])
SIZEOF_KVM_CPUID_ENTRY2 = 40  # asm/kvm.h struct kvm_cpuid_entry2
SIZEOF_KVM_MSRS = 8  # asm/kvm.h struct kvm_msrs header (flexible entries[])
SIZEOF_KVM_MSR_ENTRY = 16  # asm/kvm.h struct kvm_msr_entry
SIZEOF_KVM_DEVICE_ATTR = 24  # kvm.h struct kvm_device_attr
SIZEOF_KVM_MEMORY_ATTRIBUTES = 32  # kvm.h struct kvm_memory_attributes
SIZEOF_KVM_CREATE_GUEST_MEMFD = 64  # kvm.h struct kvm_create_guest_memfd
SIZEOF_KVM_MSI = 32  # kvm.h struct kvm_msi
SIZEOF_KVM_RUN = KVM_RUN_SIZE  # kvm.h struct kvm_run, declared once in coco_core.generic.uapi
_SIZEOF_UNSIGNED_LONG = 8  # LP64

KVM_NR_INTERRUPTS = 256  # asm/kvm.h
KVM_API_VERSION = 12  # kvm.h

# --- ioctl request numbers (kvm.h, Linux 7.2) -----------------------------------
KVMIO = 0xAE  # kvm.h

# system ioctls
KVM_GET_API_VERSION = _IO(KVMIO, 0x00)  # kvm.h
KVM_CREATE_VM = _IO(KVMIO, 0x01)  # kvm.h
KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03)  # kvm.h
KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04)  # kvm.h
KVM_GET_SUPPORTED_CPUID = _IOWR(KVMIO, 0x05, SIZEOF_KVM_CPUID2)  # kvm.h

# VM ioctls
KVM_CREATE_VCPU = _IO(KVMIO, 0x41)  # kvm.h
KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, SIZEOF_KVM_USERSPACE_MEMORY_REGION)  # kvm.h
KVM_SET_TSS_ADDR = _IO(KVMIO, 0x47)  # kvm.h
KVM_SET_USER_MEMORY_REGION2 = _IOW(KVMIO, 0x49, SIZEOF_KVM_USERSPACE_MEMORY_REGION2)  # kvm.h
KVM_SIGNAL_MSI = _IOW(KVMIO, 0xA5, SIZEOF_KVM_MSI)  # kvm.h
KVM_SET_DEVICE_ATTR = _IOW(KVMIO, 0xE1, SIZEOF_KVM_DEVICE_ATTR)  # kvm.h
KVM_GET_DEVICE_ATTR = _IOW(KVMIO, 0xE2, SIZEOF_KVM_DEVICE_ATTR)  # kvm.h
KVM_HAS_DEVICE_ATTR = _IOW(KVMIO, 0xE3, SIZEOF_KVM_DEVICE_ATTR)  # kvm.h
KVM_MEMORY_ENCRYPT_OP = _IOWR(KVMIO, 0xBA, _SIZEOF_UNSIGNED_LONG)  # kvm.h
KVM_SET_MEMORY_ATTRIBUTES = _IOW(KVMIO, 0xD2, SIZEOF_KVM_MEMORY_ATTRIBUTES)  # kvm.h
KVM_CREATE_GUEST_MEMFD = _IOWR(KVMIO, 0xD4, SIZEOF_KVM_CREATE_GUEST_MEMFD)  # kvm.h

# vCPU ioctls
KVM_RUN = _IO(KVMIO, 0x80)  # kvm.h
KVM_GET_REGS = _IOR(KVMIO, 0x81, SIZEOF_KVM_REGS)  # kvm.h
KVM_SET_REGS = _IOW(KVMIO, 0x82, SIZEOF_KVM_REGS)  # kvm.h
KVM_GET_SREGS = _IOR(KVMIO, 0x83, SIZEOF_KVM_SREGS)  # kvm.h
KVM_SET_SREGS = _IOW(KVMIO, 0x84, SIZEOF_KVM_SREGS)  # kvm.h
KVM_GET_MSRS = _IOWR(KVMIO, 0x88, SIZEOF_KVM_MSRS)  # kvm.h
KVM_SET_MSRS = _IOW(KVMIO, 0x89, SIZEOF_KVM_MSRS)  # kvm.h
KVM_SET_CPUID2 = _IOW(KVMIO, 0x90, SIZEOF_KVM_CPUID2)  # kvm.h
KVM_ENABLE_CAP = _IOW(KVMIO, 0xA3, SIZEOF_KVM_ENABLE_CAP)  # kvm.h (also a VM ioctl)

# --- capabilities (kvm.h, Linux 7.2) ----------------------------------------------
KVM_CAP_USER_MEMORY = 3  # kvm.h
KVM_CAP_NR_VCPUS = 9  # kvm.h
KVM_CAP_MAX_VCPUS = 66  # kvm.h
KVM_CAP_IMMEDIATE_EXIT = 136  # kvm.h
KVM_CAP_X86_USER_SPACE_MSR = 188  # kvm.h
KVM_CAP_X86_MSR_FILTER = 189  # kvm.h
KVM_CAP_EXIT_HYPERCALL = 201  # kvm.h
KVM_CAP_SYSTEM_EVENT_DATA = 215  # kvm.h
KVM_CAP_USER_MEMORY2 = 231  # kvm.h
KVM_CAP_MEMORY_FAULT_INFO = 232  # kvm.h
KVM_CAP_MEMORY_ATTRIBUTES = 233  # kvm.h
KVM_CAP_GUEST_MEMFD = 234  # kvm.h
KVM_CAP_VM_TYPES = 235  # kvm.h
KVM_CAP_GUEST_MEMFD_FLAGS = 244  # kvm.h

# --- flags (exit reasons, KVM_EXIT_IO_*, KVM_MSR_EXIT_REASON_* and KVM_HC_* are the
# generic plugin's: coco_core.generic.uapi) ----------------------------------------
KVM_MEM_LOG_DIRTY_PAGES = 1 << 0  # kvm.h
KVM_MEM_READONLY = 1 << 1  # kvm.h
KVM_MEM_GUEST_MEMFD = 1 << 2  # kvm.h

GUEST_MEMFD_FLAG_MMAP = 1 << 0  # kvm.h
GUEST_MEMFD_FLAG_INIT_SHARED = 1 << 1  # kvm.h

# VM types, argument of KVM_CREATE_VM on x86 (asm/kvm.h)
KVM_X86_DEFAULT_VM = 0  # asm/kvm.h
KVM_X86_SW_PROTECTED_VM = 1  # asm/kvm.h
KVM_X86_SEV_VM = 2  # asm/kvm.h
KVM_X86_SEV_ES_VM = 3  # asm/kvm.h
KVM_X86_SNP_VM = 4  # asm/kvm.h
KVM_X86_TDX_VM = 5  # asm/kvm.h

# Device-attribute groups of the system fd (/dev/kvm) (asm/kvm.h)
KVM_X86_GRP_SYSTEM = 0  # asm/kvm.h
KVM_X86_GRP_SEV = 1  # asm/kvm.h
KVM_X86_SEV_VMSA_FEATURES = 0  # asm/kvm.h
KVM_X86_SNP_POLICY_BITS = 1  # asm/kvm.h
KVM_X86_SEV_SNP_REQ_CERTS = 2  # asm/kvm.h
