# SPDX-License-Identifier: Apache-2.0
#
# The coco emulated-TEE doorbell framework (64-bit, AT&T syntax).
#
# The VMM enters _start in long mode (Vcpu.setup_long_mode) with RSP set to
# this vCPU's stack. _start calls `guest_main` (provided by the guest that
# links with this file: "# coco-link: doorbell"), which returns a result code
# in EAX (0 = pass), and reports it on RESULT_PORT. The port numbers and the
# register conventions are documented in coco_core/kvm/doorbell.py; keep the
# .equ values below in sync (tests/kvm/test_doorbell.py checks them).

    .equ DOORBELL_TDVMCALL_PORT, 0x0CC0
    .equ DOORBELL_VMGEXIT_PORT, 0x0CC1
    .equ CONSOLE_PORT, 0x0CCE
    .equ RESULT_PORT, 0x0CCF

    .code64
    .section .text.entry, "ax"
    .globl _start
_start:
    xor %ebp, %ebp
    call guest_main
    mov %eax, %edi
    jmp report

    .text

# doorbell(port in DI): `out %al, %dx` with DX = port. The VMM sees every GPR
# as it is here (RDX = port) and may change any of them except RDX, which is
# restored to the caller's value.
    .globl doorbell
doorbell:
    push %rdx
    mov %edi, %edx
    out %al, %dx
    pop %rdx
    ret

# tdvmcall: ring DOORBELL_TDVMCALL_PORT. In: R10 = 0, R11 = leaf, R12..R15 as
# for TDG.VP.VMCALL. Out: R10 = status, R11..R15 as the VMM left them.
    .globl tdvmcall
tdvmcall:
    push %rdx
    mov $DOORBELL_TDVMCALL_PORT, %edx
    out %al, %dx
    pop %rdx
    ret

# vmgexit: ring DOORBELL_VMGEXIT_PORT (SNP-style; register use defined by the VMM side).
    .globl vmgexit
vmgexit:
    push %rdx
    mov $DOORBELL_VMGEXIT_PORT, %edx
    out %al, %dx
    pop %rdx
    ret

# putc(c in DIL): one byte to the console. Preserves all registers.
    .globl putc
putc:
    push %rax
    push %rdx
    mov %edi, %eax
    mov $CONSOLE_PORT, %edx
    out %al, %dx
    pop %rdx
    pop %rax
    ret

# puts(s in RDI): a NUL-terminated string to the console. Preserves all registers.
    .globl puts
puts:
    push %rax
    push %rdx
    push %rsi
    mov %rdi, %rsi
    mov $CONSOLE_PORT, %edx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  pop %rsi
    pop %rdx
    pop %rax
    ret

# report(code in EDI): a 32-bit `out` of the code to RESULT_PORT, then halt
# for good. Never returns.
    .globl report
report:
    mov %edi, %eax
    mov $RESULT_PORT, %edx
    out %eax, %dx
3:  hlt
    jmp 3b
