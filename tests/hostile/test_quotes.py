# SPDX-License-Identifier: Apache-2.0
"""GetQuote under a hostile guest, a hostile client and a hostile QGS.

Oracles on top of the per-exit ones (:class:`Watched`): every accepted request ends in a
final status (never ``IN_FLIGHT``), the asynchronous writes stay inside the buffer the guest
named, nothing is left in flight or busy, and descriptors and threads return to baseline.
"""

from __future__ import annotations

import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from coco_core.dispatch import Dispatcher
from coco_core.kvm.vm import GuestMemory
from coco_core.model.base import GuestCpu
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.requests import QuoteRequest
from coco_tdx import plugin as tdx
from coco_tdx.ghci import GetQuoteStatus
from coco_tdx.qgs.client import QgsClient, UnixAddress
from coco_tdx.qgs.dev import DevQgsMode, DevQgsServer, MalformedKind
from coco_tdx.service import QuoteService

REG = Registry.from_plugins([tdx])
RAM = 0x40000
PAGE = 4096
SHARED = 1 << 47
TESTDATA = Path(__file__).resolve().parents[2] / "testdata" / "tdx"
TDREPORT = (TESTDATA / "tdreport" / "tdreport_tdx10_intel.dat").read_bytes()
FINAL = {int(s) for s in GetQuoteStatus} - {int(GetQuoteStatus.IN_FLIGHT)}


def _quote_range(run: bytes) -> tuple[int, int] | None:
    if int.from_bytes(run[8:12], "little") != 40 or run[40:48] != (0x10002).to_bytes(8, "little"):
        return None
    gpa, size = struct.unpack_from("<QQ", run, 56)
    return gpa, size


class _Client:
    """A hostile client: answers bytes of some size, a non-bytes value, raises, or stalls."""

    def __init__(self, kind: str, size: int) -> None:
        self.kind, self.size = kind, size

    def get_quote(self, report: bytes) -> object:
        if self.kind == "raise":
            raise OSError("client bug")
        if self.kind == "none":
            return None
        if self.kind == "str":
            return "quote"
        if self.kind == "stall":
            time.sleep(0.05)
        return b"Q" * self.size


def _run_get_quotes(
    watched: Any, client: Any, headers: list[tuple[int, int, int, int, int]], timeout: float
) -> None:
    """GetQuotes for each (gpa offset, size, version, in_len, shared-bit) and the oracles."""
    ram = bytearray(RAM)
    memory = GuestMemory.from_buffer(0, ram)
    model = KernelModel(REG, "tdx", memory)
    d = Dispatcher(REG, "tdx")
    done: list[Any] = []
    svc = QuoteService(memory, client, timeout=timeout, max_in_flight=2, on_complete=done.append)
    svc.register(d)
    accepted: list[int] = []

    def handle(request: Any, context: Any) -> Any:
        out = svc.handle(request, context)
        if out.detail.startswith("ticket "):
            accepted.append(request.gpa)
        return out

    d.on(QuoteRequest, handle)
    named: list[tuple[int, int]] = []
    for gpa, _size, version, in_len, _ in headers:
        if gpa >= 0 and gpa + 24 <= RAM:
            struct.pack_into("<QQII", ram, gpa, version, 0, in_len, 0)
            ram[gpa + 24 : gpa + 24 + 1024] = TDREPORT[: max(0, min(1024, RAM - gpa - 24))]
    original = bytes(ram)

    def named_range(run: bytes) -> tuple[int, int] | None:
        where = _quote_range(run)
        if where is not None:
            named.append(where)
        return where

    w = watched(d, ram, named_range)
    for gpa, size, _, _, shared in headers:
        cpu = GuestCpu(regs={"r11": 0x10002, "r12": gpa | (SHARED if shared else 0), "r13": size})
        model.call("tdx.get_quote", cpu, w)
    svc.shutdown()
    assert svc.in_flight == 0
    assert svc.busy == 0
    for i, (a, b) in enumerate(zip(original, ram, strict=True)):
        if a != b:
            assert any(g <= i < g + s for g, s in named), f"async write outside the buffers: {i:#x}"
    # every accepted request was completed once, with a final status (never IN_FLIGHT)
    assert sorted(c.gpa for c in done) == sorted(accepted)
    assert all(c.raw in FINAL for c in done), [hex(c.raw) for c in done]


HEADER = st.tuples(
    st.sampled_from([0, PAGE, RAM - 2 * PAGE, RAM - PAGE, RAM, 8]),
    st.sampled_from([0, PAGE, 2 * PAGE, 0x2008, 128 * 1024, 128 * 1024 + PAGE, (1 << 64) - 1]),
    st.sampled_from([0, 1, 2]),
    st.sampled_from([0, 1024, PAGE - 24, PAGE - 23, 0xFFFFFFFF]),
    st.booleans(),
)


def test_get_quote_from_a_hostile_guest_and_client(fuzz: Any, watched: Any, baseline: Any) -> None:
    """Any buffer, header and client answer: final status, writes inside, nothing left over."""

    @given(
        st.lists(HEADER, min_size=1, max_size=4),
        st.sampled_from(["ok", "raise", "none", "str", "stall"]),
        st.sampled_from([0, 1, PAGE - 24, PAGE - 23, 2 * PAGE - 24, 2 * PAGE]),
    )
    def prop(headers: list[tuple[int, int, int, int, int]], kind: str, size: int) -> None:
        _run_get_quotes(watched, _Client(kind, size), headers, timeout=0.5)

    fuzz.run(prop, ci_examples=40)


def test_get_quote_against_every_misbehaving_qgs(watched: Any, baseline: Any) -> None:
    """Each development-QGS fault (error, malformed kinds, close, garbage, wedged) ends final."""
    faults: list[dict[str, Any]] = [
        {"mode": m} for m in DevQgsMode if m is not DevQgsMode.MALFORMED
    ]
    faults += [{"mode": DevQgsMode.MALFORMED, "malformed": k} for k in MalformedKind]
    headers = [(PAGE, 2 * PAGE, 1, 1024, 1), (4 * PAGE, 2 * PAGE, 1, 1024, 1)]
    for fault in faults:
        with tempfile.TemporaryDirectory() as tmp:
            sock = Path(tmp) / "qgs.sock"
            with DevQgsServer(sock, TESTDATA / "quotes", delay=0.05, **fault):
                client = QgsClient(UnixAddress(str(sock)), read_timeout=30.0)
                _run_get_quotes(watched, client, headers, timeout=0.3)
