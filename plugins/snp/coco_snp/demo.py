# SPDX-License-Identifier: Apache-2.0
"""The SNP scenario of ``coco demo``: an SNP guest's requests answered by the shipped services.

The steps (guest side: ``coco_snp/guest/snp_demo.S``, which documents them;
register convention: :mod:`coco_snp.doorbell`): an extended guest request with
a one-page buffer (``SNP_GUEST_VMM_ERR_INVALID_LEN`` and RBX = pages needed),
the retry with that many pages (the GHCB certificate table built by
:class:`~coco_snp.service.CertificateService` from real AMD certificates in
testdata: the Milan ARK and ASK and a Milan VCEK), page-state changes through
the GHCB MSR protocol (private → shared → private, bookkept by a
:class:`~coco_core.services.memattr.MemoryAttributeTracker`) and termination through the
MSR protocol with a reason.

Backends: ``kvm`` runs the real guest behind the emulated TEE
(:mod:`coco_core.emulated.tee`); ``model`` drives the same requests from Python with
:class:`~coco_core.model.base.GuestCpu` over a ``bytearray`` guest memory,
through the same :class:`~coco_core.emulated.tee.EmulatedTee`. Then the robustness
step: a certificate handler that raises, and random registers through the
doorbell (guest ``doorbell_garbage.S`` on ``kvm``).

The VMM enabled certificate requests (``KVM_SEV_SNP_ENABLE_REQ_CERTS``): the
model's ``vm_state["snp.req_certs"]`` is set.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from coco_core.demo import (
    GUEST_RAM_SIZE,
    ConversionLog,
    DemoEnv,
    EmulatedGuest,
    EmulatedTee,
    TeeCall,
    fnv1a32,
)
from coco_core.kvm import GuestMemory
from coco_core.plugin import (
    CertificateRequest,
    CoCoError,
    CoCoStatus,
    GuestCpu,
    MemoryConversion,
    Termination,
)
from coco_snp.certs.store import CertificateStore
from coco_snp.certs.table import parse_cert_table, required_pages
from coco_snp.doorbell import GHCB_ERR_INVALID_EVENT, GHCB_TO_REGS, MSR_PROTOCOL
from coco_snp.ghcb import SNP_GUEST_VMM_ERR_GENERIC, SNP_GUEST_VMM_ERR_INVALID_LEN
from coco_snp.model import REQ_CERTS_ENABLED
from coco_snp.service import CertificateService
from coco_snp.uapi import (
    GHCB_MSR_PSC_REQ,
    GHCB_MSR_PSC_RESP,
    GHCB_MSR_TERM_REQ,
    PscOp,
    SvmVmgexit,
)

__all__ = ["scenario"]

# -- the guest's memory map (snp_demo.S; keep in sync) --------------------------------------
CERT_BUF = 0x320000
CERT_PAGES_MAX = 8
PSC_GPA = 0x3F0000
TAG_PAGES, TAG_ENTRIES, TAG_END, TAG_FNV1A = 1, 2, 3, 4
GARBAGE_CALLS = 16  # doorbell_garbage.S GARBAGE_CALLS
CERTIFICATES = ("certs/ark_milan.pem", "certs/ask_milan.pem", "reports/milan_v2_gsg_vcek.der")
_INVALID_LEN = SNP_GUEST_VMM_ERR_INVALID_LEN << 32
_GENERIC = SNP_GUEST_VMM_ERR_GENERIC << 32
_DEADLINE = 30.0
#: the demo guest's source, shipped with this plugin (it links with the core's doorbell)
_GUEST = Path(__file__).with_name("guest") / "snp_demo.S"


def _store(testdata: Path) -> CertificateStore:
    paths = [testdata / "snp" / p for p in CERTIFICATES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise CoCoError(f"snp demo: missing certificates {missing}")
    store = CertificateStore()
    store.load_paths(paths)
    return store


class _Vmm:
    """The VMM side: the shipped services on one dispatcher, and what they saw."""

    def __init__(self, env: DemoEnv, memory: Any, store: CertificateStore, dispatcher: Any) -> None:
        self.dispatcher = dispatcher
        self.certs = CertificateService(memory, store)
        dispatcher.on(CertificateRequest, self.certs)
        self.conversions = ConversionLog(memory.contains)
        dispatcher.on(MemoryConversion, self.conversions)
        self.terminations: list[Termination] = []
        dispatcher.on(Termination, self._terminate)

    @property
    def table(self) -> bytes:
        """The certificate table the service writes (built once from the store)."""
        return self.certs._table or b""

    def _terminate(self, request: Termination, context: Any) -> CoCoStatus:
        self.terminations.append(request)
        return CoCoStatus.OK


def _enable(tee: EmulatedTee) -> None:
    tee.model.ctx.vm_state[REQ_CERTS_ENABLED] = True


# -- the main steps ----------------------------------------------------------------------------


def _check(env: DemoEnv, vmm: _Vmm, reports: dict[int, int], why: str) -> None:
    """The guest-visible expectations, the same for both backends."""
    table = vmm.table
    env.check(not why, f"snp: guest checks passed ({why})")
    needed = required_pages(len(table))
    env.check(
        reports.get(TAG_PAGES) == needed and needed > 1,
        f"snp: INVALID_LEN, RBX = pages needed ({reports.get(TAG_PAGES)}; table needs {needed})",
    )
    try:
        entries = len(parse_cert_table(table).entries)
    except Exception as exc:
        entries = -1
        env.check(False, f"snp: the certificate table parses ({exc})")
    env.check(
        reports.get(TAG_ENTRIES) == entries == len(CERTIFICATES),
        f"snp: the guest found {reports.get(TAG_ENTRIES)} certificates (table has {entries})",
    )
    env.check(
        reports.get(TAG_END) == len(table) and reports.get(TAG_FNV1A) == fnv1a32(table),
        "snp: the guest's table matches, byte for byte, the table the service wrote",
    )
    env.check(
        vmm.conversions.entries == [(PSC_GPA, 1, False, False), (PSC_GPA, 1, True, True)],
        f"snp: PSC MSR private->shared->private recorded by the tracker "
        f"(got {vmm.conversions.entries})",
    )
    term = vmm.terminations[-1] if vmm.terminations else None
    env.check(
        term is not None and term.code == 0 and "general termination request" in term.reason,
        f"snp: termination reason decoded ({term.reason if term else None!r})",
    )


def _run_kvm(env: DemoEnv, store: CertificateStore) -> None:
    box: dict[str, _Vmm] = {}

    def prepare(guest: EmulatedGuest) -> None:
        box["vmm"] = _Vmm(env, guest.memory, store, guest.dispatcher)
        _enable(guest.tee)

    run = env.run_guest("snp", _GUEST, prepare, _DEADLINE)
    _check(env, box["vmm"], dict(run.reports), run.problem("snp.term_msr"))


def _call(tee: EmulatedTee, **regs: int) -> dict[str, int]:
    """Ring the doorbell with ``regs``; the registers the guest reads back (GHCB mirrored)."""
    cpu = GuestCpu(regs=dict(regs), ghcb={f: regs.get(r, 0) for f, r in GHCB_TO_REGS.items()})
    tee.answer(cpu)
    out = dict(cpu.regs)
    out.update({r: cpu.ghcb[f] for f, r in GHCB_TO_REGS.items() if f in cpu.ghcb})
    return out


def _run_model(env: DemoEnv, store: CertificateStore) -> None:
    memory = GuestMemory.from_buffer(0, bytearray(GUEST_RAM_SIZE))
    vmm = _Vmm(env, memory, store, env.dispatcher("snp"))
    tee = EmulatedTee(
        env.registry, "snp", memory, vmm.dispatcher, on_call=env.flush_each_call("snp")
    )
    _enable(tee)
    problems: list[str] = []
    reports: dict[int, int] = {}
    ext = SvmVmgexit.EXT_GUEST_REQUEST

    regs = _call(tee, r12=ext, rax=CERT_BUF, rbx=1, r13=0, r14=0)
    if regs["r13"] != _INVALID_LEN or not 2 <= regs["rbx"] <= CERT_PAGES_MAX:
        problems.append(f"1 page: SW_EXITINFO2 {regs['r13']:#x}, RBX {regs['rbx']}")
    pages = reports[TAG_PAGES] = regs["rbx"]
    regs = _call(tee, r12=ext, rax=CERT_BUF, rbx=pages, r13=0, r14=0)
    if regs["r13"] != 0:
        problems.append(f"{pages} pages: SW_EXITINFO2 {regs['r13']:#x}")
    try:
        parsed = parse_cert_table(memory.read(CERT_BUF, min(pages, CERT_PAGES_MAX) * 4096))
        reports[TAG_ENTRIES] = len(parsed.entries)
        reports[TAG_END] = parsed.data_end
        reports[TAG_FNV1A] = fnv1a32(memory.read(CERT_BUF, parsed.data_end))
    except Exception as exc:
        problems.append(f"table in guest memory: {exc}")

    for op in (PscOp.SHARED, PscOp.PRIVATE):
        msr = GHCB_MSR_PSC_REQ | PSC_GPA | op << 52
        regs = _call(tee, r12=MSR_PROTOCOL, r11=msr)
        if regs["r11"] != GHCB_MSR_PSC_RESP:
            problems.append(f"PSC MSR op {op.name}: {regs['r11']:#x}")
    record = tee.answer(
        GuestCpu(
            regs={"r12": MSR_PROTOCOL, "r11": GHCB_MSR_TERM_REQ}, ghcb={"msr": GHCB_MSR_TERM_REQ}
        )
    )
    if not record.final:
        problems.append("termination did not end the guest")
    _check(env, vmm, reports, "; ".join(problems))


# -- robustness ----------------------------------------------------------------------------------


_DELIBERATE = "robustness: a certificate handler that raises, then random registers"


def _raise(request: CertificateRequest, context: Any) -> CoCoStatus:
    raise RuntimeError("demo: a handler that fails")


_DOCUMENTED_EXITINFO2 = frozenset({0, _INVALID_LEN, _GENERIC, GHCB_ERR_INVALID_EVENT, 3, 5})


def _documented(call: TeeCall) -> bool:
    """An answer from the GHCB/KVM spaces: an SW_EXITINFO2 code, or a GHCB MSR value."""
    values = call.values
    if not values and call.error is None:
        return True  # a GHCB KVM cannot map: no answer at all (sev.c sev_handle_vmgexit)
    if "sw_exitinfo2" in values:
        code = values["sw_exitinfo2"]
        return code in _DOCUMENTED_EXITINFO2 or (code >> 32) in (0x100, 1)  # PSC errors
    # a GHCB MSR value: PSC RESP/RESP_ERROR, or the guest's own value kept (unknown request)
    return "msr" in values


def _check_robust(env: DemoEnv, vmm: _Vmm, calls: list[TeeCall], why: str) -> None:
    env.check(not why, f"snp robustness: VMM kept running ({why})")
    first = calls[0] if calls else None
    env.check(
        first is not None and first.values.get("sw_exitinfo2") == _GENERIC,
        "snp robustness: a raising handler gives SW_EXITINFO2 = SNP_GUEST_VMM_ERR_GENERIC << 32",
    )
    bad = [c for c in calls if c.rejected or c.final or not _documented(c)]
    env.check(
        not bad and len(calls) == GARBAGE_CALLS + 1,
        f"snp robustness: {len(calls)} doorbell calls, each answered with a documented "
        f"GHCB/KVM value ({len(bad)} not: {[c.summary for c in bad][:3]})",
    )
    env.check(
        all(not c[2] or c[3] for c in vmm.conversions.entries) and not vmm.terminations,
        "snp robustness: no termination and no bogus conversion from garbage",
    )


def _robust_kvm(env: DemoEnv, store: CertificateStore) -> None:
    box: dict[str, _Vmm] = {}

    def prepare(guest: EmulatedGuest) -> None:
        vmm = box["vmm"] = _Vmm(env, guest.memory, store, guest.dispatcher)
        vmm.dispatcher.on(CertificateRequest, _raise)
        _enable(guest.tee)
        vcpu = guest.booted.vcpus[0]
        vcpu.set_regs(vcpu.get_regs().replace(rdi=1))  # vendor 1: SNP

    run = env.run_guest("snp", "doorbell_garbage", prepare, _DEADLINE)
    _check_robust(env, box["vmm"], list(run.calls), run.problem())


def _garbage_regs(rng: random.Random, n: int) -> dict[str, int]:
    names = ("rax", "rbx", "rcx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14")
    regs = {k: rng.getrandbits(64) for k in (*names, "r15")}
    if n % 2:  # shaped like doorbell_garbage.S (never a termination)
        if n & 2:
            regs["r12"] = SvmVmgexit.PSC if n & 4 else SvmVmgexit.EXT_GUEST_REQUEST
        else:
            regs["r12"] = MSR_PROTOCOL
            regs["r11"] = (regs["r11"] & ~0xFFF) | GHCB_MSR_PSC_REQ
    return regs


def _robust_model(env: DemoEnv, store: CertificateStore) -> None:
    memory = GuestMemory.from_buffer(0, bytearray(GUEST_RAM_SIZE))
    vmm = _Vmm(env, memory, store, env.dispatcher("snp"))
    vmm.dispatcher.on(CertificateRequest, _raise)
    tee = EmulatedTee(
        env.registry, "snp", memory, vmm.dispatcher, on_call=env.flush_each_call("snp")
    )
    _enable(tee)
    calls: list[TeeCall] = []

    def ring(regs: dict[str, int]) -> None:
        cpu = GuestCpu(regs=regs, ghcb={f: regs.get(r, 0) for f, r in GHCB_TO_REGS.items()})
        calls.append(tee.answer(cpu))

    ring({"r12": SvmVmgexit.EXT_GUEST_REQUEST, "rax": CERT_BUF, "rbx": 8, "r13": 0, "r14": 0})
    rng = random.Random(0x9E3779B97F4A7C15)
    for n in range(GARBAGE_CALLS):
        ring(_garbage_regs(rng, n))
    _check_robust(env, vmm, calls, "")


# -- the scenario --------------------------------------------------------------------------------


def scenario(env: DemoEnv) -> None:
    """Run the SNP scenario on ``env.backend`` (``kvm`` or ``model``)."""
    if env.testdata is None:
        raise CoCoError("snp demo: no testdata folder (give --testdata)")
    store = _store(env.testdata)
    if env.backend == "kvm":
        _run_kvm(env, store)
        with env.deliberate(_DELIBERATE):
            _robust_kvm(env, store)
    else:
        _run_model(env, store)
        with env.deliberate(_DELIBERATE):
            _robust_model(env, store)
