# SPDX-License-Identifier: Apache-2.0
"""The example third-party plugin, through its installed entry point, end to end.

``coco-example`` (tests/example_plugin/) is installed by ``make setup`` like
any third-party distribution; these tests prove that the conformance kit and
entry-point discovery work for a vendor the core has never heard of.
"""

from __future__ import annotations

import coco_example.plugin

from coco_core.dispatch import Dispatcher
from coco_core.model.base import GuestCpu
from coco_core.model.kernel import KernelModel
from coco_core.registry import Registry
from coco_core.requests import QuoteRequest
from coco_core.status import CoCoStatus
from coco_core.testing import Golden, PluginConformance, kvm_run_image


class TestExampleConformance(PluginConformance):
    """The full conformance kit, run against the example plugin."""

    plugin = coco_example.plugin
    entry_point = "example"
    vendor = "example"
    capabilities = frozenset({"get_quote"})
    goldens = Golden.load_dir(__file__, "../example_plugin/golden")


def test_dispatcher_from_entry_points_handles_the_example_exit() -> None:
    """A dispatcher built from the allow-listed entry point decodes and completes exit 44."""
    reg = Registry.from_entry_points(allow={"example"})
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
    buf = kvm_run_image(coco_example.plugin.KVM_EXIT_EXAMPLE_ATTEST, union)
    assert d.dispatch(buf) is CoCoStatus.RETRY
    assert seen == [QuoteRequest(0x4000, 512)]
    assert buf[0x2C:0x30] == bytes.fromhex("01 00 00 00")  # EXAMPLE_RETRY


def test_kernel_model_runs_the_example_call() -> None:
    """The example kernel model exits with 44 and copies ret into RAX on resume."""
    reg = Registry.from_entry_points(allow={"example"})
    d = Dispatcher(reg, "example", "example-1")
    d.on(QuoteRequest, lambda r, c: CoCoStatus.INVALID)
    model = KernelModel(reg, "example", memory=_NoRam(), generation="example-1")
    cpu = GuestCpu(regs={"rcx": 0x5000, "rdx": 64})
    view = model.call("example.attest", cpu, d)
    assert view.values == {"rax": 2}
    assert cpu.regs["rax"] == 2


class _NoRam:
    def read(self, gpa: int, size: int) -> bytes:
        raise IndexError(gpa)

    def write(self, gpa: int, data: bytes) -> None:
        raise IndexError(gpa)

    def contains(self, gpa: int, size: int) -> bool:
        return False
