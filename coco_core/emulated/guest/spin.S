# SPDX-License-Identifier: Apache-2.0
#
# A guest that never exits on its own: `vmcall` (which spins inside KVM_RUN on
# the software KVM of the development hosts) and then a tight loop. Used to
# test that the run-loop watchdog bounds a run.

    .code64
    .section .text.entry, "ax"
    .globl _start
_start:
    vmcall
1:  jmp 1b
