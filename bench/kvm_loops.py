# SPDX-License-Identifier: Apache-2.0
"""Exit round-trip benchmark on real KVM: C loop vs Python loops, one vs two vCPUs.

Every loop runs the pingpong guest (``coco_core/emulated/guest/pingpong.S``): two
port I/O exits per iteration (an ``in`` whose byte the VMM writes, an ``out``
of it), then a 32-bit ``out`` to RESULT_PORT (0x0CCF) ends the run. A
measurement makes ``exits`` exits in total, split evenly over the vCPUs, and
the result is the median exits/s of ``runs`` runs.

Loops (see :data:`LOOPS`):

``c``
    ``bench/kvm_loop.c`` compiled with gcc at bench time; ``KVM_RUN`` +
    decode + completion in C, one pthread per vCPU.
``python_raw``
    ``fcntl.ioctl`` + one hand-written precompiled ``struct.Struct`` decode of
    ``exit_reason`` and ``kvm_run.io`` + writing the IN byte.

To add a loop (for instance the coco dispatcher), write a per-vCPU function
``run_vcpu(vcpu) -> exits`` that runs one booted pingpong vCPU until the
RESULT_PORT exit and returns the exits it completed (not counting that last
one), and register ``python_loop(run_vcpu)``; or write any
``loop(exits, nr_vcpus) -> (exits_done, seconds)`` and pass it to
:func:`measure` or ``main(extra_loops={...})``. Runs are interleaved across
loops, so the ratios between loops are measured under the same conditions.

Run: ``.venv/bin/python bench/kvm_loops.py [--exits 100000] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from coco_core.emulated.guestbuild import boot_guest, build_guest
from coco_core.emulated.ports import PINGPONG_PORT, RESULT_PORT
from coco_core.generic.uapi import EXIT_REASON, EXIT_UNION_OFFSET, KVM_EXIT_IO_IN, KvmExitReason
from coco_core.kvm import ioctls
from coco_core.kvm.probe import usable
from coco_core.kvm.runloop import Watchdog, install_kick_handler
from coco_core.kvm.system import Kvm
from coco_core.kvm.vcpu import Vcpu

Loop = Callable[[int, int], tuple[int, float]]
RunVcpu = Callable[[Vcpu], int]

C_SOURCE = Path(__file__).with_name("kvm_loop.c")
_DEADLINE_S = 60.0  # a hung guest must not hang the benchmark


#: exits/s per loop name, per vCPU count, one value per round (rounds aligned)
Rates = dict[str, dict[int, list[float]]]


def measure(
    loops: Mapping[str, Loop], exits: int, *, runs: int = 3, vcpus: tuple[int, ...] = (1, 2)
) -> Rates:
    """Exits/s of ``runs`` rounds of every loop, for each vCPU count.

    The runs are interleaved (round 1 runs every loop and vCPU count once, then
    round 2, ..., each round starting one step further along), so a slow spell
    of the shared machine hits every loop alike instead of the one that
    happened to be measured then. Compare loops with :func:`paired_ratio`.
    """
    rates: Rates = {name: {n: [] for n in vcpus} for name in loops}
    # by vCPU count, so the loops compared with each other run back to back
    order = [(name, n) for n in vcpus for name in loops]
    for r in range(max(runs, 1)):
        # each round starts one step further along, so no loop always runs first
        shift = r % len(order)
        for name, n in order[shift:] + order[:shift]:
            done, seconds = loops[name](exits, n)
            rates[name][n].append(done / seconds)
    return rates


def median_rate(rates: Rates, name: str, vcpus: int) -> float:
    """The median exits/s of one loop at one vCPU count."""
    return statistics.median(rates[name][vcpus])


def paired_ratio(rates: Rates, a: tuple[str, int], b: tuple[str, int]) -> float:
    """Median over rounds of ``a``'s rate divided by ``b``'s rate in the same round.

    Runs of one round are seconds apart, so each ratio is taken under nearly
    the same machine conditions; the median of those ratios is steadier than
    a ratio of medians when the machine's speed drifts by tens of percent.
    """
    return statistics.median(same_round_ratios(rates, a, b))


def same_round_ratios(rates: Rates, a: tuple[str, int], b: tuple[str, int]) -> list[float]:
    """``a``'s rate divided by ``b``'s, round by round."""
    return [x / y for x, y in zip(rates[a[0]][a[1]], rates[b[0]][b[1]], strict=True)]


def quartiles(values: list[float]) -> tuple[float, float]:
    """The first and third quartile: the spread a reader should see next to a median."""
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q1, q3


# --- (a) C ---------------------------------------------------------------------------
def _build_c(workdir: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc is not on PATH; the C baseline loop needs it")
    digest = hashlib.sha256(C_SOURCE.read_bytes()).hexdigest()[:16]
    exe = workdir / f"kvm_loop-{digest}"
    if not exe.exists():
        subprocess.run(
            [gcc, "-O2", "-Wall", "-pthread", "-o", str(exe), str(C_SOURCE)],
            check=True,
            capture_output=True,
        )
    return exe


def c_loop(workdir: Path) -> Loop:
    """The C loop as a :data:`Loop` (compiles ``kvm_loop.c`` into ``workdir``)."""
    exe = _build_c(workdir)
    image = workdir / "pingpong.bin"
    image.write_bytes(build_guest("pingpong"))

    def run(exits: int, nr_vcpus: int) -> tuple[int, float]:
        out = subprocess.run(
            [str(exe), str(image), str(exits), str(nr_vcpus)],
            check=True,
            capture_output=True,
            text=True,
            timeout=_DEADLINE_S,
        ).stdout
        fields = dict(item.split("=") for item in out.split())
        return int(fields["exits"]), float(fields["seconds"])

    return run


# --- (b) raw Python --------------------------------------------------------------------
_EXIT_REASON = struct.Struct("<I")  # kvm_run.exit_reason (kvm.h, Linux 7.2)
_IO = struct.Struct("<BBHIQ")  # kvm_run.io: direction, size, port, count, data_offset


def raw_vcpu_loop(vcpu: Vcpu) -> int:
    """Run one pingpong vCPU with bare ``fcntl.ioctl`` and precompiled decoding."""
    ioctl = fcntl.ioctl
    fd = vcpu.fd
    run_req = ioctls.KVM_RUN
    view = vcpu.run_view
    reason_from = _EXIT_REASON.unpack_from
    io_from = _IO.unpack_from
    exit_io = KvmExitReason.IO
    io_in = KVM_EXIT_IO_IN
    done_port = RESULT_PORT
    reason_at, io_at = EXIT_REASON, EXIT_UNION_OFFSET
    exits = 0
    while True:
        ioctl(fd, run_req, 0)
        if reason_from(view, reason_at)[0] != exit_io:
            raise RuntimeError(f"unexpected exit_reason {reason_from(view, reason_at)[0]}")
        direction, _size, port, _count, offset = io_from(view, io_at)
        if port == done_port:
            return exits
        if direction == io_in:
            view[offset] = 0x5A
        exits += 1


def python_loop(run_vcpu: RunVcpu) -> Loop:
    """Turn a per-vCPU loop into a :data:`Loop`: boot, one thread per vCPU, time, check."""

    def run(exits: int, nr_vcpus: int) -> tuple[int, float]:
        with Kvm.open() as kvm, boot_guest(kvm, "pingpong", nr_vcpus=nr_vcpus) as guest:
            iterations = exits // nr_vcpus // 2
            for v in guest.vcpus:
                v.set_regs(v.get_regs().replace(rdi=iterations, rsi=PINGPONG_PORT))
            counts = [0] * nr_vcpus
            errors: list[BaseException] = []
            barrier = threading.Barrier(nr_vcpus + 1)

            def worker(i: int, vcpu: Vcpu) -> None:
                barrier.wait()
                wd = Watchdog(vcpu, threading.get_ident(), _DEADLINE_S).start()
                try:
                    counts[i] = run_vcpu(vcpu)
                except BaseException as exc:
                    errors.append(exc)
                finally:
                    wd.cancel()

            threads = [
                threading.Thread(target=worker, args=(i, v), name=f"bench-vcpu{i}")
                for i, v in enumerate(guest.vcpus)
            ]
            for t in threads:
                t.start()
            barrier.wait()
            start = time.perf_counter()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - start
            if errors:
                raise errors[0]
            return sum(counts), seconds

    return run


def main(
    exits: int = 100_000,
    runs: int = 3,
    extra_loops: Mapping[str, Loop] | None = None,
) -> Rates:
    """Measure every loop with 1 and 2 vCPUs; print a table and return the per-round rates."""
    install_kick_handler()
    with Kvm.open() as kvm:
        ok, reason = usable(kvm)
    if not ok:
        raise SystemExit(f"kvm_loops: real KVM unusable: {reason}")
    with tempfile.TemporaryDirectory(prefix="coco-bench-") as tmp:
        loops: dict[str, Loop] = {
            "c": c_loop(Path(tmp)),
            "python_raw": python_loop(raw_vcpu_loop),
        }
        loops.update(extra_loops or {})
        rates = measure(loops, exits, runs=runs)
    print(f"exit round trips, pingpong guest, {exits} exits per run, {runs} interleaved rounds")
    print("(exits/s: median of the rounds; ratios: median of the same-round ratios)")
    print(
        f"{'loop':<14}{'vCPUs':>6}{'exits/s':>12}{'us/exit':>10}"
        f"{'vs C(1)':>9}{'vs raw(1)':>11}{'2v/1v':>7}"
    )
    for name, by_n in rates.items():
        for n in by_n:
            rate = median_rate(rates, name, n)
            vs_c = paired_ratio(rates, (name, n), ("c", 1))
            vs_raw = paired_ratio(rates, (name, n), ("python_raw", 1))
            scale = f"{paired_ratio(rates, (name, n), (name, 1)):.2f}" if n != 1 else ""
            print(
                f"{name:<14}{n:>6}{rate:>12,.0f}{1e6 / rate:>10.2f}"
                f"{vs_c:>9.2f}{vs_raw:>11.2f}{scale:>7}"
            )
    return rates


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--exits", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        sys.exit("kvm_loops: /dev/kvm is not accessible")
    main(args.exits, args.runs)
