# SPDX-License-Identifier: Apache-2.0
#
# The exit round-trip benchmark guest (64-bit, AT&T syntax).
#
# In: RDI = iterations N, RSI = port P (the VMM sets both). Each iteration is
# two exits: `in` of one byte from P (the VMM writes the IN data) and `out` of
# that byte back to P. Then a 32-bit `out` of 0 to RESULT_PORT (0x0CCF) says
# "done", and the guest halts.

    .code64
    .section .text.entry, "ax"
    .globl _start
_start:
    mov %esi, %edx
    test %rdi, %rdi
    jz 2f
1:  inb %dx, %al
    outb %al, %dx
    dec %rdi
    jnz 1b
2:  mov $0x0CCF, %edx
    xor %eax, %eax
    out %eax, %dx
3:  hlt
    jmp 3b
