# SPDX-License-Identifier: Apache-2.0
#
# MSR exits: RDMSR then WRMSR of MSR_AMD64_SEV_ES_GHCB (0xC0010130, AMD APM
# vol. 2, 15.35.5), which KVM does not handle on a non-SEV VM, so with
# KVM_CAP_X86_USER_SPACE_MSR (reason UNKNOWN) both reach userspace. The VMM
# answers the RDMSR with 0x1122334455667788; the guest writes that value + 1.
# Fail code 1: the RDMSR value was wrong.
# coco-link: doorbell

    .code64
    .text
    .globl guest_main
guest_main:
    mov $0xC0010130, %ecx
    rdmsr
    shl $32, %rdx
    mov %eax, %eax
    or %rdx, %rax
    mov $0x1122334455667788, %r8
    cmp %r8, %rax
    jne 8f
    inc %rax
    mov %rax, %rdx
    shr $32, %rdx
    mov $0xC0010130, %ecx
    wrmsr
    xor %eax, %eax
    ret
8:  mov $1, %eax
    ret
