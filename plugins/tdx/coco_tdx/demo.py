# SPDX-License-Identifier: Apache-2.0
"""The TDX scenario of ``coco demo``: a TD's requests answered by the shipped services.

The steps (guest side: ``coco_tdx/guest/tdx_demo.S``, which documents them):
SetupEventNotifyInterrupt (vector 0x40), GetTdVmCallInfo leaf 1, GetQuote with
a recorded real TDREPORT (testdata/tdx/tdreport) answered by
:class:`~coco_tdx.service.QuoteService` through the **development QGS**
(:class:`~coco_tdx.qgs.dev.DevQgsServer`, recorded real quotes from
testdata/tdx/quotes over a temporary unix socket: a stand-in, not a quote of
this guest), MapGPA of two pages to shared and back (bookkept by a
:class:`~coco_core.services.memattr.MemoryAttributeTracker`), and ReportFatalError with
a message.

Backends: ``kvm`` runs the real guest on ``/dev/kvm`` behind the emulated TEE
(:mod:`coco_core.emulated.tee`); ``model`` drives the same calls from Python with
:class:`~coco_core.model.base.GuestCpu` registers over a ``bytearray`` guest
memory, through the same :class:`~coco_core.emulated.tee.EmulatedTee`. Then the
robustness step: a handler that raises and a run of random registers through
the doorbell (guest ``doorbell_garbage.S`` on ``kvm``).

The event-notify interrupt is recorded (``inject(vector, apic_id)``), not
delivered: the demo guest has no IDT, and polls the buffer status.
"""

from __future__ import annotations

import random
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from coco_core.demo import (
    GUEST_RAM_SIZE,
    ConversionLog,
    DemoEnv,
    EmulatedGuest,
    EmulatedRun,
    EmulatedTee,
    TeeCall,
    fnv1a32,
)
from coco_core.kvm import GuestMemory
from coco_core.plugin import (
    PV_HYPERCALL_ERRORS,
    CoCoError,
    CoCoStatus,
    GuestCpu,
    MemoryConversion,
    TdvmcallInfoQuery,
    Termination,
)
from coco_tdx.doorbell import KVM_HYPERCALL
from coco_tdx.ghci import TDVMCALL, GetQuoteStatus, TdvmcallStatus
from coco_tdx.qgs.client import QgsClient, UnixAddress
from coco_tdx.qgs.dev import DevQgsServer
from coco_tdx.quote import Quote
from coco_tdx.service import (
    TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT,
    QuoteService,
    TdvmcallInfoService,
)
from coco_tdx.uapi import TdvmcallLeaf

__all__ = ["scenario"]

# -- the guest's memory map (tdx_demo.S; keep in sync) --------------------------------------
QUOTE_BUF = 0x300000
QUOTE_BUF_SIZE = 0x4000
TDREPORT_GPA = 0x310000
MAP_GPA = 0x3F0000
MAP_SIZE = 0x2000
EVENT_VECTOR = 0x40
FATAL_CODE = 0xC0DE0000
FATAL_MESSAGE = "tdx demo done"
GPA_SHARED = 1 << 47
TAG_INFO_R11, TAG_QUOTE_LEN, TAG_QUOTE_VERSION, TAG_QUOTE_FNV1A = 1, 2, 3, 4
GARBAGE_CALLS = 16  # doorbell_garbage.S GARBAGE_CALLS
_HEADER = struct.Struct("<QQII")  # struct tdx_quote_buf header: version, status, in_len, out_len
_DEADLINE = 30.0
#: the demo guest's source, shipped with this plugin (it links with the core's doorbell)
_GUEST = Path(__file__).with_name("guest") / "tdx_demo.S"


class _RecordingClient:
    """A QGS client that keeps every quote it hands to the service (to compare with the guest)."""

    def __init__(self, client: QgsClient) -> None:
        self.client = client
        self.quotes: list[bytes] = []

    def get_quote(self, report: bytes) -> bytes:
        quote = self.client.get_quote(report)
        self.quotes.append(quote)
        return quote


class _Vmm:
    """The VMM side: the shipped services on one dispatcher, and what they saw."""

    def __init__(
        self, env: DemoEnv, memory: Any, client: _RecordingClient, dispatcher: Any = None
    ) -> None:
        self.dispatcher = dispatcher if dispatcher is not None else env.dispatcher("tdx")
        self.injected: list[tuple[int, int]] = []
        self.quotes = QuoteService(memory, client, inject=self._inject, timeout=10.0)
        self.quotes.register(self.dispatcher)
        TdvmcallInfoService(self.dispatcher).register()
        self.conversions = ConversionLog(memory.contains)
        self.dispatcher.on(MemoryConversion, self.conversions)
        self.fatal: list[Termination] = []
        self.dispatcher.on(Termination, self._terminate)

    def _inject(self, vector: int, apic_id: int) -> None:
        self.injected.append((vector, apic_id))

    def _terminate(self, request: Termination, context: Any) -> CoCoStatus:
        self.fatal.append(request)
        return CoCoStatus.OK

    def wait_idle(self, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while self.quotes.in_flight and time.monotonic() < end:
            time.sleep(0.01)


def _tdreport(testdata: Path) -> bytes:
    reports = sorted((testdata / "tdx" / "tdreport").glob("*"))
    if not reports:
        raise CoCoError(f"no TDREPORT in {testdata / 'tdx' / 'tdreport'}")
    return reports[-1].read_bytes()[:1024]


# -- the main steps ----------------------------------------------------------------------------


def _check(
    env: DemoEnv, vmm: _Vmm, client: _RecordingClient, reports: dict[int, int], why: str
) -> None:
    """The guest-visible expectations, the same for both backends."""
    env.check(not why, f"tdx: guest checks passed ({why})")
    env.check(
        reports.get(TAG_INFO_R11) == TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT,
        f"tdx: GetTdVmCallInfo leaf 1 R11 = BIT(1) (got {reports.get(TAG_INFO_R11)})",
    )
    env.check(
        vmm.injected == [(EVENT_VECTOR, 0)],
        f"tdx: event-notify inject(0x40, apic 0) recorded (got {vmm.injected})",
    )
    quote = client.quotes[-1] if client.quotes else b""
    env.check(bool(quote), "tdx: the development QGS served a recorded real quote")
    version = None
    try:
        version = Quote.from_bytes(quote).version
    except Exception as exc:
        env.check(False, f"tdx: the quote parses ({exc})")
    env.check(version in (4, 5), f"tdx: quote header version 4 or 5 (got {version})")
    env.check(
        reports.get(TAG_QUOTE_LEN) == len(quote)
        and reports.get(TAG_QUOTE_VERSION) == version
        and reports.get(TAG_QUOTE_FNV1A) == fnv1a32(quote),
        "tdx: the guest's out_len, version and checksum match the quote the service wrote",
    )
    env.check(vmm.quotes.in_flight == 0, "tdx: no GetQuote left in flight")
    pages = MAP_SIZE // 4096
    env.check(
        vmm.conversions.entries == [(MAP_GPA, pages, False, False), (MAP_GPA, pages, True, True)],
        f"tdx: MapGPA to shared then private recorded by the tracker "
        f"(got {vmm.conversions.entries})",
    )
    message = vmm.fatal[-1].message if vmm.fatal else None
    env.check(message == FATAL_MESSAGE, f"tdx: fatal message decoded (got {message!r})")


def _run_kvm(env: DemoEnv, client: _RecordingClient, report: bytes) -> None:
    box: dict[str, _Vmm] = {}

    def prepare(guest: EmulatedGuest) -> None:
        box["vmm"] = _Vmm(env, guest.memory, client, guest.dispatcher)
        guest.memory.write(TDREPORT_GPA, report)

    run = env.run_guest("tdx", _GUEST, prepare, _DEADLINE)
    vmm = box["vmm"]
    vmm.wait_idle()
    why = run.problem("tdx.report_fatal_error")
    _check(env, vmm, client, _reports(run), why)


def _reports(run: EmulatedRun) -> dict[int, int]:
    return dict(run.reports)


def _call(tee: EmulatedTee, **regs: int) -> GuestCpu:
    cpu = GuestCpu(regs=dict(regs))
    tee.answer(cpu)
    return cpu


def _run_model(env: DemoEnv, client: _RecordingClient, report: bytes) -> None:
    memory = GuestMemory.from_buffer(0, bytearray(GUEST_RAM_SIZE))
    vmm = _Vmm(env, memory, client)
    tee = EmulatedTee(
        env.registry, "tdx", memory, vmm.dispatcher, on_call=env.flush_each_call("tdx")
    )
    problems: list[str] = []
    reports: dict[int, int] = {}

    def want(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    leaf = TdvmcallLeaf
    cpu = _call(tee, r10=0, r11=leaf.SETUP_EVENT_NOTIFY_INTERRUPT, r12=EVENT_VECTOR)
    want(cpu.reg("r10") == TdvmcallStatus.SUCCESS, "SetupEventNotifyInterrupt R10")
    cpu = _call(tee, r10=0, r11=leaf.GET_TD_VM_CALL_INFO, r12=1)
    want(cpu.reg("r10") == TdvmcallStatus.SUCCESS, "GetTdVmCallInfo R10")
    reports[TAG_INFO_R11] = cpu.reg("r11")

    memory.write(QUOTE_BUF, _HEADER.pack(1, 0, len(report), 0) + report)
    cpu = _call(tee, r10=0, r11=leaf.GET_QUOTE, r12=QUOTE_BUF | GPA_SHARED, r13=QUOTE_BUF_SIZE)
    want(cpu.reg("r10") == TdvmcallStatus.SUCCESS, "GetQuote R10")
    end = time.monotonic() + 10.0  # the guest's bounded poll
    status = GetQuoteStatus.IN_FLIGHT
    while time.monotonic() < end:
        _v, status, _in, _out = _HEADER.unpack(memory.read(QUOTE_BUF, _HEADER.size))
        if status != GetQuoteStatus.IN_FLIGHT:
            break
        time.sleep(0.005)
    _v, status, _in, out_len = _HEADER.unpack(memory.read(QUOTE_BUF, _HEADER.size))
    want(status == GetQuoteStatus.SUCCESS, f"GetQuote buffer status {status:#x}")
    want(0 < out_len <= QUOTE_BUF_SIZE - _HEADER.size, f"out_len {out_len}")
    quote = memory.read(QUOTE_BUF + _HEADER.size, min(out_len, QUOTE_BUF_SIZE - _HEADER.size))
    version = struct.unpack_from("<H", quote)[0] if len(quote) >= 2 else 0
    want(version in (4, 5), f"quote version {version}")
    reports.update(
        {TAG_QUOTE_LEN: out_len, TAG_QUOTE_VERSION: version, TAG_QUOTE_FNV1A: fnv1a32(quote)}
    )

    for start in (MAP_GPA | GPA_SHARED, MAP_GPA):
        cpu = _call(tee, r10=0, r11=leaf.MAP_GPA, r12=start, r13=MAP_SIZE)
        want(cpu.reg("r10") == TdvmcallStatus.SUCCESS, f"MapGPA {start:#x} R10")

    msg = FATAL_MESSAGE.encode().ljust(16, b"\0")
    record = tee.answer(
        GuestCpu(
            regs={
                "r10": 0,
                "r11": leaf.REPORT_FATAL_ERROR,
                "r12": FATAL_CODE,
                "r13": 0,
                "rcx": (1 << 14) | (1 << 15),
                "r14": int.from_bytes(msg[:8], "little"),
                "r15": int.from_bytes(msg[8:], "little"),
            }
        )
    )
    want(record.final, "ReportFatalError ends the TD")
    vmm.wait_idle()
    _check(env, vmm, client, reports, "; ".join(problems))


# -- robustness ----------------------------------------------------------------------------------


_DELIBERATE = "robustness: a GetTdVmCallInfo handler that raises, then random registers"


def _raise(request: TdvmcallInfoQuery, context: Any) -> CoCoStatus:
    raise RuntimeError("demo: a handler that fails")


def _garbage_regs(rng: random.Random, odd: bool) -> dict[str, int]:
    names = ("rax", "rbx", "rcx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14")
    regs = {n: rng.getrandbits(64) for n in (*names, "r15")}
    if odd:  # shaped like doorbell_garbage.S: a GHCI call with a random leaf, never fatal
        low = regs["r11"] & 7
        regs["r10"], regs["r11"] = 0, 0x10000 + (5 if low == 3 else low)
    return regs


def _documented(call: TeeCall) -> bool:
    """R10 is a TDVMCALL status, or KVM's refusal of a PV hypercall (R10 != 0, x86.c)."""
    r10 = int(call.values.get("r10", -1))
    if call.name == KVM_HYPERCALL and r10 in PV_HYPERCALL_ERRORS:
        return True
    return TDVMCALL.name_of(r10) is not None


def _check_robust(env: DemoEnv, vmm: _Vmm, calls: list[TeeCall], why: str) -> None:
    env.check(not why, f"tdx robustness: VMM kept running ({why})")
    first = calls[0] if calls else None
    env.check(
        first is not None and first.values.get("r10") == TdvmcallStatus.INVALID_OPERAND,
        "tdx robustness: a raising handler gives R10 = TDVMCALL_STATUS_INVALID_OPERAND",
    )
    bad = [c for c in calls if c.rejected or c.final or not _documented(c)]
    env.check(
        not bad and len(calls) == GARBAGE_CALLS + 1,
        f"tdx robustness: {len(calls)} doorbell calls, each answered with a documented "
        f"TDVMCALL status ({len(bad)} not)",
    )
    vmm.wait_idle(2.0)
    env.check(vmm.quotes.in_flight == 0, "tdx robustness: nothing in flight after garbage")


def _robust_kvm(env: DemoEnv, client: _RecordingClient) -> None:
    box: dict[str, _Vmm] = {}

    def prepare(guest: EmulatedGuest) -> None:
        vmm = box["vmm"] = _Vmm(env, guest.memory, client, guest.dispatcher)
        vmm.dispatcher.on(TdvmcallInfoQuery, _raise)
        vcpu = guest.booted.vcpus[0]
        vcpu.set_regs(vcpu.get_regs().replace(rdi=0))  # vendor 0: TDX

    run = env.run_guest("tdx", "doorbell_garbage", prepare, _DEADLINE)
    _check_robust(env, box["vmm"], list(run.calls), run.problem())


def _robust_model(env: DemoEnv, client: _RecordingClient) -> None:
    memory = GuestMemory.from_buffer(0, bytearray(GUEST_RAM_SIZE))
    vmm = _Vmm(env, memory, client)
    vmm.dispatcher.on(TdvmcallInfoQuery, _raise)
    tee = EmulatedTee(
        env.registry, "tdx", memory, vmm.dispatcher, on_call=env.flush_each_call("tdx")
    )
    calls = [
        tee.answer(GuestCpu(regs={"r10": 0, "r11": TdvmcallLeaf.GET_TD_VM_CALL_INFO, "r12": 1}))
    ]
    rng = random.Random(0x9E3779B97F4A7C15)
    calls += [
        tee.answer(GuestCpu(regs=_garbage_regs(rng, n % 2 == 1))) for n in range(GARBAGE_CALLS)
    ]
    _check_robust(env, vmm, calls, "")


# -- the scenario --------------------------------------------------------------------------------


def scenario(env: DemoEnv) -> None:
    """Run the TDX scenario on ``env.backend`` (``kvm`` or ``model``)."""
    if env.testdata is None:
        raise CoCoError("tdx demo: no testdata folder (give --testdata)")
    report = _tdreport(env.testdata)
    with tempfile.TemporaryDirectory(prefix="coco-demo-qgs-") as tmp:
        sock = Path(tmp) / "qgs.sock"
        with DevQgsServer(sock, env.testdata / "tdx" / "quotes"):
            client = _RecordingClient(QgsClient(UnixAddress(str(sock))))
            if env.backend == "kvm":
                _run_kvm(env, client, report)
                with env.deliberate(_DELIBERATE):
                    _robust_kvm(env, client)
            else:
                _run_model(env, client, report)
                with env.deliberate(_DELIBERATE):
                    _robust_model(env, client)
