# SPDX-License-Identifier: Apache-2.0
#
# Self-test of the doorbell framework: the VMM's test handlers add 1 to R10
# and set R11 = R12 + R13 on the TDVMCALL doorbell, and set RAX = ~RAX on the
# VMGEXIT doorbell. Fail codes: 1..4 name the check that failed.
# coco-link: doorbell

    .code64
    .section .rodata
hello:
    .asciz "doorbell selftest\n"

    .text
    .globl guest_main
guest_main:
    lea hello(%rip), %rdi
    call puts

    mov $0x1234, %r10
    mov $0x77, %r11
    mov $0x1000, %r12
    mov $0x0234, %r13
    mov $0x5555, %r14
    mov $0x6666, %r15
    mov $0xABCDEF, %rdx
    call tdvmcall
    mov $1, %eax
    cmp $0x1235, %r10
    jne 9f
    mov $2, %eax
    cmp $0x1234, %r11
    jne 9f
    mov $3, %eax
    cmp $0xABCDEF, %rdx
    jne 9f

    mov $0x0F0F0F0F0F0F0F0F, %rax
    call vmgexit
    mov $0xF0F0F0F0F0F0F0F0, %rcx
    cmp %rcx, %rax
    mov $4, %eax
    jne 9f

    xor %eax, %eax
9:  ret
