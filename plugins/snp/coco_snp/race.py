# SPDX-License-Identifier: Apache-2.0
"""A deterministic model of the SNP certificate/TCB race and of three ways to handle it.

The race (KVM list, 2024; ``docs/reference/kernel-abi.md`` §3.8): the VMM reads its
certificate blob, writes it into the guest, and only later does KVM issue
``SNP_GUEST_REQUEST``, when the firmware signs the report with its *current* REPORTED_TCB.
If ``SNP_COMMIT``/``SNP_SET_CONFIG`` or a firmware hot-load changes that TCB in between, the
guest receives a VCEK for the old TCB and a report signed by the new one.

Actors, each advanced one step per schedule entry:

* **updater**: hot-loads firmware (REPORTED_TCB += 1), then publishes the VCEK for the new
  TCB. Under :attr:`Policy.OFD_LOCK` it brackets both with the exclusive lock
  (:func:`coco_snp.certs.lock.exclusive_update`) and waits (``F_OFD_SETLKW``) while any VMM
  holds the shared lock.
* **VMM** (``VMM_A``, ``VMM_B``: two vCPUs): serves one request in two steps — *read* the
  certificates, then *complete* (KVM issues the firmware request; the firmware signs with the
  TCB it has at that moment). Under :attr:`Policy.GUEST_NAMED_TCB` the two steps are the
  guest's two requests instead: the report, then the certificates for the TCB it names.
  Under :attr:`Policy.OFD_LOCK` the read takes the shared lock non-blocking and the
  completion releases it (``immediate_exit``/``EINTR``); if the updater holds the lock the
  request is answered RETRY (``EAGAIN``) at once.
* **firmware**: holds REPORTED_TCB; it has no steps of its own.

Policies:

* :attr:`Policy.NONE` — no protocol: mismatches happen.
* :attr:`Policy.OFD_LOCK` — the upstream convention (kernel-abi.md §3.2).
* :attr:`Policy.TCB_KEYED` — the store keeps one VCEK per TCB
  (:meth:`coco_snp.certs.store.CertificateStore.for_tcb`) and the VMM picks it at completion for
  the TCB the firmware signs with. The model assumes that TCB is learnt atomically with the
  signing (as in Dionna Glaze's proposal to return REPORTED_TCB with the request, which was
  not adopted upstream); without that atomicity this policy has its own, smaller window. If
  the VCEK for that TCB is not published yet, the request is answered RETRY.
* :attr:`Policy.GUEST_NAMED_TCB` — Dionna Glaze's second alternative (2024-09-13,
  <CAAH4kHZ-9ajaLH8C1N2MKzFuBKjx+BVk9-t24xhyEL3AKEeMQQ@mail.gmail.com>): "a new request
  type that doesn't communicate with the ASP at all and instead just requests certificates
  for a given REPORTED_TCB. The guest VM can read an attestation report's reported_tcb
  field and craft this request." The guest first gets its report (the firmware signs with
  the TCB it has then), then asks for the certificates of the REPORTED_TCB in that report;
  the VMM serves that TCB's VCEK from a TCB-keyed store, or RETRY if it has none yet. No
  GHCB request of this kind exists; the model shows what it would buy.

Verdicts (``plugins/snp/tests/test_race.py`` checks every interleaving of small schedules):
``NONE`` mismatches; ``OFD_LOCK``, ``TCB_KEYED`` and ``GUEST_NAMED_TCB`` never do.
``TCB_KEYED`` needs the signing TCB learnt atomically with the signing (a ccp change);
``GUEST_NAMED_TCB`` needs no atomicity and no lock, because the TCB comes from the signed
report itself, at the price of a GHCB extension, a second guest round trip, and a store
that keeps the VCEK of every TCB a guest may still hold a report for.

Running a schedule yields, per request, the TCB of the VCEK served and the TCB signed with.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

__all__ = ["Actor", "Outcome", "Policy", "RaceResult", "RequestOutcome", "run_schedule"]


@enum.unique
class Actor(enum.Enum):
    """Who moves in a schedule step."""

    UPDATER = "U"
    VMM_A = "A"
    VMM_B = "B"


@enum.unique
class Policy(enum.Enum):
    """How VMM and updater coordinate."""

    NONE = "none"
    OFD_LOCK = "ofd-lock"
    TCB_KEYED = "tcb-keyed"
    GUEST_NAMED_TCB = "guest-named-tcb"


@enum.unique
class Outcome(enum.Enum):
    """What the guest got for one request."""

    MATCH = "match"  # VCEK TCB == TCB the firmware signed with
    MISMATCH = "mismatch"  # the race: the VCEK cannot verify the report
    RETRY = "retry"  # answered EAGAIN; the guest asks again


@attrs.frozen
class RequestOutcome:
    """One served request."""

    vmm: Actor
    served_tcb: int | None  # TCB of the VCEK handed to the guest (None on RETRY)
    signed_tcb: int | None  # TCB the firmware signed with (None on RETRY)
    outcome: Outcome


@attrs.frozen
class RaceResult:
    """Everything that happened in one run."""

    policy: Policy
    requests: tuple[RequestOutcome, ...]
    trace: tuple[str, ...]
    final_tcb: int

    @property
    def mismatches(self) -> tuple[RequestOutcome, ...]:
        """Requests whose VCEK does not match the signing TCB."""
        return tuple(r for r in self.requests if r.outcome is Outcome.MISMATCH)


# Updater programs: the step names it runs through for one hot-load, per policy.
_UPDATER_STEPS = {
    Policy.NONE: ("load_firmware", "write_certs"),
    Policy.OFD_LOCK: ("lock_exclusive", "load_firmware", "write_certs", "unlock"),
    Policy.TCB_KEYED: ("load_firmware", "write_certs"),
    Policy.GUEST_NAMED_TCB: ("load_firmware", "write_certs"),
}


@attrs.define
class _World:
    """Mutable model state (mutation is the point)."""

    policy: Policy
    firmware_tcb: int
    cert_file_tcb: int  # TCB of the VCEK in the blob
    published: set[int]  # TCB-keyed store contents
    exclusive: bool = False
    shared: set[Actor] = attrs.field(factory=set)
    updater_pc: int = 0  # index into the updater program
    updating: bool = False  # a hot-load has started (possibly still waiting for the lock)
    reading: dict[Actor, int | None] = attrs.field(factory=dict)  # in-flight requests
    requests: list[RequestOutcome] = attrs.field(factory=list)
    trace: list[str] = attrs.field(factory=list)

    def step_updater(self) -> None:
        program = _UPDATER_STEPS[self.policy]
        self.updating = True
        name = program[self.updater_pc]
        if name == "lock_exclusive":
            if self.shared:
                holders = sorted(a.value for a in self.shared)
                self.trace.append(f"U waits: shared lock held by {holders}")
                return  # F_OFD_SETLKW sleeps; the step is deferred
            self.exclusive = True
        elif name == "load_firmware":
            self.firmware_tcb += 1
        elif name == "write_certs":
            self.cert_file_tcb = self.firmware_tcb
            self.published.add(self.firmware_tcb)
        elif name == "unlock":
            self.exclusive = False
        self.trace.append(f"U {name} (fw tcb {self.firmware_tcb})")
        self.updater_pc = (self.updater_pc + 1) % len(program)
        self.updating = self.updater_pc != 0

    def step_vmm(self, vmm: Actor) -> None:
        if vmm not in self.reading:
            self._read(vmm)
        else:
            self._complete(vmm)

    def _read(self, vmm: Actor) -> None:
        if self.policy is Policy.OFD_LOCK:
            if self.exclusive:  # F_OFD_SETLK fails: CertificatesBusy -> RETRY (EAGAIN)
                self.requests.append(RequestOutcome(vmm, None, None, Outcome.RETRY))
                self.trace.append(f"{vmm.value} busy -> RETRY")
                return
            self.shared.add(vmm)
        if self.policy is Policy.GUEST_NAMED_TCB:  # the report first: signed now
            self.reading[vmm] = self.firmware_tcb
            self.trace.append(f"{vmm.value} report signed (tcb {self.firmware_tcb})")
            return
        served = None if self.policy is Policy.TCB_KEYED else self.cert_file_tcb
        self.reading[vmm] = served
        self.trace.append(f"{vmm.value} read certs (tcb {served})")

    def _complete(self, vmm: Actor) -> None:
        served = self.reading.pop(vmm)
        if self.policy is Policy.GUEST_NAMED_TCB:
            self._serve_named(vmm, served)
            return
        signed = self.firmware_tcb  # the firmware signs now, with its current TCB
        if self.policy is Policy.TCB_KEYED:
            if signed not in self.published:
                self.requests.append(RequestOutcome(vmm, None, None, Outcome.RETRY))
                self.trace.append(f"{vmm.value} no VCEK for tcb {signed} yet -> RETRY")
                return
            served = signed
        self.shared.discard(vmm)  # immediate_exit KVM_RUN returned EINTR: drop the lock
        outcome = Outcome.MATCH if served == signed else Outcome.MISMATCH
        self.requests.append(RequestOutcome(vmm, served, signed, outcome))
        self.trace.append(
            f"{vmm.value} complete: served {served}, signed {signed} ({outcome.value})"
        )

    def _serve_named(self, vmm: Actor, named: int | None) -> None:
        """The guest asks for the VCEK of the REPORTED_TCB its report carries: no ASP call."""
        if named is None or named not in self.published:
            self.requests.append(RequestOutcome(vmm, None, None, Outcome.RETRY))
            self.trace.append(f"{vmm.value} no VCEK for named tcb {named} yet -> RETRY")
            return
        self.requests.append(RequestOutcome(vmm, named, named, Outcome.MATCH))
        self.trace.append(f"{vmm.value} certs for named tcb {named}: served {named} (match)")


def run_schedule(schedule: Iterable[Actor], policy: Policy, *, initial_tcb: int = 1) -> RaceResult:
    """Run ``schedule`` (one actor step per entry) under ``policy``, then drain.

    Draining completes every in-flight request, then lets the updater finish its hot-load,
    so every request that was started gets an outcome.
    """
    world = _World(
        policy=policy,
        firmware_tcb=initial_tcb,
        cert_file_tcb=initial_tcb,
        published={initial_tcb},
    )
    for actor in schedule:
        if actor is Actor.UPDATER:
            world.step_updater()
        else:
            world.step_vmm(actor)
    for vmm in list(world.reading):  # completions never block
        world.step_vmm(vmm)
    while world.updating:  # no shared locks remain, so the updater cannot block
        world.step_updater()
    return RaceResult(
        policy=policy,
        requests=tuple(world.requests),
        trace=tuple(world.trace),
        final_tcb=world.firmware_tcb,
    )
