# SPDX-License-Identifier: Apache-2.0
#
# A hostile guest for the emulated TEE (coco_core/emulated.py): the VMM must
# answer whatever arrives at the doorbell with the vendor's documented error
# and keep running. Entered with EDI = vendor (0 TDX, 1 SNP; the VMM sets it
# before boot).
#
#  1. One well-formed request whose handler the VMM made raise: TDX
#     GetTdVmCallInfo leaf 1 must give R10 = TDVMCALL_STATUS_INVALID_OPERAND
#     (the generic error), SNP extended guest request (8 pages at CERT_BUF)
#     SW_EXITINFO2 (R13) = SNP_GUEST_VMM_ERR_GENERIC << 32. Fail code 1 if not.
#  2. GARBAGE_CALLS doorbells with pseudo-random registers (xorshift64, fixed
#     seed). Half of them are shaped to reach the VMM: TDX R10 = 0 with a
#     random leaf 0x10000..0x10007 (never ReportFatalError: 0x10003 becomes
#     0x10005); SNP R12 = EXT_GUEST_REQUEST, PSC, or the MSR protocol with a
#     PSC request of a random GFN and op. The rest are random through and
#     through. The guest checks nothing here; the VMM checks every answer.
#  3. Reports 0: the VMM kept running.
# coco-link: doorbell

    .equ DOORBELL_TDVMCALL_PORT, 0x0CC0
    .equ DOORBELL_VMGEXIT_PORT, 0x0CC1
    .equ GARBAGE_CALLS, 16
    .equ CERT_BUF, 0x320000
    .equ MSR_PROTOCOL, 0xC0010130

    .code64
    .data
    .balign 8
seed:
    .quad 0x9E3779B97F4A7C15
left:
    .quad GARBAGE_CALLS
vendor:
    .quad 0

    .section .rodata
hello:
    .asciz "garbage guest: start\n"

    .text
    .globl guest_main
guest_main:
    mov %rdi, vendor(%rip)
    lea hello(%rip), %rdi
    call puts

    # 1. the raising handler
    cmpq $0, vendor(%rip)
    jne 1f
    xor %r10, %r10
    mov $0x10000, %r11                    # GetTdVmCallInfo
    mov $1, %r12
    call tdvmcall
    movabs $0x8000000000000000, %rax      # TDVMCALL_STATUS_INVALID_OPERAND
    cmp %rax, %r10
    jne fail1
    jmp 2f
1:  mov $CERT_BUF, %rax
    mov $8, %ebx
    mov $0x80000012, %r12d                # SVM_VMGEXIT_EXT_GUEST_REQUEST
    xor %r13d, %r13d
    xor %r14d, %r14d
    call vmgexit
    movabs $0xFFFFFFFF00000000, %rax      # SNP_GUEST_VMM_ERR_GENERIC << 32
    cmp %rax, %r13
    jne fail1

    # 2. garbage
2:  call xs
    mov %rax, %rbx
    call xs
    mov %rax, %rcx
    call xs
    mov %rax, %rsi
    call xs
    mov %rax, %r8
    call xs
    mov %rax, %r9
    call xs
    mov %rax, %r10
    call xs
    mov %rax, %r11
    call xs
    mov %rax, %r12
    call xs
    mov %rax, %r13
    call xs
    mov %rax, %r14
    call xs
    mov %rax, %r15
    call xs                               # RAX random too
    testq $1, left(%rip)
    jz 5f                                 # odd rounds: shaped
    cmpq $0, vendor(%rip)
    jne 3f
    xor %r10, %r10                        # TDX: a GHCI call, random leaf
    and $7, %r11
    cmp $3, %r11
    jne 6f
    mov $5, %r11
6:  add $0x10000, %r11
    mov $DOORBELL_TDVMCALL_PORT, %edi
    jmp 7f
3:  testq $2, left(%rip)                  # SNP: EXT_GUEST_REQUEST/PSC or MSR PSC
    jz 4f
    mov $0x80000012, %r12d
    testq $4, left(%rip)
    jz 5f
    mov $0x80000010, %r12d
    jmp 5f
4:  mov $MSR_PROTOCOL, %r12d
    and $~0xFFF, %r11
    or $0x014, %r11                       # GHCB_MSR_PSC_REQ, random gfn and op
5:  mov $DOORBELL_TDVMCALL_PORT, %edi
    cmpq $0, vendor(%rip)
    je 7f
    mov $DOORBELL_VMGEXIT_PORT, %edi
7:  call doorbell
    decq left(%rip)
    jnz 2b

    xor %edi, %edi
    jmp report
fail1:
    mov $1, %edi
    jmp report

# xs: RAX = the next xorshift64 value (Marsaglia 13/7/17). Clobbers RAX only.
xs:
    push %rdx
    mov seed(%rip), %rax
    mov %rax, %rdx
    shl $13, %rdx
    xor %rdx, %rax
    mov %rax, %rdx
    shr $7, %rdx
    xor %rdx, %rax
    mov %rax, %rdx
    shl $17, %rdx
    xor %rdx, %rax
    mov %rax, seed(%rip)
    pop %rdx
    ret
