# SPDX-License-Identifier: Apache-2.0
#
# Helpers for guests of the emulated TEE (coco_core/emulated.py). Link with
# "# coco-link: doorbell emulated". The port number must match
# coco_core.emulated.tee.REPORT_PORT (tests/kvm/test_emulated_tee.py checks it).

    .equ REPORT_PORT, 0x0CCD

    .code64
    .text

# report_value(tag in EDI, value in RSI): hand a value to the VMM (the VMM
# records (RDI, RSI)). Preserves all registers.
    .globl report_value
report_value:
    push %rax
    push %rdx
    mov $REPORT_PORT, %edx
    out %al, %dx
    pop %rdx
    pop %rax
    ret

# fnv1a32(buf in RSI, len in ECX) -> EAX: 32-bit FNV-1a over len bytes.
# Clobbers RCX, RDX, RSI. len 0 gives the offset basis.
    .globl fnv1a32
fnv1a32:
    mov $0x811C9DC5, %eax
    test %ecx, %ecx
    jz 2f
1:  movzbl (%rsi), %edx
    xor %edx, %eax
    imul $0x01000193, %eax, %eax
    inc %rsi
    dec %ecx
    jnz 1b
2:  ret
