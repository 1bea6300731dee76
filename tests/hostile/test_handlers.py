# SPDX-License-Identifier: Apache-2.0
"""A handler, tracer or plugin write that misbehaves never escapes dispatch()."""

from __future__ import annotations

import logging
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coco_core.abi import ExitDecoder
from coco_core.dispatch import Dispatcher
from coco_core.exits import CoCoExit
from coco_core.generic.uapi import KVM_RUN_SIZE
from coco_core.registry import Registry
from coco_core.requests import (
    CertificateRequest,
    MsrAccess,
    NeutralRequest,
    QuoteRequest,
    TdvmcallInfoQuery,
)
from coco_core.status import CoCoStatus, Outcome
from coco_snp import plugin as snp
from coco_tdx import plugin as tdx

REG = Registry.from_plugins([snp, tdx])


def _run(reason: int, union: bytes) -> bytearray:
    run = bytearray(KVM_RUN_SIZE)
    run[8:12] = struct.pack("<I", reason)
    run[32 : 32 + len(union)] = union
    return run


def _req_certs() -> bytearray:  # KVM_EXIT_SNP_REQ_CERTS: gpa 0x5000, npages 2, ret 0
    return _run(43, struct.pack("<QQQ", 0x5000, 2, 0))


def _rdmsr() -> bytearray:  # KVM_EXIT_X86_RDMSR, msr.index 0x10
    return _run(29, struct.pack("<B7xIIQ", 0, 1, 0x10, 0))


def _tdvmcall_info() -> bytearray:  # KVM_EXIT_TDX nr GetTdVmCallInfo, ret SUCCESS, leaf 1
    return _run(40, struct.pack("<QQQQ", 0, 0x10000, 0, 1))


# The exact cases: what the handler returns, the exit, where the generic error lands.
CASES: list[tuple[str, object, type[NeutralRequest], Any, tuple[int, str, int]]] = [
    ("Outcome('ok')", Outcome("ok"), CertificateRequest, _req_certs, (48, "<Q", 5)),  # type: ignore[arg-type]
    ("Outcome(None)", Outcome(None), CertificateRequest, _req_certs, (48, "<Q", 5)),  # type: ignore[arg-type]
    (
        "vendor_code='x'",
        Outcome(CoCoStatus.ERROR, vendor_code="x"),  # type: ignore[arg-type]
        CertificateRequest,
        _req_certs,
        (48, "<Q", 5),
    ),
    (
        "vendor_code=1.5",
        Outcome(CoCoStatus.ERROR, vendor_code=1.5),  # type: ignore[arg-type]
        CertificateRequest,
        _req_certs,
        (48, "<Q", 5),
    ),
    ("MSR value=1.5", Outcome(CoCoStatus.OK, value=1.5), MsrAccess, _rdmsr, (32, "<B", 1)),  # type: ignore[arg-type]
    (
        "GetTdVmCallInfo value='x'",
        Outcome(CoCoStatus.OK, value="x"),  # type: ignore[arg-type]
        TdvmcallInfoQuery,
        _tdvmcall_info,
        (48, "<Q", 0x8000000000000000),  # TDVMCALL_STATUS_INVALID_OPERAND: tdx.tdvmcall ERROR
    ),
]


@pytest.mark.parametrize(("label", "result", "request_type", "image", "where"), CASES)
def test_malformed_result_is_the_generic_error_and_logged(
    label: str,
    result: object,
    request_type: type[NeutralRequest],
    image: Any,
    where: tuple[int, str, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each malformed answer of the issue completes with the vendor's generic error, logged."""
    vendor = "tdx" if request_type is TdvmcallInfoQuery else "snp"
    d = Dispatcher(REG, vendor)
    d.on(request_type, lambda r, c: result)
    run = image()
    with caplog.at_level(logging.ERROR, logger="coco_core.completion"):
        assert d.dispatch(run) is CoCoStatus.ERROR
    offset, fmt, raw = where
    assert struct.unpack_from(fmt, run, offset)[0] == raw
    assert f"the {request_type.__name__} handler returned" in caplog.text
    assert repr(getattr(result, "status", None)) in caplog.text or "not an int" in caplog.text


_ANY = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=4),
    st.builds(
        Outcome,
        status=st.one_of(st.sampled_from(CoCoStatus), st.text(max_size=3), st.none()),
        size_needed=st.one_of(st.none(), st.integers(-3, 3), st.floats(), st.text(max_size=2)),
        vendor_code=st.one_of(st.none(), st.integers(-1, 2**64), st.floats()),
        value=st.one_of(st.none(), st.integers(-(2**70), 2**70), st.floats()),
        after_kernel_completion=st.one_of(st.just(()), st.just((1,)), st.just([print])),
    ),
)


def test_any_handler_result_completes_with_an_answer(fuzz: Any) -> None:
    """Whatever a handler returns, dispatch() returns a status or Outcome and never raises."""

    @given(_ANY)
    def prop(result: object) -> None:
        for vendor, request_type, image in (
            ("snp", CertificateRequest, _req_certs),
            ("snp", MsrAccess, _rdmsr),
            ("tdx", TdvmcallInfoQuery, _tdvmcall_info),
        ):
            d = Dispatcher(REG, vendor)
            d.on(request_type, lambda r, c: result)
            done = d.dispatch(image())
            assert type(done) is CoCoStatus or isinstance(done, Outcome)

    fuzz.run(prop)


def test_raising_tracer_leaves_the_exit_completed(caplog: pytest.LogCaptureFixture) -> None:
    """A tracer that raises is logged; the completion it saw stays written and dispatch returns."""

    def tracer(ev: CoCoExit) -> None:
        raise RuntimeError("tracer bug")

    d = Dispatcher(REG, "snp", tracer=tracer)
    d.on(CertificateRequest, lambda r, c: CoCoStatus.RETRY)
    run = _req_certs()
    assert d.dispatch(run) is CoCoStatus.RETRY
    assert struct.unpack_from("<Q", run, 48)[0] == 11  # EAGAIN
    assert "tracer failed" in caplog.text


def test_plugin_write_that_raises_on_a_plain_status_is_the_generic_error(
    make_plugin: Any,
) -> None:
    """A plugin write() raising for a plain status (no status field) completes with ERROR."""
    from coco_core.generic.kvmerrno import MAP_GPA_RANGE_ERRNO
    from coco_core.registry import Registrar

    calls: list[int] = []

    def write(run: memoryview, request: NeutralRequest, raw: int, outcome: Outcome | None) -> None:
        calls.append(raw)
        if raw == 0:
            raise RuntimeError("plugin bug")
        run[32] = raw

    dec = ExitDecoder(
        name="KVM_EXIT_FAKE",
        reason=44,
        discriminator=None,
        vendor="fake",
        request_type=QuoteRequest,
        decode=lambda run: QuoteRequest(0, 0),
        write=write,
        error_space=MAP_GPA_RANGE_ERRNO,
    )

    def register(r: Registrar) -> None:
        from coco_core.abi import AbiPart
        from coco_core.generic.uapi import KVM_RUN_FRAME

        r.add_vendor("fake", "fake")
        r.add_abi(
            AbiPart(
                abi="fake-1",
                vendor="fake",
                source="test",
                released=False,
                exits={"KVM_EXIT_FAKE": 44},
                decoders=(dec,),
                frame=KVM_RUN_FRAME,
            )
        )

    d = Dispatcher(Registry.from_plugins([make_plugin("fake", register)]), "fake", "fake-1")
    d.on(QuoteRequest, lambda r, c: CoCoStatus.OK)
    run = _run(44, b"")
    assert d.dispatch(run) is CoCoStatus.ERROR
    assert calls == [0, MAP_GPA_RANGE_ERRNO.encode(CoCoStatus.ERROR)]
    assert run[32] == MAP_GPA_RANGE_ERRNO.encode(CoCoStatus.ERROR)
