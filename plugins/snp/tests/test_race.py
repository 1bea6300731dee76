# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_snp.race: the certificate/TCB race and the protocols that close it."""

from __future__ import annotations

from hypothesis import find, given, settings
from hypothesis import strategies as st

from coco_snp.race import Actor, Outcome, Policy, run_schedule

A, B, U = Actor.VMM_A, Actor.VMM_B, Actor.UPDATER
schedules = st.lists(st.sampled_from(list(Actor)), max_size=40)


def test_explicit_interleaving_mismatches_without_protocol() -> None:
    """Read certs, hot-load, complete: the VCEK is for TCB 1 but the report is signed at 2."""
    result = run_schedule([A, U, A], Policy.NONE)
    assert [(r.served_tcb, r.signed_tcb, r.outcome) for r in result.requests] == [
        (1, 2, Outcome.MISMATCH)
    ]


def test_hypothesis_finds_a_mismatch_without_protocol() -> None:
    """A random search finds a schedule that mismatches when nothing coordinates."""
    found = find(schedules, lambda s: bool(run_schedule(s, Policy.NONE).mismatches))
    assert run_schedule(found, Policy.NONE).mismatches


def test_same_interleaving_is_safe_with_the_lock() -> None:
    """With OFD locks the updater waits for the in-flight request, which then matches."""
    result = run_schedule([A, U, A], Policy.OFD_LOCK)
    assert [r.outcome for r in result.requests] == [Outcome.MATCH]
    assert any("waits" in line for line in result.trace)
    assert result.final_tcb == 2


def test_lock_answers_retry_during_an_update() -> None:
    """A request arriving while the updater holds the exclusive lock gets RETRY."""
    result = run_schedule([U, A, U, U, U, A, A], Policy.OFD_LOCK)
    assert [r.outcome for r in result.requests] == [Outcome.RETRY, Outcome.MATCH]
    assert result.requests[1].served_tcb == 2


def test_tcb_keyed_store_serves_the_signing_tcb() -> None:
    """The TCB-keyed store serves the VCEK for the TCB the firmware signs with."""
    result = run_schedule([A, U, U, A], Policy.TCB_KEYED)
    assert [(r.served_tcb, r.signed_tcb) for r in result.requests] == [(2, 2)]


def test_tcb_keyed_store_retries_before_the_vcek_is_published() -> None:
    """Between hot-load and publishing the new VCEK, a request is answered RETRY."""
    result = run_schedule([A, U, A], Policy.TCB_KEYED)
    assert [r.outcome for r in result.requests] == [Outcome.RETRY]


@settings(max_examples=500)
@given(schedules)
def test_lock_protocol_never_mismatches(schedule: list[Actor]) -> None:
    """Under the OFD-lock protocol no interleaving serves a VCEK for the wrong TCB."""
    result = run_schedule(schedule, Policy.OFD_LOCK)
    assert result.mismatches == (), result.trace


@settings(max_examples=500)
@given(schedules)
def test_tcb_keyed_store_never_mismatches(schedule: list[Actor]) -> None:
    """With the TCB-keyed store no interleaving serves a VCEK for the wrong TCB."""
    result = run_schedule(schedule, Policy.TCB_KEYED)
    assert result.mismatches == (), result.trace


@given(schedules, st.sampled_from(list(Policy)))
def test_every_started_request_gets_an_outcome(schedule: list[Actor], policy: Policy) -> None:
    """Draining completes every request and every hot-load that started."""
    result = run_schedule(schedule, policy)
    reads = sum(" read certs" in line or " report signed" in line for line in result.trace)
    busy = sum("busy -> RETRY" in line for line in result.trace)
    assert len(result.requests) == reads + busy
    loads = sum(1 for line in result.trace if "load_firmware" in line)
    assert result.final_tcb == 1 + loads


@given(schedules)
def test_without_protocol_only_hot_loads_cause_mismatches(schedule: list[Actor]) -> None:
    """With no updater steps there is never a mismatch, whatever the policy."""
    quiet = [a for a in schedule if a is not U]
    for policy in Policy:
        assert run_schedule(quiet, policy).mismatches == ()


def test_guest_named_tcb_serves_the_tcb_of_its_report() -> None:
    """Glaze: "requests certificates for a given REPORTED_TCB": the report's TCB, old or new."""
    result = run_schedule([A, U, U, A], Policy.GUEST_NAMED_TCB)
    assert [(r.served_tcb, r.signed_tcb, r.outcome) for r in result.requests] == [
        (1, 1, Outcome.MATCH)
    ]
    assert result.final_tcb == 2
    # where TCB_KEYED, with no VCEK for the new TCB yet, can only answer RETRY
    assert [r.outcome for r in run_schedule([A, U, A], Policy.GUEST_NAMED_TCB).requests] == [
        Outcome.MATCH
    ]
    assert [r.outcome for r in run_schedule([A, U, A], Policy.TCB_KEYED).requests] == [
        Outcome.RETRY
    ]


def test_guest_named_tcb_after_a_hot_load_waits_for_the_new_vcek() -> None:
    """A report signed under the new TCB before its VCEK is published is answered RETRY."""
    result = run_schedule([U, A, A, U, A, A], Policy.GUEST_NAMED_TCB)
    assert [(r.served_tcb, r.outcome) for r in result.requests] == [
        (None, Outcome.RETRY),
        (2, Outcome.MATCH),
    ]


@settings(max_examples=500)
@given(schedules)
def test_guest_named_tcb_never_mismatches(schedule: list[Actor]) -> None:
    """With the guest naming the report's REPORTED_TCB no interleaving serves the wrong VCEK."""
    result = run_schedule(schedule, Policy.GUEST_NAMED_TCB)
    assert result.mismatches == (), result.trace
