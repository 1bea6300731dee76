# SPDX-License-Identifier: Apache-2.0
#
# The SNP demo guest of the emulated TEE (coco_core/emulated.py; plugin side:
# plugins/snp/coco_snp/doorbell.py, which documents the register convention,
# and demo.py). It makes the requests an SNP guest makes, ringing the VMGEXIT
# doorbell with the GHCB fields in registers, and checks every answer itself:
#
#  1. Extended guest request (R12 = SVM_VMGEXIT_EXT_GUEST_REQUEST) with RAX =
#     CERT_BUF and RBX = 1 page -> SW_EXITINFO2 (R13) = SNP_GUEST_VMM_ERR_INVALID_LEN
#     << 32 and RBX = the pages needed (reported, tag 1; 2..CERT_PAGES_MAX).
#  2. The same request with RBX = that many pages -> SW_EXITINFO2 = 0. The
#     guest walks the GHCB certificate table (24-byte entries: GUID, offset,
#     length; an all-zero GUID ends it) and reports the entry count (tag 2),
#     the end of the last certificate (tag 3) and a 32-bit FNV-1a of the table
#     up to that end (tag 4), so the VMM can compare it with the table the
#     service wrote (a real guest would hand the certificates to a verifier).
#  3. Page-state change through the GHCB MSR protocol (R12 = 0xC0010130, R11 =
#     GHCB_MSR_PSC_REQ | gfn << 12 | op << 52) for the page at PSC_GPA:
#     private -> shared, then shared -> private; R11 must come back as
#     GHCB_MSR_PSC_RESP (0x015) with no error bits.
#  4. Termination through the MSR protocol: GHCB_MSR_TERM_REQ with reason set
#     0 (GHCB general), reason 0 (general termination request). The guest does
#     not run again: the VMM stops the vCPU.
#
# Any failed check reports its fail code on the result port instead (1..).
# coco-link: doorbell emulated

    .equ SVM_VMGEXIT_EXT_GUEST_REQUEST, 0x80000012
    .equ MSR_PROTOCOL, 0xC0010130        # coco_snp.doorbell.MSR_PROTOCOL
    .equ GHCB_MSR_PSC_REQ, 0x014
    .equ GHCB_MSR_PSC_RESP, 0x015
    .equ GHCB_MSR_TERM_REQ, 0x100
    .equ PSC_OP_PRIVATE, 1
    .equ PSC_OP_SHARED, 2
    .equ TERM_REASON_SET, 0               # GHCB general reason set
    .equ TERM_REASON, 0                   # GHCB_SEV_ES_GEN_REQ

    .equ CERT_BUF, 0x320000
    .equ CERT_PAGES_MAX, 8
    .equ CERT_ENTRIES_MAX, 16
    .equ PSC_GPA, 0x3F0000

    .equ TAG_PAGES_NEEDED, 1
    .equ TAG_CERT_ENTRIES, 2
    .equ TAG_CERT_END, 3
    .equ TAG_CERT_FNV1A, 4

    .code64
    .section .rodata
hello:
    .asciz "snp demo: start\n"
m_short:
    .asciz "snp demo: certificates: buffer too small, as expected\n"
m_certs:
    .asciz "snp demo: certificates ok\n"
m_psc:
    .asciz "snp demo: page state changes ok\n"

    .text
    .globl guest_main
guest_main:
    push %rbx
    push %rbp
    lea hello(%rip), %rdi
    call puts

    # 1. extended guest request with one page
    mov $CERT_BUF, %rax
    mov $1, %ebx
    call ext_guest_request
    movabs $(1 << 32), %rcx               # SNP_GUEST_VMM_ERR_INVALID_LEN << 32
    cmp %rcx, %r13
    mov $1, %eax
    jne fail
    mov $2, %eax
    cmp $2, %rbx
    jb fail
    cmp $CERT_PAGES_MAX, %rbx
    ja fail
    mov %rbx, %rbp                        # pages needed
    mov $TAG_PAGES_NEEDED, %edi
    mov %rbx, %rsi
    call report_value
    lea m_short(%rip), %rdi
    call puts

    # 2. again with the pages needed
    mov $CERT_BUF, %rax
    mov %rbp, %rbx
    call ext_guest_request
    test %r13, %r13
    mov $3, %eax
    jnz fail

    # walk the table: RCX = entries, R8 = end of the last certificate
    mov $CERT_BUF, %rsi
    xor %ecx, %ecx
    xor %r8d, %r8d
1:  mov 0(%rsi), %rax
    or 8(%rsi), %rax
    jz 2f                                 # all-zero GUID: the end
    mov 16(%rsi), %eax                    # offset
    mov 20(%rsi), %edx                    # length
    add %rdx, %rax
    cmp %r8, %rax
    jbe 3f
    mov %rax, %r8
3:  add $24, %rsi
    inc %ecx
    cmp $CERT_ENTRIES_MAX, %ecx
    jb 1b
    mov $4, %eax                          # no terminator
    jmp fail
2:  mov $5, %eax
    test %ecx, %ecx
    jz fail
    mov %rbp, %rax
    shl $12, %rax
    cmp %rax, %r8
    mov $6, %eax
    ja fail                               # a certificate past the buffer
    push %r8
    mov $TAG_CERT_ENTRIES, %edi
    mov %rcx, %rsi
    call report_value
    pop %r8
    mov $TAG_CERT_END, %edi
    mov %r8, %rsi
    call report_value
    mov %r8d, %ecx
    mov $CERT_BUF, %rsi
    call fnv1a32
    mov %eax, %esi
    mov $TAG_CERT_FNV1A, %edi
    call report_value
    lea m_certs(%rip), %rdi
    call puts

    # 3. page-state changes through the GHCB MSR protocol
    mov $PSC_OP_SHARED, %edi
    call psc_msr
    mov $7, %eax
    jnz fail
    mov $PSC_OP_PRIVATE, %edi
    call psc_msr
    mov $8, %eax
    jnz fail
    lea m_psc(%rip), %rdi
    call puts

    # 4. termination: the guest does not run again
    mov $MSR_PROTOCOL, %r12d            # zero-extends
    mov $GHCB_MSR_TERM_REQ | (TERM_REASON_SET << 12) | (TERM_REASON << 16), %r11
    call vmgexit
    mov $9, %eax                          # the VMM let a terminated guest run again

fail:
    pop %rbp
    pop %rbx
    ret

# ext_guest_request(RAX = buffer GPA, RBX = pages): SW_EXITINFO2 in R13, RBX out.
ext_guest_request:
    mov $SVM_VMGEXIT_EXT_GUEST_REQUEST, %r12d
    xor %r13d, %r13d
    xor %r14d, %r14d
    call vmgexit
    ret

# psc_msr(op in EDI) for the page at PSC_GPA; ZF set when R11 = GHCB_MSR_PSC_RESP.
psc_msr:
    mov $MSR_PROTOCOL, %r12d            # zero-extends
    mov %rdi, %r11
    shl $52, %r11
    or $GHCB_MSR_PSC_REQ | PSC_GPA, %r11  # gfn << 12 = PSC_GPA
    call vmgexit
    cmp $GHCB_MSR_PSC_RESP, %r11
    ret
