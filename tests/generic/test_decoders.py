# SPDX-License-Identifier: Apache-2.0
"""Tests for the core's generic exit decoders (IO, MSR, memory fault)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from coco_core.generic.decoders import IO, MEMORY_FAULT, RDMSR, WRMSR
from coco_core.requests import MemoryFault, MsrAccess, PortIo
from coco_core.status import CoCoStatus, Outcome


def _run(reason: int, union: bytes) -> memoryview:
    run = bytearray(2352)
    struct.pack_into("<I", run, 8, reason)
    run[32 : 32 + len(union)] = union
    return memoryview(run)


def test_wrmsr_decodes_index_data_and_direction() -> None:
    """A WRMSR exit to the GHCB MSR decodes with its index, data, reason and write flag."""
    union = bytes.fromhex(
        "00 00000000000000"  # 0x20 msr.error, msr.pad[7]
        "02000000"  # 0x28 msr.reason = KVM_MSR_EXIT_REASON_UNKNOWN
        "300101c0"  # 0x2c msr.index = 0xC0010130 (GHCB MSR)
        "1401000000000000"  # 0x30 msr.data = 0x114
    )
    req = WRMSR.decode(_run(30, union))
    assert req == MsrAccess(0xC0010130, True, 0x114, 2)
    assert RDMSR.decode(_run(29, union)) == MsrAccess(0xC0010130, False, 0x114, 2)


def test_rdmsr_completion_writes_data_only_on_success() -> None:
    """RDMSR OK writes msr.data and error 0; ERROR writes error 1 (#GP) and leaves data."""
    run = _run(29, bytes(24))
    assert RDMSR.write is not None
    assert RDMSR.error_space is not None
    RDMSR.write(run, MsrAccess(1, False, 0, 2), 0, Outcome(CoCoStatus.OK, value=0xABCD))
    assert run[32] == 0
    assert struct.unpack_from("<Q", run, 48)[0] == 0xABCD
    run2 = _run(29, bytes(24))
    RDMSR.write(run2, MsrAccess(1, False, 0, 2), RDMSR.error_space.encode(CoCoStatus.ERROR), None)
    assert run2[32] == 1
    assert struct.unpack_from("<Q", run2, 48)[0] == 0


def test_io_and_memory_fault_decode() -> None:
    """Port I/O and memory-fault exits decode to their neutral requests."""
    io = struct.pack("<BBHIQ", 1, 4, 0x0CCF, 1, 4096)
    assert IO.decode(_run(2, io)) == PortIo(0x0CCF, True, 4, 1, 4096)
    fault = struct.pack("<QQQ", 1 << 3, 0x5000, 0x1000)
    assert MEMORY_FAULT.decode(_run(39, fault)) == MemoryFault(0x5000, 0x1000, True)


def test_fast_request_init_keeps_attrs_semantics() -> None:
    """Requests built by the fast __init__ are frozen attrs values with defaults and equality."""
    import attrs
    import pytest

    from coco_core.requests import MemoryConversion, QuoteRequest, Termination

    m = MemoryConversion(0x1000, 2, True)
    assert m == MemoryConversion(gpa=0x1000, npages=2, to_private=True, page_size=4096)
    assert m != MemoryConversion(0x1000, 2, True, 1 << 21)
    assert hash(QuoteRequest(1, 2)) == hash(QuoteRequest(1, 2))
    assert Termination("r").message == ""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        m.gpa = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        QuoteRequest(1)  # type: ignore[call-arg]
    assert attrs.evolve(m, npages=3).npages == 3


def test_repeated_port_io_decodes_to_the_value_built_before() -> None:
    """The same port I/O exit hands out the value built for it; different fields a new one."""
    out = struct.pack("<BBHIQ", 1, 1, 0x0CCE, 1, 4096)
    first = IO.decode(_run(2, out))
    assert IO.decode(_run(2, out)) is first
    other = IO.decode(_run(2, struct.pack("<BBHIQ", 0, 1, 0x0CCE, 1, 4096)))
    assert other == PortIo(0x0CCE, False, 1, 1, 4096)
    assert other != first


_U8 = st.sampled_from([0, 1, 2, 0xFE, 0xFF]) | st.integers(0, 0xFF)
_U16 = st.sampled_from([0, 1, 0xFFFE, 0xFFFF]) | st.integers(0, 0xFFFF)
_U32 = st.sampled_from([0, 1, 0xFFFF_FFFF]) | st.integers(0, 0xFFFF_FFFF)
_U64 = st.sampled_from([0, 1, 4095, 4096, (1 << 64) - 1]) | st.integers(0, (1 << 64) - 1)


@given(direction=_U8, size=_U8, port=_U16, count=_U32, data_offset=_U64)
def test_port_io_decodes_every_field_as_the_guest_left_it(
    direction: int, size: int, port: int, count: int, data_offset: int
) -> None:
    """Whatever was decoded before, an exit decodes to exactly its own five fields."""
    raw = struct.pack("<BBHIQ", direction, size, port, count, data_offset)
    expected = PortIo(port, direction == 1, size, count, data_offset)  # KVM_EXIT_IO_OUT 1
    assert IO.decode(_run(2, raw)) == expected
    assert IO.decode(_run(2, raw)) == expected


def test_a_guest_cycling_through_ports_cannot_grow_the_decoder() -> None:
    """Every port decodes as it is, and the decoder keeps at most PORT_IO_KEPT values."""
    from coco_core.generic import decoders

    kept = decoders._port_io.cache_info
    for port in range(0, 0x10000, 7):
        req = IO.decode(_run(2, struct.pack("<BBHIQ", 0, 2, port, 1, 4096)))
        assert (req.port, req.out, req.size) == (port, False, 2)
        assert kept().currsize <= decoders.PORT_IO_KEPT
    assert kept().currsize == decoders.PORT_IO_KEPT
