# SPDX-License-Identifier: Apache-2.0
#
# The TDX demo guest of the emulated TEE (coco_core/emulated.py; plugin side:
# plugins/tdx/coco_tdx/doorbell.py and demo.py). It makes the TDG.VP.VMCALLs a
# TD makes, through the TDVMCALL doorbell, and checks every answer itself:
#
#  1. SetupEventNotifyInterrupt, vector 0x40            -> R10 = SUCCESS
#  2. GetTdVmCallInfo, leaf 1                            -> R10 = SUCCESS (R11 reported, tag 1)
#  3. GetQuote: builds the shared buffer at QUOTE_BUF (version 1, status 0,
#     in_len 1024, out_len 0, the TDREPORT) and calls GetQuote with the
#     GPA.SHARED bit (bit 47, GPAW 48) set, size QUOTE_BUF_SIZE -> R10 = SUCCESS;
#     then polls the status (bounded loop with `pause`) until it leaves
#     GET_QUOTE_IN_FLIGHT. This software KVM does not usefully deliver the
#     event-notify interrupt (no IDT here), so the guest polls as the Linux
#     tdx-guest driver does. Checks status SUCCESS, 0 < out_len <= room, and the
#     quote header version 4 or 5; reports out_len (tag 2), the version (tag 3)
#     and a 32-bit FNV-1a of the out_len quote bytes (tag 4) so the VMM can
#     compare them with what the service wrote. A real TD would not report a
#     checksum: it hands the quote to a verifier.
#  4. MapGPA of 2 pages at MAP_GPA private->shared, then shared->private
#     (R10 = SUCCESS; RETRY is followed from R11, at most 8 times).
#  5. ReportFatalError with R12 = FATAL_CODE (low 16 bits 0: QEMU rejects
#     others), R13 = 0, the message "tdx demo done" in R14, R15 and RCX =
#     BIT(14) | BIT(15). The TD does not run again: the VMM stops the vCPU.
#
# The TDREPORT: on a real TD the guest gets it from the TDX module
# (TDG.MR.REPORT). The emulated TEE has no TDX module, so the VMM preloads a
# recorded TDREPORT at TDREPORT_GPA before boot (testdata/tdx/tdreport) and
# the guest copies it into the GetQuote buffer, as the guest driver copies
# the report it got from the module.
#
# Any failed check reports its fail code on the result port instead (1..).
# coco-link: doorbell emulated

    .equ TDVMCALL_GET_TD_VM_CALL_INFO, 0x10000
    .equ TDVMCALL_MAP_GPA, 0x10001
    .equ TDVMCALL_GET_QUOTE, 0x10002
    .equ TDVMCALL_REPORT_FATAL_ERROR, 0x10003
    .equ TDVMCALL_SETUP_EVENT_NOTIFY_INTERRUPT, 0x10004
    .equ TDVMCALL_STATUS_RETRY, 1
    .equ GPA_SHARED, 0x800000000000       # BIT(47): GPAW 48
    .equ GET_QUOTE_BUF_VERSION, 1
    .equ TDX_REPORT_LEN, 1024
    .equ EVENT_VECTOR, 0x40

    .equ QUOTE_BUF, 0x300000              # struct tdx_quote_buf (tdx-guest.h)
    .equ QUOTE_BUF_SIZE, 0x4000
    .equ QUOTE_DATA_ROOM, QUOTE_BUF_SIZE - 24
    .equ TDREPORT_GPA, 0x310000           # preloaded by the VMM
    .equ MAP_GPA, 0x3F0000
    .equ MAP_SIZE, 0x2000
    .equ POLL_LIMIT, 1000000              # about 4 s at ~1.3 M instructions/s
    .equ FATAL_CODE, 0xC0DE0000

    .equ TAG_TDVMCALL_INFO_R11, 1
    .equ TAG_QUOTE_LEN, 2
    .equ TAG_QUOTE_VERSION, 3
    .equ TAG_QUOTE_FNV1A, 4

    .code64
    .section .rodata
hello:
    .asciz "tdx demo: start\n"
m_notify:
    .asciz "tdx demo: event notify ok\n"
m_info:
    .asciz "tdx demo: tdvmcall info ok\n"
m_quote:
    .asciz "tdx demo: quote ok\n"
m_map:
    .asciz "tdx demo: map gpa ok\n"
    .balign 8
fatal_msg:
    .ascii "tdx demo done\0\0\0"              # 16 bytes: R14, R15

    .text
    .globl guest_main
guest_main:
    push %rbx
    lea hello(%rip), %rdi
    call puts

    # 1. SetupEventNotifyInterrupt
    xor %r10, %r10
    mov $TDVMCALL_SETUP_EVENT_NOTIFY_INTERRUPT, %r11
    mov $EVENT_VECTOR, %r12
    call tdvmcall
    mov $1, %eax
    test %r10, %r10
    jnz fail
    lea m_notify(%rip), %rdi
    call puts

    # 2. GetTdVmCallInfo leaf 1
    xor %r10, %r10
    mov $TDVMCALL_GET_TD_VM_CALL_INFO, %r11
    mov $1, %r12
    call tdvmcall
    mov $2, %eax
    test %r10, %r10
    jnz fail
    mov $TAG_TDVMCALL_INFO_R11, %edi
    mov %r11, %rsi
    call report_value
    lea m_info(%rip), %rdi
    call puts

    # 3. GetQuote: the buffer header, then the TDREPORT
    mov $QUOTE_BUF, %rbx
    movq $GET_QUOTE_BUF_VERSION, 0(%rbx)
    movq $0, 8(%rbx)
    movl $TDX_REPORT_LEN, 16(%rbx)
    movl $0, 20(%rbx)
    mov $TDREPORT_GPA, %rsi
    lea 24(%rbx), %rdi
    mov $TDX_REPORT_LEN / 8, %ecx
    rep movsq

    xor %r10, %r10
    mov $TDVMCALL_GET_QUOTE, %r11
    movabs $GPA_SHARED, %r12
    or %rbx, %r12
    mov $QUOTE_BUF_SIZE, %r13
    call tdvmcall
    mov $3, %eax
    test %r10, %r10
    jnz fail

    mov $POLL_LIMIT, %ecx
1:  mov 8(%rbx), %rax
    cmp $-1, %rax                         # GET_QUOTE_IN_FLIGHT
    jne 2f
    pause
    dec %ecx
    jnz 1b
    mov $4, %eax                          # still in flight: timed out
    jmp fail
2:  test %rax, %rax                       # GET_QUOTE_SUCCESS
    mov $5, %eax
    jnz fail
    mov 20(%rbx), %ecx                    # out_len
    mov $6, %eax
    test %ecx, %ecx
    jz fail
    cmp $QUOTE_DATA_ROOM, %ecx
    ja fail
    movzwl 24(%rbx), %edx                 # quote header version
    mov $7, %eax
    cmp $4, %edx
    je 3f
    cmp $5, %edx
    jne fail
3:  push %rcx
    push %rdx
    mov $TAG_QUOTE_LEN, %edi
    mov %ecx, %esi
    call report_value
    pop %rsi
    mov $TAG_QUOTE_VERSION, %edi
    call report_value
    pop %rcx
    lea 24(%rbx), %rsi
    call fnv1a32
    mov %eax, %esi
    mov $TAG_QUOTE_FNV1A, %edi
    call report_value
    lea m_quote(%rip), %rdi
    call puts

    # 4. MapGPA private -> shared -> private
    movabs $GPA_SHARED, %rdi
    or $MAP_GPA, %rdi
    call map_gpa
    test %eax, %eax
    mov $8, %eax
    jnz fail
    mov $MAP_GPA, %rdi
    call map_gpa
    test %eax, %eax
    mov $9, %eax
    jnz fail
    lea m_map(%rip), %rdi
    call puts

    # 5. ReportFatalError: the TD does not run again
    xor %r10, %r10
    mov $TDVMCALL_REPORT_FATAL_ERROR, %r11
    mov $FATAL_CODE, %r12d               # zero-extends
    xor %r13, %r13
    mov $(1 << 14) | (1 << 15), %ecx
    mov fatal_msg(%rip), %r14
    mov fatal_msg+8(%rip), %r15
    call tdvmcall
    mov $10, %eax                         # the VMM let a dead TD run again

fail:
    pop %rbx
    ret

# map_gpa(start in RDI, GPA.SHARED included): MAP_SIZE bytes; EAX = 0 on
# SUCCESS. On RETRY, resume from R11 (GHCI MapGPA), at most 8 times.
map_gpa:
    lea MAP_SIZE(%rdi), %r8               # end
    mov $8, %r9d
1:  xor %r10, %r10
    mov $TDVMCALL_MAP_GPA, %r11
    mov %rdi, %r12
    mov %r8, %r13
    sub %rdi, %r13
    call tdvmcall
    xor %eax, %eax
    test %r10, %r10
    jz 2f
    mov $1, %eax
    cmp $TDVMCALL_STATUS_RETRY, %r10
    jne 2f
    mov %r11, %rdi
    dec %r9d
    jnz 1b
2:  ret
