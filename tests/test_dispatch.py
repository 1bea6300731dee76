# SPDX-License-Identifier: Apache-2.0
"""The dispatcher: decode, handler, completion, and what happens when things go wrong."""

from __future__ import annotations

import logging
import struct
from typing import Any

import coco_example.plugin as example
import pytest
from attrs import evolve as attrs_evolve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coco_core.abi import AbiPart, Discriminator, ExitDecoder
from coco_core.completion import write_completion
from coco_core.dispatch import Dispatcher
from coco_core.errors import ConfigurationError, RegistrationError
from coco_core.errorspace import CodeError
from coco_core.exits import CoCoExit, CompletionError
from coco_core.generic.uapi import KVM_RUN_FRAME, KVM_RUN_SIZE, KvmExitReason
from coco_core.layout import U32, U64, struct_of
from coco_core.registry import Registrar, Registry
from coco_core.requests import (
    MemoryConversion,
    MsrAccess,
    NeutralRequest,
    NotHandled,
    PortIo,
    QuoteRequest,
    Unsupported,
    VendorSpecific,
)
from coco_core.status import CoCoStatus, Outcome
from coco_core.testing import kvm_run_image

# kvm_run of KVM_EXIT_EXAMPLE_ATTEST (44), the rest of the buffer 0xAA so that
# any write outside the union shows.
#   0x08: 2c 00 00 00              exit_reason = 44
#   0x20: 00 10 00 00 00 00 00 00  example_attest.gpa = 0x1000
#   0x28: 00 01 00 00              example_attest.len = 256
#   0x2c: ee ee ee ee              example_attest.ret (before completion)
ATTEST_UNION = bytes.fromhex("00 10 00 00 00 00 00 00  00 01 00 00  ee ee ee ee")
RET = slice(0x2C, 0x30)


@pytest.fixture
def reg() -> Registry:
    """The example plugin's registry (with the core's built-ins)."""
    return Registry.from_plugins([example])


@pytest.fixture
def d(reg: Registry) -> Dispatcher:
    """A dispatcher for the example vendor under example-1."""
    return Dispatcher(reg, "example", "example-1")


def attest_run() -> bytearray:
    """A fresh KVM_EXIT_EXAMPLE_ATTEST image with 0xAA outside the union."""
    buf = kvm_run_image(44, ATTEST_UNION, fill=0xAA)
    buf[32 + len(ATTEST_UNION) : 288] = bytes(288 - 32 - len(ATTEST_UNION))
    return buf


def outside_union(buf: bytes | bytearray) -> bytes:
    """Every byte of kvm_run except the exit union."""
    return bytes(buf[:32]) + bytes(buf[288:])


def test_handler_result_is_encoded_into_ret(d: Dispatcher) -> None:
    """A handler's status is written as the vendor's code in the union, nothing else changes."""
    d.on(QuoteRequest, lambda r, c: CoCoStatus.INVALID)
    buf = attest_run()
    before = bytes(buf)
    assert d.dispatch(buf) is CoCoStatus.INVALID
    assert buf[RET] == bytes.fromhex("02 00 00 00")  # EXAMPLE_INVALID
    assert outside_union(buf) == outside_union(before)


def test_handler_gets_request_and_context(d: Dispatcher) -> None:
    """The handler receives the decoded neutral request and the dispatch context."""
    calls: list[tuple[NeutralRequest, Any]] = []

    def handler(request: QuoteRequest, context: Any) -> CoCoStatus:
        calls.append((request, context))
        return CoCoStatus.OK

    d.on(QuoteRequest, handler)
    d.dispatch(attest_run(), context="vcpu0")
    assert calls == [(QuoteRequest(0x1000, 256), "vcpu0")]


def test_raising_handler_completes_with_error_and_logs(
    d: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that raises completes the exit with ERROR and logs the exit's details."""

    def boom(request: QuoteRequest, context: Any) -> CoCoStatus:
        raise RuntimeError("quote service exploded")

    d.on(QuoteRequest, boom)
    buf = attest_run()
    with caplog.at_level(logging.ERROR, logger="coco_core.dispatch"):
        assert d.dispatch(buf) is CoCoStatus.ERROR
    assert buf[RET] == bytes.fromhex("03 00 00 00")  # EXAMPLE_ERROR
    (rec,) = caplog.records
    assert "KVM_EXIT_EXAMPLE_ATTEST" in rec.getMessage()
    assert "QuoteRequest(gpa=4096, size=256)" in rec.getMessage()
    assert rec.exc_info is not None
    assert "quote service exploded" in caplog.text


def test_no_handler_uses_decoder_default_status(d: Dispatcher) -> None:
    """Without a handler the decoder's default status (UNSUPPORTED) is encoded via its fallback."""
    buf = attest_run()
    assert d.dispatch(buf) is CoCoStatus.UNSUPPORTED
    assert buf[RET] == bytes.fromhex("03 00 00 00")  # UNSUPPORTED falls back to EXAMPLE_ERROR


def test_no_handler_and_no_default_hands_exit_back_untouched(reg: Registry) -> None:
    """A decoder with default_status None gives the exit back as Unsupported, untouched."""
    d = Dispatcher(reg, "example", "linux-7.2")
    # KVM_EXIT_IO: direction 1 (out), size 1, port 0x3f8, count 1, data_offset 0x1000
    buf = kvm_run_image(
        KvmExitReason.IO, bytes.fromhex("01 01 f8 03 01 00 00 00 00 10 00 00 00 00 00 00")
    )
    before = bytes(buf)
    result = d.dispatch(buf)
    assert isinstance(result, Unsupported)
    assert result.raw_reason == KvmExitReason.IO
    assert (result.why, result.claimed_by) == (NotHandled.NO_HANDLER, "KVM_EXIT_IO")
    assert bytes(buf) == before
    d.on(PortIo, lambda r, c: CoCoStatus.OK)
    assert d.dispatch(buf) is CoCoStatus.OK


def test_unknown_reason_is_unsupported_and_untouched(d: Dispatcher) -> None:
    """An exit reason nobody claims comes back as Unsupported with the raw union, untouched."""
    buf = kvm_run_image(0x77, bytes(range(256)), fill=0x5A)
    before = bytes(buf)
    result = d.dispatch(buf)
    assert result == Unsupported(0x77, None, bytes(range(256)), NotHandled.UNCLAIMED)
    assert bytes(buf) == before


def test_tracer_receives_completed_exit(reg: Registry) -> None:
    """The tracer gets a CoCoExit with the request and what the completion wrote."""
    seen: list[CoCoExit] = []
    d = Dispatcher(reg, "example", "example-1", tracer=seen.append)
    d.on(QuoteRequest, lambda r, c: CoCoStatus.OK)
    d.dispatch(attest_run())
    (ev,) = seen
    assert ev.name == "KVM_EXIT_EXAMPLE_ATTEST"
    assert ev.exit_reason == 44
    assert ev.request == QuoteRequest(0x1000, 256)
    assert ev.completed is not None
    assert (ev.completed.status, ev.completed.raw, ev.completed.raw_name) == (
        CoCoStatus.OK,
        0,
        "EXAMPLE_OK",
    )
    assert ev.describe_raw() == "0x0 (EXAMPLE_OK)"


def test_decode_then_complete_is_one_shot(d: Dispatcher) -> None:
    """complete() writes once; a second completion raises and leaves the first in place."""
    buf = attest_run()
    ev = d.decode(buf)
    assert ev.request == QuoteRequest(0x1000, 256)
    done = ev.complete(CoCoStatus.INVALID)
    assert (done.raw, done.raw_name) == (2, "EXAMPLE_INVALID")
    with pytest.raises(CompletionError, match="already completed"):
        ev.complete(CoCoStatus.OK)
    assert buf[RET] == bytes.fromhex("02 00 00 00")


def test_retry_after_hand_on_raises(d: Dispatcher) -> None:
    """RETRY after the request was handed on raises CompletionError and writes nothing."""
    buf = attest_run()
    ev = d.decode(buf)
    ev.hand_on()
    with pytest.raises(CompletionError, match="RETRY after the request was handed on"):
        ev.complete(CoCoStatus.RETRY)
    assert buf[RET] == bytes.fromhex("ee ee ee ee")
    assert ev.completed is None


def test_retry_before_hand_on_is_written(d: Dispatcher) -> None:
    """RETRY is legal before hand-on and writes the vendor's retry code."""
    buf = attest_run()
    d.decode(buf).complete(Outcome(CoCoStatus.RETRY, detail="busy"))
    assert buf[RET] == bytes.fromhex("01 00 00 00")


def test_vendor_code_meaning_another_status_writes_error(
    d: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    """A vendor_code that means another status is refused: ERROR is written and logged."""
    d.on(QuoteRequest, lambda r, c: Outcome(CoCoStatus.INVALID, vendor_code=1))  # 1 = RETRY
    buf = attest_run()
    with caplog.at_level(logging.ERROR, logger="coco_core.dispatch"):
        assert d.dispatch(buf) is CoCoStatus.ERROR
    assert buf[RET] == bytes.fromhex("03 00 00 00")
    assert "vendor code rejected" in caplog.text
    assert "EXAMPLE_RETRY (0x1) means RETRY, not INVALID" in caplog.text


def test_vendor_code_of_fallback_is_accepted(d: Dispatcher) -> None:
    """A vendor_code equal to the status's declared fallback code is written as given."""
    d.on(
        QuoteRequest,
        lambda r, c: Outcome(CoCoStatus.BUFFER_TOO_SMALL, size_needed=8, vendor_code=2),
    )
    buf = attest_run()
    result = d.dispatch(buf)
    assert isinstance(result, Outcome)
    assert buf[RET] == bytes.fromhex("02 00 00 00")


def test_write_completion_rejects_unknown_vendor_code(d: Dispatcher) -> None:
    """write_completion raises CodeError for a code the space does not define."""
    with pytest.raises(CodeError) as info:
        write_completion(
            example.ATTEST, attest_run(), QuoteRequest(0, 0), Outcome(CoCoStatus.OK, vendor_code=9)
        )
    assert (info.value.space, info.value.raw, info.value.status) == (
        "example.status",
        9,
        CoCoStatus.OK,
    )


def test_unknown_vendor_and_abi_are_configuration_errors(reg: Registry) -> None:
    """Asking for an unregistered vendor or ABI names the known ones."""
    with pytest.raises(ConfigurationError, match=r"unknown vendor 'acme'.*example"):
        Dispatcher(reg, "acme", "example-1")
    with pytest.raises(ConfigurationError, match=r"unknown ABI 'linux-9\.9'.*linux-7\.2"):
        Dispatcher(reg, "example", "linux-9.9")


# -- sub-calls and broken decoders ---------------------------------------------------

_SUB = struct.Struct("<Q")


def _vs(name: str) -> Any:
    def decode(run: memoryview) -> NeutralRequest:
        return VendorSpecific("acme", name, (("arg", _SUB.unpack_from(run, 48)[0]),))

    return decode


def _write_ret(run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None) -> None:
    run[32 + 24 : 32 + 32] = raw.to_bytes(8, "little")


def _broken(run: memoryview) -> NeutralRequest:
    raise ValueError("decoder bug")


def _declines_odd(run: memoryview) -> NeutralRequest:
    """Decline sub-call keys whose ``fn`` is odd: not this vendor's to answer."""
    ext, fn = _PAIR.unpack_from(run, 40)
    if fn & 1:
        return Unsupported(47, detail=f"function {fn} is not ours")
    return VendorSpecific("acme", "pair", (("ext", ext), ("fn", fn)))


#: exit 47's compound key: acme.nr (u64 at 40) and acme.fn (u32 at 48)
_PAIR = struct.Struct("<QI")
_ACME_MEMBER = struct_of(
    "struct", [("flags", U64), ("nr", U64), ("fn", U32), ("pad", U32), ("ret", U64)]
)


@pytest.fixture
def acme(make_plugin: Any) -> Registry:
    """Vendor acme: exit 45 with sub-calls at 40 and a fallback; a broken exit 46; exit 47
    keyed on (nr, fn), with a fallback that declines odd functions."""

    def register(r: Registrar) -> None:
        r.add_vendor("acme", "Acme TEE")
        space = example.EXAMPLE_STATUS
        pair = {"vendor": "acme", "request_type": VendorSpecific, "error_space": space}
        dec = [
            ExitDecoder(
                name="ACME_PAIR/7.0",
                reason=47,
                discriminator=(7, 0),
                decode=_declines_odd,
                write=_write_ret,
                **pair,  # type: ignore[arg-type]
            ),
            ExitDecoder(
                name="ACME_PAIR/7.2",
                reason=47,
                discriminator=(7, 2),
                decode=_declines_odd,
                write=_write_ret,
                default_status=None,
                **pair,  # type: ignore[arg-type]
            ),
            ExitDecoder(
                name="ACME_PAIR/?",
                reason=47,
                discriminator=None,
                decode=_declines_odd,
                write=_write_ret,
                fallback=True,
                **pair,  # type: ignore[arg-type]
            ),
            ExitDecoder(
                name="ACME/ONE",
                reason=45,
                discriminator=1,
                vendor="acme",
                request_type=VendorSpecific,
                decode=_vs("one"),
                write=_write_ret,
                error_space=space,
            ),
            ExitDecoder(
                name="ACME/TWO",
                reason=45,
                discriminator=2,
                vendor="acme",
                request_type=VendorSpecific,
                decode=_vs("two"),
                write=_write_ret,
                error_space=space,
            ),
            ExitDecoder(
                name="ACME/?",
                reason=45,
                discriminator=None,
                vendor="acme",
                request_type=VendorSpecific,
                decode=_vs("other"),
                write=_write_ret,
                error_space=space,
                fallback=True,
            ),
            ExitDecoder(
                name="ACME_BROKEN",
                reason=46,
                discriminator=None,
                vendor="acme",
                request_type=QuoteRequest,
                decode=_broken,
                write=_write_ret,
                error_space=space,
            ),
        ]
        r.add_abi(
            AbiPart(
                abi="acme-1",
                vendor="acme",
                source="test",
                released=False,
                exits={"KVM_EXIT_ACME": 45, "KVM_EXIT_ACME_BROKEN": 46, "KVM_EXIT_ACME_PAIR": 47},
                union_members={"acme": _ACME_MEMBER},
                decoders=tuple(dec),
                discriminators=(
                    Discriminator(reason=45, offset=40, fmt="<Q", field="kvm_run.acme.nr"),
                    Discriminator(
                        reason=47,
                        offset=40,
                        fmt="<QI",
                        field="kvm_run.acme.nr",
                        more=("kvm_run.acme.fn",),
                    ),
                ),
                frame=KVM_RUN_FRAME,
            )
        )

    return Registry.from_plugins([make_plugin("acme", register)])


def test_discriminator_routes_sub_calls_and_fallback(acme: Registry) -> None:
    """The sub-call number at the discriminator picks the decoder; unknown ones hit the fallback."""
    d = Dispatcher(acme, "acme", "acme-1")
    names: list[str] = []
    d.on(VendorSpecific, lambda r, c: names.append(r.name) or CoCoStatus.OK)
    for nr in (2, 1, 99):
        buf = kvm_run_image(45)
        _SUB.pack_into(buf, 40, nr)  # kvm_run.acme.nr
        d.dispatch(buf)
    assert names == ["two", "one", "other"]
    assert d.decode(kvm_run_image(45)).name == "ACME/?"


def _pair(nr: int, fn: int) -> bytearray:
    buf = kvm_run_image(47, fill=0x5A)
    _PAIR.pack_into(buf, 40, nr, fn)
    return buf


def test_compound_key_routes_on_every_field(acme: Registry) -> None:
    """A compound key picks the decoder by every field; a key differing in one gets the fallback."""
    d = Dispatcher(acme, "acme", "acme-1")
    seen: list[str] = []
    d.on(VendorSpecific, lambda r, c: seen.append(r.name) or CoCoStatus.OK)
    names = [d.decode(_pair(nr, fn)).name for nr, fn in ((7, 0), (7, 2), (7, 4), (8, 0), (6, 2))]
    assert names == ["ACME_PAIR/7.0", "ACME_PAIR/7.2", "ACME_PAIR/?", "ACME_PAIR/?", "ACME_PAIR/?"]
    buf = _pair(7, 0)
    assert d.dispatch(buf) is CoCoStatus.OK
    assert buf[56:64] == bytes(8)  # acme.ret = EXAMPLE_OK


def test_declined_exit_comes_back_untouched_and_says_why(acme: Registry) -> None:
    """A decoder that declines gets the exit back to the VMM untouched, not to the handler."""
    d = Dispatcher(acme, "acme", "acme-1")
    called: list[NeutralRequest] = []
    d.on(VendorSpecific, lambda r, c: called.append(r) or CoCoStatus.OK)
    buf = _pair(7, 3)
    before = bytes(buf)
    result = d.dispatch(buf)
    assert isinstance(result, Unsupported)
    assert (result.why, result.claimed_by, result.detail) == (
        NotHandled.DECLINED,
        "ACME_PAIR/?",
        "function 3 is not ours",
    )
    assert (result.raw_reason, result.discriminator) == (47, (7, 3))
    assert result.raw == before[32:288]
    assert bytes(buf) == before
    assert called == []
    ev = d.decode(bytearray(before))
    assert ev.request == result
    assert ev.completion is None


def test_no_handler_and_unclaimed_are_told_apart(acme: Registry) -> None:
    """A claimed exit without handler or default is NO_HANDLER; an unknown key is UNCLAIMED."""
    d = Dispatcher(acme, "acme", "acme-1")
    buf = _pair(7, 2)
    before = bytes(buf)
    result = d.dispatch(buf)
    assert isinstance(result, Unsupported)
    assert bytes(buf) == before
    assert (result.why, result.claimed_by) == (NotHandled.NO_HANDLER, "ACME_PAIR/7.2")
    unknown = d.dispatch(kvm_run_image(48))
    assert isinstance(unknown, Unsupported)
    assert (unknown.why, unknown.claimed_by) == (NotHandled.UNCLAIMED, None)


def test_compound_key_of_the_wrong_length_is_refused(make_plugin: Any) -> None:
    """A decoder naming a one-number sub-call under a two-number key is refused at registration."""

    def register(r: Registrar) -> None:
        r.add_vendor("acme", "Acme TEE")
        r.add_abi(
            AbiPart(
                abi="acme-1",
                vendor="acme",
                source="test",
                released=False,
                exits={"KVM_EXIT_ACME_PAIR": 47},
                union_members={"acme": _ACME_MEMBER},
                decoders=(
                    ExitDecoder(
                        name="ACME_PAIR/7",
                        reason=47,
                        discriminator=7,
                        vendor="acme",
                        request_type=VendorSpecific,
                        decode=_declines_odd,
                        write=None,
                        error_space=None,
                    ),
                ),
                discriminators=(
                    Discriminator(
                        reason=47,
                        offset=40,
                        fmt="<QI",
                        field="kvm_run.acme.nr",
                        more=("kvm_run.acme.fn",),
                    ),
                ),
                frame=KVM_RUN_FRAME,
            )
        )

    with pytest.raises(RegistrationError, match=r"ACME_PAIR/7: sub-call 7 of exit 47 has 1 number"):
        Registry.from_plugins([make_plugin("acme", register)])


def test_key_format_must_read_one_number_per_field() -> None:
    """A discriminator whose format reads more numbers than it names fields is refused."""
    with pytest.raises(ValueError, match="reads 2 number"):
        Discriminator(reason=47, offset=40, fmt="<QI", field="kvm_run.acme.nr")
    with pytest.raises(ValueError, match="not '<' followed by"):
        Discriminator(reason=47, offset=40, fmt="<q", field="kvm_run.acme.nr")
    where = Discriminator(reason=47, offset=40, fmt="<Q4xI", field="kvm_run.a.nr", more=("b",))
    assert where.positions == ((40, 8), (52, 4))


def test_decoder_that_raises_completes_with_error(
    acme: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    """A decoder bug is logged and the exit completed with ERROR instead of raising."""
    d = Dispatcher(acme, "acme", "acme-1")
    buf = kvm_run_image(46)
    with caplog.at_level(logging.ERROR, logger="coco_core.dispatch"):
        assert d.dispatch(buf) is CoCoStatus.ERROR
    assert buf[56:64] == (3).to_bytes(8, "little")
    assert "ACME_BROKEN: decoder failed on exit 46" in caplog.text


# -- the built-in decoders under arbitrary bytes ---------------------------------------

_GENERIC = [
    KvmExitReason.IO,
    KvmExitReason.HYPERCALL,
    KvmExitReason.SYSTEM_EVENT,
    KvmExitReason.X86_RDMSR,
    KvmExitReason.X86_WRMSR,
    KvmExitReason.MEMORY_FAULT,
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    abi=st.sampled_from(["linux-6.16", "linux-7.0", "linux-7.1", "linux-7.2"]),
    reason=st.sampled_from(_GENERIC),
    map_gpa=st.booleans(),
    status=st.sampled_from(CoCoStatus),
    image=st.binary(min_size=KVM_RUN_SIZE, max_size=KVM_RUN_SIZE),
)
def test_generic_exits_never_raise_or_write_outside_union(
    abi: str, reason: int, map_gpa: bool, status: CoCoStatus, image: bytes
) -> None:
    """Random images of the generic exits dispatch without raising and write only the union."""
    d = Dispatcher(Registry.from_plugins([example]), "example", abi)
    for t in (PortIo, MsrAccess, MemoryConversion):
        d.on(t, lambda r, c: status)
    buf = bytearray(image)
    buf[8:12] = int(reason).to_bytes(4, "little")
    if map_gpa and reason == KvmExitReason.HYPERCALL:
        buf[32:40] = (12).to_bytes(8, "little")  # KVM_HC_MAP_GPA_RANGE
    before = bytes(buf)
    d.dispatch(buf)
    assert outside_union(buf) == outside_union(before)


def test_handler_returning_garbage_is_answered_with_error(caplog: pytest.LogCaptureFixture) -> None:
    """A handler that returns neither a status nor an Outcome gets ERROR written and logged."""
    from coco_core.generic.kvmerrno import MAP_GPA_RANGE_ERRNO
    from coco_core.registry import Registry
    from coco_core.requests import MemoryConversion

    class _Vendor:
        __name__ = "coco_garbage.plugin"

        @staticmethod
        def coco_register_vendor(registrar: Any) -> None:
            registrar.add_vendor("garbage", "garbage")

    from coco_core.hookspecs import hookimpl

    hookimpl(_Vendor.coco_register_vendor)
    d = Dispatcher(Registry.from_plugins([_Vendor]), "garbage")  # type: ignore[list-item]
    d.on(MemoryConversion, lambda req, ctx: None)  # type: ignore[arg-type,return-value]
    run = bytearray(2352)
    struct.pack_into("<I", run, 8, 3)
    struct.pack_into("<QQQQ", run, 32, 12, 0x1000, 1, 0)
    assert d.dispatch(run) is CoCoStatus.ERROR
    assert struct.unpack_from("<Q", run, 88)[0] == MAP_GPA_RANGE_ERRNO.encode(CoCoStatus.ERROR)
    assert "not a CoCoStatus or Outcome" in caplog.text


def test_subclass_override_of_dispatch_is_kept() -> None:
    """A Dispatcher subclass that overrides dispatch() gets its override, not the closure."""
    from coco_core.registry import Registry

    calls: list[int] = []

    class Counting(Dispatcher):
        def dispatch(self, run: Any, context: Any = None) -> Any:
            calls.append(1)
            return super().dispatch(run, context)

    d = Counting(Registry.from_plugins([example]), "example", "example-1")
    run = bytearray(2352)
    struct.pack_into("<I", run, 8, 44)
    d.dispatch(run)
    assert calls == [1]


# -- status fields and re-linking ----------------------------------------------------


def test_every_registered_status_field_matches_its_write() -> None:
    """Core and plugin decoders that declare a status field write exactly it for every status."""
    from coco_core.testing.kit import status_field_problems

    reg = Registry.from_entry_points()
    checked = 0
    for abi in reg.abis.values():
        for dec in abi.decoders:
            if dec.status_field is None:
                continue
            image = kvm_run_image(dec.reason, bytes(range(256)), fill=0x5A)
            assert status_field_problems(abi, dec, bytes(image)) == []
            checked += 1
    assert checked >= 20  # MSR x2, MAP_GPA, SNP and TDX ret fields, across the ABIs


def _acme_abi(dec: ExitDecoder) -> Any:
    from coco_core.abi import Abi

    member = {"example_attest": example._union_member()}
    part = AbiPart(
        abi="acme-1",
        vendor="acme",
        source="test",
        released=False,
        union_members=member,
        decoders=(dec,),
        frame=KVM_RUN_FRAME,
    )
    return Abi("acme-1", (part,))


def test_status_field_at_the_wrong_offset_is_found() -> None:
    """A status field that is not the member it names is reported with both places."""
    from coco_core.abi import StatusField
    from coco_core.testing.kit import status_field_problems

    wrong = attrs_evolve(
        example.ATTEST,
        status_field=StatusField(offset=0x28, fmt="<I", field="kvm_run.example_attest.ret"),
    )
    (problem,) = status_field_problems(_acme_abi(wrong), wrong, bytes(kvm_run_image(44)))
    assert "declared at 40 size 4, layout says (44, 4)" in problem


def test_status_field_that_write_does_not_match_is_found() -> None:
    """A write() that writes more than the status field, for a plain status, is caught."""
    from coco_core.testing.kit import status_field_problems

    def write_more(
        run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None
    ) -> None:
        run[0x2C:0x30] = raw.to_bytes(4, "little")
        run[0x28] = 0xFF  # clobbers len: not what the status field says

    wrong = attrs_evolve(example.ATTEST, write=write_more)
    problems = status_field_problems(_acme_abi(wrong), wrong, bytes(kvm_run_image(44)))
    assert len(problems) == len(CoCoStatus)
    assert "0x0028: 00 != ff" in problems[0]


def test_status_field_outside_the_union_is_refused(make_plugin: Any) -> None:
    """A status field must lie inside the exit union and have a plain integer format."""
    from coco_core.abi import StatusField

    outside = attrs_evolve(
        example.ATTEST, status_field=StatusField(offset=284, fmt="<Q", field="kvm_run.x.ret")
    )

    def register(r: Registrar) -> None:
        r.add_vendor("acme", "Acme TEE")
        r.add_abi(
            AbiPart(
                abi="acme-1",
                vendor="acme",
                source="test",
                released=False,
                decoders=(outside,),
                frame=KVM_RUN_FRAME,
            )
        )

    with pytest.raises(RegistrationError, match="outside the exit union"):
        Registry.from_plugins([make_plugin("acme", register)])
    with pytest.raises(ValueError, match="is not one of"):
        StatusField(offset=48, fmt="<q", field="kvm_run.x.ret")


def test_handler_registered_after_dispatch_was_taken(d: Dispatcher) -> None:
    """A VMM that kept d.dispatch before calling on() still reaches the new handler."""
    dispatch = d.dispatch
    buf = attest_run()
    assert dispatch(buf) is CoCoStatus.UNSUPPORTED  # the decoder's default, no handler yet
    d.on(QuoteRequest, lambda r, c: CoCoStatus.RETRY)
    buf = attest_run()
    assert dispatch(buf) is CoCoStatus.RETRY
    assert buf[RET] == (1).to_bytes(4, "little")


def test_tracer_set_after_construction_sees_exits(d: Dispatcher) -> None:
    """Setting the tracer later makes the next exits traced; None stops it."""
    seen: list[CoCoExit] = []
    d.on(QuoteRequest, lambda r, c: CoCoStatus.OK)
    d.tracer = seen.append
    d.dispatch(attest_run())
    d.tracer = None
    d.dispatch(attest_run())
    assert [ev.name for ev in seen] == ["KVM_EXIT_EXAMPLE_ATTEST"]
