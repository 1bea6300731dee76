# SPDX-License-Identifier: Apache-2.0
"""The example third-party plugin, through its installed entry point, end to end.

``coco-example`` (tests/example_plugin/) is installed by ``make setup`` like
any third-party distribution; these tests prove that the conformance kit and
entry-point discovery work for a vendor the core has never heard of, and for a
TEE that is not x86: the example is a fictitious RISC-V TEE.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import coco_example.plugin as example

from coco_core.dispatch import Dispatcher
from coco_core.model.base import GuestCpu
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.requests import MemoryConversion, NotHandled, QuoteRequest, Unsupported
from coco_core.status import CoCoStatus, Outcome
from coco_core.testing import Golden, PluginConformance, kvm_run_image
from coco_core.testing.oracle import ExampleMemory

EXAMPLE = Path(__file__).resolve().parents[1] / "example_plugin"


class TestExampleConformance(PluginConformance):
    """The full conformance kit, run against the example plugin."""

    plugin = example
    entry_point = "example"
    vendor = "example"
    capabilities = frozenset({"get_quote", "map_gpa", "termination"})
    goldens = Golden.load_dir(EXAMPLE, "golden")
    headers: ClassVar[Mapping[str, Path]] = {"example-1": EXAMPLE / "include"}


def _registry() -> Registry:
    return Registry.from_entry_points(allow={"example"})


def test_dispatcher_from_entry_points_handles_the_example_exit() -> None:
    """A dispatcher built from the allow-listed entry point decodes and completes exit 44."""
    reg = _registry()
    assert [p.name for p in reg.plugins if p.dist is not None] == ["example"]
    assert reg.plugins[-1].dist == "coco-example"
    d = Dispatcher(reg, "example", "example-1")
    seen: list[QuoteRequest] = []

    def quote(request: QuoteRequest, context: object) -> CoCoStatus:
        seen.append(request)
        return CoCoStatus.RETRY

    d.on(QuoteRequest, quote)
    union = bytes.fromhex(
        "00 40 00 00 00 00 00 00"  # 0x20 example_attest.gpa = 0x4000
        "00 02 00 00"  # 0x28 example_attest.len = 512
        "ff ff ff ff"  # 0x2c example_attest.ret
    )
    buf = kvm_run_image(example.KVM_EXIT_EXAMPLE_ATTEST, union)
    assert d.dispatch(buf) is CoCoStatus.RETRY
    assert seen == [QuoteRequest(0x4000, 512)]
    assert buf[0x2C:0x30] == bytes.fromhex("01 00 00 00")  # EXAMPLE_RETRY


def test_kernel_model_runs_the_example_call() -> None:
    """The example kernel model exits with 44 and copies ret into a0 on resume."""
    reg = _registry()
    d = Dispatcher(reg, "example", "example-1")
    d.on(QuoteRequest, lambda r, c: CoCoStatus.INVALID)
    model = KernelModel(reg, "example", memory=ExampleMemory(), generation="example-1")
    cpu = GuestCpu(regs={"a0": 0x5000, "a1": 64})
    view = model.call("example.attest", cpu, d)
    assert view.values == {"a0": 2}
    assert cpu.regs["a0"] == 2


def _sbi_call(eid: int, fid: int, *args: int) -> GuestCpu:
    return GuestCpu(regs={"a7": eid, "a6": fid, **{f"a{i}": a for i, a in enumerate(args)}})


def test_sbi_calls_route_on_extension_and_function() -> None:
    """The SBI exit's compound key routes by both ids; ret[0] and ret[1] reach a0 and a1."""
    reg = _registry()
    d = Dispatcher(reg, "example", "example-1")
    got: list[object] = []
    d.on(MemoryConversion, lambda r, c: got.append(r) or CoCoStatus.OK)
    d.on(
        QuoteRequest,
        lambda r, c: got.append(r) or Outcome(CoCoStatus.BUFFER_TOO_SMALL, size_needed=8192),
    )
    model = KernelModel(reg, "example", ExampleMemory(), generation="example-1")
    ext = example.EXAMPLE_SBI_EXT
    view = model.call("example.sbi_call", _sbi_call(ext, 0, 0x80200000, 16, 1), d)
    assert view.values == {"a0": example.SBI_SUCCESS, "a1": 0}
    view = model.call("example.sbi_call", _sbi_call(ext, 1, 0x80001000, 4096), d)
    assert view.values == {"a0": example.SBI_ERR_INVALID_PARAM, "a1": 8192}
    assert got == [MemoryConversion(0x80200000, 16, True), QuoteRequest(0x80001000, 4096)]
    view = model.call("example.sbi_call", _sbi_call(ext, 9), d)
    assert view.values["a0"] == example.SBI_ERR_NOT_SUPPORTED  # the fallback's default


def test_another_vendors_sbi_extension_comes_back_declined() -> None:
    """An SBI call of another vendor's extension is declined: untouched, back to the VMM."""
    reg = _registry()
    d = Dispatcher(reg, "example", "example-1")
    results: list[object] = []
    model = KernelModel(reg, "example", ExampleMemory(), generation="example-1")
    view = model.call(
        "example.sbi_call", _sbi_call(0x09000001, 0), d, on_exit=lambda n, r: results.append(r)
    )
    (result,) = results
    assert isinstance(result, Unsupported)
    assert (result.why, result.claimed_by) == (NotHandled.DECLINED, "KVM_EXIT_RISCV_SBI/unknown")
    assert result.discriminator == (0x09000001, 0)
    assert view.values["a0"] == example.SBI_ERR_NOT_SUPPORTED  # what KVM pre-filled
