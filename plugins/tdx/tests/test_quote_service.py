# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_tdx.service: GetQuote through a development QGS, event notify, GetTdVmCallInfo."""

from __future__ import annotations

import concurrent.futures
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import coco_tdx.plugin
from coco_core.dispatch import Dispatcher
from coco_core.exits import CompletionError
from coco_core.kvm.vm import GuestMemory
from coco_core.model.base import GuestCpu
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.requests import EventNotifySetup, QuoteRequest, TdvmcallInfoQuery
from coco_core.status import CoCoStatus, Outcome
from coco_tdx.complete import TdvmcallInfo
from coco_tdx.ghci import GetQuoteStatus, TdvmcallStatus
from coco_tdx.qgs.client import QgsClient, UnixAddress
from coco_tdx.qgs.dev import DevQgsServer, load_quotes
from coco_tdx.service import (
    EventNotifyService,
    QuoteCompletion,
    QuoteService,
    TdvmcallInfoService,
)

TESTDATA = Path(__file__).resolve().parents[3] / "testdata" / "tdx"
QUOTES = TESTDATA / "quotes"
TDREPORT = (TESTDATA / "tdreport" / "tdreport_tdx10_intel.dat").read_bytes()
SHARED = 1 << 47
BUF = 0x4000  # the guest's shared buffer
WAIT = 10.0  # upper bound for any completion in these tests


class Guest:
    """64 KiB of guest RAM with a GetQuote buffer at BUF."""

    def __init__(self, size: int = 0x2000, version: int = 1, in_len: int = len(TDREPORT)) -> None:
        self.ram = bytearray(64 * 1024)
        self.memory = GuestMemory.from_buffer(0, self.ram)
        struct.pack_into("<QQII", self.ram, BUF, version, 0, in_len, 0)
        self.ram[BUF + 24 : BUF + 24 + len(TDREPORT)] = TDREPORT
        self.size = size

    def header(self) -> tuple[int, int, int, int]:
        v, s, i, o = struct.unpack_from("<QQII", self.ram, BUF)
        return v, s, i, o


class Recorder:
    """Collects completions and injections; wait() blocks at most WAIT seconds."""

    def __init__(self) -> None:
        self.done: list[QuoteCompletion] = []
        self.injected: list[tuple[int, int]] = []
        self.event = threading.Event()

    def on_complete(self, c: QuoteCompletion) -> None:
        self.done.append(c)
        self.event.set()

    def inject(self, vector: int, apic: int) -> None:
        self.injected.append((vector, apic))

    def wait(self) -> QuoteCompletion:
        assert self.event.wait(WAIT), "no completion in time"
        self.event.clear()
        return self.done[-1]


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    """A short unix socket path inside the test's tmp dir."""
    return tmp_path / "qgs.sock"


def _service(guest: Guest, rec: Recorder, client: Any, **kw: Any) -> QuoteService:
    return QuoteService(
        guest.memory,
        client,
        inject=rec.inject,
        on_complete=rec.on_complete,
        **kw,
    )


@pytest.fixture
def registry() -> Registry:
    """The core plus the TDX plugin."""
    return Registry.from_plugins([coco_tdx.plugin])


@pytest.fixture
def rec() -> Recorder:
    """A fresh recorder."""
    return Recorder()


def test_round_trip_through_dev_qgs(sock: Path, registry: Registry, rec: Recorder) -> None:
    """GetQuote through the model and a unix-socket QGS puts a real quote in with SUCCESS."""
    guest = Guest()
    expected = load_quotes(QUOTES)[0][1]
    with DevQgsServer(sock, QUOTES).start():
        svc = _service(guest, rec, QgsClient(UnixAddress(str(sock)), read_timeout=5.0))
        d = Dispatcher(registry, "tdx")
        svc.register(d)
        model = KernelModel(registry, "tdx", guest.memory)
        cpu = GuestCpu(regs={"r11": 0x10004, "r12": 0xF3}, apic_id=2)
        assert model.call("tdx.setup_event_notify", cpu, d, cpu).values["r10"] == 0
        cpu.regs.update(r11=0x10002, r12=SHARED | BUF, r13=guest.size)
        view = model.call("tdx.get_quote", cpu, d, cpu)
        assert view.values["r10"] == TdvmcallStatus.SUCCESS
        done = rec.wait()
        svc.shutdown()
    version, status, in_len, out_len = guest.header()
    assert (version, status, in_len, out_len) == (1, GetQuoteStatus.SUCCESS, 1024, len(expected))
    assert bytes(guest.ram[BUF + 24 : BUF + 24 + out_len]) == expected
    assert done.status is CoCoStatus.OK
    assert rec.injected == [(0xF3, 2)]
    assert svc.in_flight == 0


def test_status_is_in_flight_while_qgs_works(sock: Path, rec: Recorder) -> None:
    """Right after acceptance the buffer says IN_FLIGHT and the vCPU thread has returned."""
    guest = Guest()
    with DevQgsServer(sock, QUOTES, mode="delay", delay=0.5).start():
        svc = _service(guest, rec, QgsClient(UnixAddress(str(sock)), read_timeout=5.0))
        assert svc.handle(QuoteRequest(BUF, guest.size), None) == Outcome(
            CoCoStatus.OK, detail="ticket 0 in flight"
        )
        assert guest.header()[1] == GetQuoteStatus.IN_FLIGHT
        assert svc.in_flight == 1
        assert rec.wait().status is CoCoStatus.OK
        svc.shutdown()
    assert guest.header()[1] == GetQuoteStatus.SUCCESS


def test_timeout_gives_error(sock: Path, rec: Recorder) -> None:
    """A QGS slower than the service timeout ends in GET_QUOTE_ERROR with nothing in flight."""
    guest = Guest()
    with DevQgsServer(sock, QUOTES, mode="delay", delay=1.5).start():
        client = QgsClient(UnixAddress(str(sock)), read_timeout=5.0)
        svc = _service(guest, rec, client, timeout=0.2)
        svc.handle(QuoteRequest(BUF, guest.size), None)
        done = rec.wait()
        assert svc.in_flight == 0
        svc.shutdown()  # waits for the worker, whose late quote is dropped
    assert done.status is CoCoStatus.ERROR
    assert "no answer" in done.detail
    assert guest.header()[1:] == (GetQuoteStatus.ERROR, 1024, 0)
    assert len(rec.done) == 1


def test_client_timeout_gives_error(sock: Path, rec: Recorder) -> None:
    """A QgsTimeout from the client is ERROR as well."""
    guest = Guest()
    with DevQgsServer(sock, QUOTES, mode="delay", delay=1.0).start():
        svc = _service(guest, rec, QgsClient(UnixAddress(str(sock)), read_timeout=0.2))
        svc.handle(QuoteRequest(BUF, guest.size), None)
        done = rec.wait()
        svc.shutdown()
    assert done.status is CoCoStatus.ERROR
    assert "timeout" in done.detail
    assert guest.header()[1] == GetQuoteStatus.ERROR


def test_refused_connection_gives_service_unavailable(sock: Path, rec: Recorder) -> None:
    """No QGS listening ends in GET_QUOTE_SERVICE_UNAVAILABLE."""
    guest = Guest()
    svc = _service(guest, rec, QgsClient(UnixAddress(str(sock)), connect_timeout=1.0))
    assert svc.handle(QuoteRequest(BUF, guest.size), None).status is CoCoStatus.OK  # type: ignore[union-attr]
    done = rec.wait()
    svc.shutdown()
    assert done.status is CoCoStatus.SERVICE_UNAVAILABLE
    assert guest.header()[1] == GetQuoteStatus.SERVICE_UNAVAILABLE
    assert svc.in_flight == 0


def test_malformed_frame_gives_error(sock: Path, rec: Recorder) -> None:
    """A malformed QGS response ends in GET_QUOTE_ERROR with out_len 0."""
    guest = Guest()
    with DevQgsServer(sock, QUOTES, mode="malformed", malformed="type").start():
        svc = _service(guest, rec, QgsClient(UnixAddress(str(sock)), read_timeout=5.0))
        svc.handle(QuoteRequest(BUF, guest.size), None)
        done = rec.wait()
        svc.shutdown()
    assert done.status is CoCoStatus.ERROR
    assert "protocol" in done.detail
    assert guest.header()[1:] == (GetQuoteStatus.ERROR, 1024, 0)


def test_qgs_error_code_is_kept(sock: Path, rec: Recorder) -> None:
    """A QGS error code gives ERROR in the buffer and is kept in the completion record."""
    guest = Guest()
    with DevQgsServer(sock, QUOTES, mode="error", error_code=0x12003).start():
        svc = _service(guest, rec, QgsClient(UnixAddress(str(sock)), read_timeout=5.0))
        svc.handle(QuoteRequest(BUF, guest.size), None)
        done = rec.wait()
        svc.shutdown()
    assert (done.status, done.qgs_code) == (CoCoStatus.ERROR, 0x12003)
    assert "QGS_MSG_ERROR_INVALID_PARAMETER" in done.detail
    assert guest.header()[1] == GetQuoteStatus.ERROR


def test_oversize_quote_gives_error(sock: Path, rec: Recorder) -> None:
    """A quote larger than size - 24 is not written; the buffer says ERROR."""
    guest = Guest(size=0x1000)  # 4072 bytes of room; the quotes are ~5 KB
    with DevQgsServer(sock, QUOTES).start():
        svc = _service(guest, rec, QgsClient(UnixAddress(str(sock)), read_timeout=5.0))
        svc.handle(QuoteRequest(BUF, guest.size), None)
        done = rec.wait()
        svc.shutdown()
    assert done.status is CoCoStatus.ERROR
    assert "quote of" in done.detail
    assert guest.header()[1:] == (GetQuoteStatus.ERROR, 1024, 0)
    assert bytes(guest.ram[BUF + 24 : BUF + 24 + 1024]) == TDREPORT  # report untouched


def test_too_many_in_flight_gives_retry(sock: Path, rec: Recorder) -> None:
    """Beyond max_in_flight the guest gets RETRY and its buffer is not touched."""
    guest = Guest()
    other = BUF + 0x2000
    guest.ram[other : other + 0x2000] = guest.ram[BUF : BUF + 0x2000]
    with DevQgsServer(sock, QUOTES, mode="delay", delay=0.5).start():
        client = QgsClient(UnixAddress(str(sock)), read_timeout=5.0)
        svc = _service(guest, rec, client, max_in_flight=1)
        assert svc.handle(QuoteRequest(BUF, 0x2000), None).status is CoCoStatus.OK  # type: ignore[union-attr]
        second = svc.handle(QuoteRequest(other, 0x2000), None)
        assert isinstance(second, Outcome)
        assert second.status is CoCoStatus.RETRY
        assert struct.unpack_from("<Q", guest.ram, other + 8)[0] == 0
        rec.wait()
        svc.shutdown()
    assert svc.in_flight == 0


def test_no_qgs_configured(rec: Recorder) -> None:
    """Without a QGS the buffer says SERVICE_UNAVAILABLE and R10 is SUCCESS, as in QEMU."""
    guest = Guest()
    svc = _service(guest, rec, None)
    assert svc.handle(QuoteRequest(BUF, guest.size), None).status is CoCoStatus.OK  # type: ignore[union-attr]
    assert guest.header()[1] == GetQuoteStatus.SERVICE_UNAVAILABLE
    svc.shutdown()


@pytest.mark.parametrize(
    ("gpa", "size", "vendor_code"),
    [
        (BUF, 0, None),
        (BUF + 8, 0x2000, TdvmcallStatus.ALIGN_ERROR),
        (BUF, 0x2008, TdvmcallStatus.ALIGN_ERROR),
        (0xF000, 0x2000, None),  # runs past the end of guest RAM
        (BUF, 0x21000, None),  # above 128 KiB
    ],
)
def test_request_validation(rec: Recorder, gpa: int, size: int, vendor_code: int | None) -> None:
    """Bad size, alignment or range is INVALID (ALIGN_ERROR where QEMU uses it); nothing written."""
    guest = Guest()
    before = bytes(guest.ram)
    svc = _service(guest, rec, lambda: pytest.fail("no QGS call expected"))
    out = svc.handle(QuoteRequest(gpa, size), None)
    assert isinstance(out, Outcome)
    assert out.status is CoCoStatus.INVALID
    assert out.vendor_code == vendor_code
    assert bytes(guest.ram) == before
    svc.shutdown()


@pytest.mark.parametrize(("version", "in_len"), [(2, 1024), (0, 1024), (1, 0x2000 - 23)])
def test_header_validation(rec: Recorder, version: int, in_len: int) -> None:
    """A header with version != 1 or in_len > size - 24 is INVALID and nothing is written."""
    guest = Guest(version=version, in_len=in_len)
    before = bytes(guest.ram)
    svc = _service(guest, rec, lambda: pytest.fail("no QGS call expected"))
    out = svc.handle(QuoteRequest(BUF, 0x2000), None)
    assert isinstance(out, Outcome)
    assert out.status is CoCoStatus.INVALID
    assert bytes(guest.ram) == before
    svc.shutdown()


def test_retry_after_acceptance_is_refused(rec: Recorder) -> None:
    """The completion API raises CompletionError for RETRY and for a ticket not in flight."""
    guest = Guest()
    gate = threading.Event()

    class Slow:
        def get_quote(self, report: bytes) -> bytes:
            gate.wait(WAIT)
            return b"q" * 16

    svc = _service(guest, rec, Slow())
    svc.handle(QuoteRequest(BUF, guest.size), None)
    with pytest.raises(CompletionError, match="RETRY"):
        svc.complete(0, CoCoStatus.RETRY)
    assert svc.in_flight == 1
    gate.set()
    assert rec.wait().out_len == 16
    with pytest.raises(CompletionError, match="not in flight"):
        svc.complete(0, CoCoStatus.OK, b"x")
    svc.shutdown()


def test_client_bug_ends_in_error(rec: Recorder) -> None:
    """A client raising an unexpected exception completes with ERROR, nothing left in flight."""
    guest = Guest()

    class Broken:
        def get_quote(self, report: bytes) -> bytes:
            raise ZeroDivisionError

    svc = _service(guest, rec, Broken())
    svc.handle(QuoteRequest(BUF, guest.size), None)
    assert rec.wait().status is CoCoStatus.ERROR
    assert svc.in_flight == 0
    svc.shutdown()


def test_shutdown_refuses_new_work(rec: Recorder) -> None:
    """After shutdown a request gets SERVICE_UNAVAILABLE in its buffer."""
    guest = Guest()
    svc = _service(guest, rec, lambda: pytest.fail("no QGS call expected"))
    svc.shutdown()
    assert svc.handle(QuoteRequest(BUF, guest.size), None).status is CoCoStatus.OK  # type: ignore[union-attr]
    assert guest.header()[1] == GetQuoteStatus.SERVICE_UNAVAILABLE


@pytest.mark.parametrize(("vector", "ok"), [(31, False), (32, True), (255, True), (256, False)])
def test_event_notify_vector_range(vector: int, ok: bool) -> None:
    """Vectors 32..255 are accepted and remembered per APIC ID; others are INVALID."""
    ens = EventNotifyService()
    out = ens.handle(EventNotifySetup(vector), GuestCpu(apic_id=5))
    if ok:
        assert out is CoCoStatus.OK
        assert ens.target(5) == (vector, 5)
    else:
        assert isinstance(out, Outcome)
        assert out.status is CoCoStatus.INVALID
        assert ens.target(5) is None


def test_event_notify_falls_back_to_latest() -> None:
    """A vCPU without its own vector is notified like QEMU does: the TD's latest registration."""
    ens = EventNotifyService()
    ens.handle(EventNotifySetup(0x40), 1)
    assert ens.target(7) == (0x40, 1)


def test_tdvmcall_info_reports_handled_calls(registry: Registry) -> None:
    """Leaf 1 reports BIT(1) only once the VMM handles SetupEventNotifyInterrupt."""
    d = Dispatcher(registry, "tdx")
    info = TdvmcallInfoService(d)
    info.register()
    assert info.handle(TdvmcallInfoQuery(1), None) == Outcome(CoCoStatus.OK, value=0)
    EventNotifyService().register(d)
    out = info.handle(TdvmcallInfoQuery(1), None)
    assert isinstance(out, Outcome)
    assert TdvmcallInfo.from_value(out.value or 0).r11 == 2
    bad = info.handle(TdvmcallInfoQuery(2), None)
    assert isinstance(bad, Outcome)
    assert bad.status is CoCoStatus.INVALID


def _buffers(guest: Guest, count: int) -> list[int]:
    """``count`` more GetQuote buffers of 0x2000 bytes after BUF, each a copy of BUF's."""
    out = []
    for i in range(count):
        at = BUF + 0x2000 * (i + 1)
        guest.ram[at : at + 0x2000] = guest.ram[BUF : BUF + 0x2000]
        out.append(at)
    return out


def _until(cond: Any, limit: float = WAIT) -> bool:
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_wedged_qgs_connection_ends_with_the_request(sock: Path, rec: Recorder) -> None:
    """A client allowed 30 s to read is cut at the service's deadline: it ends with the request."""
    guest = Guest()
    with DevQgsServer(sock, QUOTES, mode="wedged").start() as srv:
        client = QgsClient(UnixAddress(str(sock)), read_timeout=30.0)
        svc = _service(guest, rec, client, timeout=0.3, max_in_flight=4)
        assert svc.handle(QuoteRequest(BUF, guest.size), None).status is CoCoStatus.OK  # type: ignore[union-attr]
        assert rec.wait().status is CoCoStatus.ERROR
        assert _until(lambda: srv.open_connections == 0), "the client still holds the QGS"
        assert _until(lambda: svc.busy == 0)
        svc.shutdown()
    assert guest.header()[1] == GetQuoteStatus.ERROR


def test_wedged_qgs_storm_stays_within_max_in_flight(sock: Path, rec: Recorder) -> None:
    """Against a QGS that never answers, QGS work running or queued never exceeds max_in_flight."""
    guest = Guest(size=0x2000)
    bufs = [BUF, *_buffers(guest, 4)]
    accepted = retried = 0
    with DevQgsServer(sock, QUOTES, mode="wedged", max_connections=64).start() as srv:
        client = QgsClient(UnixAddress(str(sock)), read_timeout=1.2)
        svc = _service(guest, rec, client, timeout=0.3, max_in_flight=4)
        for i in range(200):
            out = svc.handle(QuoteRequest(bufs[i % len(bufs)], 0x2000), None)
            assert isinstance(out, Outcome)
            accepted += out.status is CoCoStatus.OK
            retried += out.status is CoCoStatus.RETRY
            assert svc.busy <= 4
            assert srv.open_connections <= 4
            time.sleep(0.005)
        svc.shutdown()
        assert _until(lambda: srv.open_connections == 0)
    assert accepted + retried == 200
    assert accepted >= 1
    assert svc.in_flight == 0
    assert svc.busy == 0
    assert all(c.status is CoCoStatus.ERROR for c in rec.done)
    assert len(rec.done) == accepted


def test_request_answered_while_queued_never_reaches_the_qgs(sock: Path, rec: Recorder) -> None:
    """Work still queued when its buffer says GET_QUOTE_ERROR is dropped: no QGS connection."""
    guest = Guest()
    others = _buffers(guest, 2)
    gate = threading.Event()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    pool.submit(gate.wait, WAIT)  # the only worker is busy elsewhere
    with DevQgsServer(sock, QUOTES, mode="wedged").start() as srv:
        client = QgsClient(UnixAddress(str(sock)), read_timeout=0.5)
        svc = _service(guest, rec, client, timeout=0.2, executor=pool)
        for gpa in (BUF, *others):
            svc.handle(QuoteRequest(gpa, 0x2000), None)
        assert _until(lambda: len(rec.done) == 3)
        gate.set()
        pool.shutdown(wait=True)
        assert srv.connections == 0
        svc.shutdown()
    assert {c.status for c in rec.done} == {CoCoStatus.ERROR}
    assert svc.busy == 0


@pytest.mark.parametrize("answer", [None, "quote", 5, [b"q"], b"q" * 16])
def test_client_answer_that_is_not_bytes_ends_in_error(rec: Recorder, answer: object) -> None:
    """A client returning anything but bytes ends in GET_QUOTE_ERROR, never IN_FLIGHT forever."""
    guest = Guest()

    class Odd:
        def get_quote(self, report: bytes) -> object:
            return answer

    svc = _service(guest, rec, Odd())
    svc.handle(QuoteRequest(BUF, guest.size), None)
    done = rec.wait()
    svc.shutdown()
    ok = isinstance(answer, bytes)
    assert done.status is (CoCoStatus.OK if ok else CoCoStatus.ERROR)
    assert guest.header()[1] == (GetQuoteStatus.SUCCESS if ok else GetQuoteStatus.ERROR)
    assert svc.in_flight == 0


@pytest.mark.parametrize("over", [0, 1, 2, 23, 24])
def test_quote_larger_than_size_minus_24_is_an_error(rec: Recorder, over: int) -> None:
    """A quote of size - 24 fits; 1 to 24 bytes more is GET_QUOTE_ERROR and nothing is copied."""
    guest = Guest(size=0x2000)
    room = 0x2000 - 24
    quote = b"Q" * (room + over)

    class Exact:
        def get_quote(self, report: bytes) -> bytes:
            return quote

    svc = _service(guest, rec, Exact())
    svc.handle(QuoteRequest(BUF, 0x2000), None)
    done = rec.wait()
    svc.shutdown()
    if over == 0:
        assert (done.status, guest.header()[1:]) == (CoCoStatus.OK, (0, 1024, room))
        assert bytes(guest.ram[BUF + 24 : BUF + 0x2000]) == quote
    else:
        assert done.status is CoCoStatus.ERROR
        assert guest.header()[1:] == (GetQuoteStatus.ERROR, 1024, 0)
        assert bytes(guest.ram[BUF + 24 : BUF + 24 + 1024]) == TDREPORT
    assert guest.ram[BUF + 0x2000 :] == bytearray(len(guest.ram) - BUF - 0x2000)


@pytest.mark.parametrize(("size", "accepted"), [(128 * 1024, True), (128 * 1024 + 4096, False)])
def test_a_128_kib_buffer_is_accepted_one_page_more_is_not(
    rec: Recorder, size: int, accepted: bool
) -> None:
    """QEMU's TDX_GET_QUOTE_MAX_BUF_LEN: exactly 128 KiB is accepted, 132 KiB is INVALID."""
    ram = bytearray(256 * 1024)
    struct.pack_into("<QQII", ram, 0, 1, 0, len(TDREPORT), 0)
    ram[24 : 24 + len(TDREPORT)] = TDREPORT

    class Tiny:
        def get_quote(self, report: bytes) -> bytes:
            return b"q" * 16

    svc = QuoteService(GuestMemory.from_buffer(0, ram), Tiny(), on_complete=rec.on_complete)
    out = svc.handle(QuoteRequest(0, size), None)
    assert isinstance(out, Outcome)
    assert out.status is (CoCoStatus.OK if accepted else CoCoStatus.INVALID)
    if accepted:
        assert rec.wait().status is CoCoStatus.OK
    svc.shutdown()
