# SPDX-License-Identifier: Apache-2.0
"""coco_core.kernels: the released kernels, declared once, and what plugins derive from them."""

from __future__ import annotations

import struct

import attrs
import pytest

import coco_snp.plugin
import coco_tdx.plugin
from coco_core import kernels
from coco_core.dispatch import Dispatcher
from coco_core.errors import ConfigurationError, KvmRunRejected
from coco_core.generic.uapi import EXIT_REASON, HypercallNr, KvmExitReason
from coco_core.kernels import Kernel
from coco_core.kvm.vm import GuestMemory
from coco_core.model.base import GuestCpu
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.requests import MemoryConversion, QuoteRequest
from coco_core.status import CoCoStatus

#: A hypothetical release with the same CoCo ABI as 7.2: one new row, nothing it adds.
LINUX_73 = Kernel(
    name="linux-7.3",
    date="2026-10",
    header="include/uapi/linux/kvm.h (hypothetical, for this test)",
    last_exit=43,
    changes="no CoCo exit change",
)


#: The shipped registry, built before any test adds a row.
SHIPPED = Registry.from_plugins([coco_snp.plugin, coco_tdx.plugin])


def test_features_accumulate_and_proposals_have_none() -> None:
    """A release has every feature of the releases before it; a proposal has none."""
    assert kernels.has("linux-6.16", kernels.TDX_EXIT)
    assert not kernels.has("linux-6.16", kernels.SNP_REQ_CERTS_EXIT)
    assert kernels.has("linux-7.1", kernels.SNP_REQ_CERTS_EXIT)
    assert not kernels.has("linux-7.1", kernels.MAP_GPA_RANGE_RET_CHECKED)
    assert kernels.has("linux-7.2", kernels.MAP_GPA_RANGE_RET_CHECKED)
    assert kernels.has("linux-7.2", kernels.TDX_EXIT)
    assert not kernels.has("snp-req-certs-v7", kernels.TDX_EXIT)
    assert kernels.features("kvm-exit-coco-v1") == frozenset()


def test_unknown_feature_and_kernel_are_errors() -> None:
    """Asking for a feature or a kernel coco does not know names what it knows."""
    with pytest.raises(ValueError, match="unknown kernel feature 'tdx'"):
        kernels.has("linux-7.2", "tdx")
    with pytest.raises(ValueError, match="unknown feature"):
        attrs.evolve(LINUX_73, adds=frozenset({"KVM_EXIT_PLANES"}))
    with pytest.raises(ConfigurationError, match=r"'linux-9\.9' is not a released kernel"):
        kernels.kernel("linux-9.9")


def test_releases_are_ordered_and_the_default_is_the_newest() -> None:
    """Rows are oldest first; the default ABI is the last row."""
    names = [k.name for k in kernels.released()]
    assert names == sorted(names, key=kernels.order)
    assert [k.date for k in kernels.released()] == sorted(k.date for k in kernels.released())
    assert kernels.DEFAULT_ABI == kernels.default_abi() == names[-1] == "linux-7.2"


def _shape(reg: Registry, abi: str) -> tuple[object, ...]:
    a = reg.abi(abi)
    return (
        a.exits,
        sorted(a.union_members),
        sorted((d.vendor, d.reason, d.discriminator or -1, d.name) for d in a.decoders),
        sorted(s.id for s in a.error_spaces),
        sorted(a.vendors),
    )


@pytest.fixture
def with_73(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The registry after adding the linux-7.3 row, and nothing else."""
    monkeypatch.setattr(kernels, "RELEASES", (*kernels.RELEASES, LINUX_73))
    return Registry.from_plugins([coco_snp.plugin, coco_tdx.plugin])


def test_a_new_release_is_one_row(with_73: Registry) -> None:
    """Adding linux-7.3 gives it the core's, SNP's and TDX's parts, shaped as 7.2's."""
    assert "linux-7.3" not in SHIPPED.abis
    assert "linux-7.3" in with_73.abis
    assert {p.vendor for p in with_73.abi("linux-7.3").parts} == {"kvm", "snp", "tdx"}
    assert _shape(with_73, "linux-7.3") == _shape(with_73, "linux-7.2")
    assert with_73.abi("linux-7.3").released
    assert kernels.default_abi() == "linux-7.3"


def test_linux_72_stays_fully_supported(with_73: Registry) -> None:
    """Linux 7.2 is registered exactly as it was before the new row."""
    assert _shape(with_73, "linux-7.2") == _shape(SHIPPED, "linux-7.2")
    assert list(with_73.abis).index("linux-7.3") > list(with_73.abis).index("linux-7.2")


def test_the_new_release_dispatches_and_models_as_72(with_73: Registry) -> None:
    """A TDX GetQuote dispatches under linux-7.3; its kernel model keeps 7.2's errno rule."""
    d = Dispatcher(with_73, "tdx", "linux-7.3")
    seen: list[QuoteRequest] = []
    d.on(QuoteRequest, lambda r, c: seen.append(r) or CoCoStatus.OK)
    run = bytearray(2352)
    struct.pack_into("<I", run, EXIT_REASON, KvmExitReason.TDX)
    struct.pack_into("<QQQQQ", run, 32, 0, 0x10002, 0, 0x1000, 0x1000)  # flags, nr, ret, gpa, size
    assert d.dispatch(run) is CoCoStatus.OK
    assert seen == [QuoteRequest(0x1000, 0x1000)]

    memory = GuestMemory.from_buffer(0, bytearray(64 * 1024))
    model = KernelModel(with_73, "tdx", memory, "linux-7.3")
    dm = Dispatcher(with_73, "tdx", "linux-7.3")
    dm.on(MemoryConversion, lambda r, c: CoCoStatus.OK)

    def write_eio(name: str, result: object) -> None:
        model.ctx.run[88:96] = (5).to_bytes(8, "little")  # hypercall.ret = EIO: 7.2+ refuse it

    cpu = GuestCpu(regs={"r10": 0, "r11": 0x10001, "r12": 0, "r13": 0x1000})
    with pytest.raises(KvmRunRejected):
        model.call("tdx.map_gpa", cpu, dm, on_exit=write_eio)
    assert HypercallNr.MAP_GPA_RANGE == 12
