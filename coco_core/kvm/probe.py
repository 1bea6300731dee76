# SPDX-License-Identifier: Apache-2.0
"""Can this ``/dev/kvm`` run a guest? Run a tiny one and see.

A software KVM may advertise what it cannot run, so :func:`usable` proves it:
a four-instruction real-mode guest runs to a known port I/O exit under a time
bound. ``coco demo`` picks its backend with it and the real-KVM tests skip
with its reason.
"""

from __future__ import annotations

from coco_core.errors import CoCoError
from coco_core.generic.uapi import KVM_EXIT_IO_OUT, KvmExitReason
from coco_core.kvm.runloop import run_until
from coco_core.kvm.structs import Regs
from coco_core.kvm.system import Kvm

__all__ = ["usable"]

# The probe guest, 16-bit real mode at GPA 0x1000:
#   b0 5a        mov  $0x5a, %al
#   ba cd 0c     mov  $0x0ccd, %dx
#   ee           out  %al, (%dx)
#   f4           hlt
_PROBE_CODE = bytes.fromhex("b05abacd0ceef4")
_PROBE_GPA = 0x1000
_PROBE_PORT = 0x0CCD
_PROBE_VALUE = 0x5A


def usable(kvm: Kvm, deadline: float = 5.0) -> tuple[bool, str]:
    """Run a tiny guest on ``kvm`` to a known ``KVM_EXIT_IO``; returns (ok, reason).

    The run is bounded by ``deadline`` seconds with the run-loop watchdog, whose
    signal handler must already be installed when this is called off the main
    thread (:func:`coco_core.kvm.runloop.install_kick_handler`).
    """
    try:
        with kvm.create_vm() as vm:
            ram = vm.add_memory(0, 0x10000)
            ram.write(_PROBE_GPA, _PROBE_CODE)
            vcpu = vm.create_vcpu(0)
            sregs = vcpu.get_sregs()
            vcpu.set_sregs(sregs.replace(cs=sregs.cs.replace(base=0, selector=0)))
            vcpu.set_regs(Regs(rip=_PROBE_GPA))
            reason = run_until(vcpu, lambda v: True, deadline)
            if reason != KvmExitReason.IO:
                return False, f"probe guest exited with reason {reason}, expected KVM_EXIT_IO"
            io = vcpu.io()
            data = bytes(vcpu.io_data())
            if (io.direction, io.port, data) != (
                KVM_EXIT_IO_OUT,
                _PROBE_PORT,
                bytes([_PROBE_VALUE]),
            ):
                return False, f"probe guest gave an unexpected I/O exit {io} data={data.hex()}"
    except CoCoError as exc:
        return False, str(exc)
    except OSError as exc:
        return False, f"probe guest failed: {exc}"
    return True, f"{kvm.path}: a guest ran to a port I/O exit within {deadline} s"
