# SPDX-License-Identifier: Apache-2.0
"""The conformance checks that run exits: goldens, capabilities, the model oracle, fuzzing.

Every image is decoded, dispatched and completed the way a VMM would, and held to
the plugin's kernel model (:mod:`coco_core.testing.oracle`), to each decoder's
write set (:mod:`coco_core.testing.writes`) and to the dispatcher's promises
(:mod:`coco_core.testing.robust`).
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from coco_core import kernels
from coco_core.abi import ExitDecoder
from coco_core.dispatch import Dispatcher
from coco_core.generic.uapi import EXIT_REASON, EXIT_UNION_OFFSET, EXIT_UNION_SIZE, KVM_RUN_SIZE
from coco_core.model.kernel import KernelModel
from coco_core.requests import (
    NeutralRequest,
    Unsupported,
)
from coco_core.testing.fuzz import boundary_values, run_budgeted
from coco_core.testing.golden import Golden, describe_diff
from coco_core.testing.kit_base import CAPABILITIES, KitBase, _model_run, _recorder
from coco_core.testing.oracle import ExampleMemory, answers
from coco_core.testing.robust import (
    RAISES,
    answer_all,
    base_images,
    boundary_problems,
    image_problems,
)
from coco_core.testing.writes import member_of, scalar_fields

__all__ = ["ExitChecks"]

_UNION = slice(EXIT_UNION_OFFSET, EXIT_UNION_OFFSET + EXIT_UNION_SIZE)


class ExitChecks(KitBase):
    """The checks that decode, dispatch and complete exits.

    .. versionadded:: 0.2
    """

    # -- goldens ---------------------------------------------------------------------

    def _goldens(self) -> tuple[Golden, ...]:
        if not self.goldens:
            pytest.skip("the plugin ships no goldens (set goldens = Golden.load_dir(...))")
        return self.goldens

    def test_goldens_decode(self) -> None:
        """Every golden kvm_run image decodes to its expected neutral request."""
        for g in self._goldens():
            ev = Dispatcher(self.registry, g.vendor, g.abi).decode(g.unpatched())
            assert ev.request == g.request, f"golden {g.name}: decoded {ev.request!r}"

    def test_goldens_complete(self) -> None:
        """Every golden completes to its expected bytes via dispatch() and via complete()."""
        for g in self._goldens():
            d = Dispatcher(self.registry, g.vendor, g.abi)
            result = g.handler_result
            if result is not None:
                answer_all(d, result)
            buf = g.unpatched()
            d.dispatch(buf)
            assert bytes(buf) == g.completed, f"golden {g.name} via dispatch(): " + describe_diff(
                g.completed, bytes(buf)
            )
            if result is None:
                continue
            buf = g.unpatched()
            d.decode(buf).complete(result)
            assert bytes(buf) == g.completed, f"golden {g.name} via complete(): " + describe_diff(
                g.completed, bytes(buf)
            )

    # -- capabilities ----------------------------------------------------------------

    def test_capabilities_are_known(self) -> None:
        """Every declared capability is one the kit knows."""
        unknown = sorted(self.capabilities - set(CAPABILITIES))
        assert not unknown, f"unknown capabilities {unknown}; known: {sorted(CAPABILITIES)}"

    @pytest.mark.parametrize("capability", sorted(CAPABILITIES))
    def test_capability_is_decoded(self, capability: str) -> None:
        """A declared capability's exit reaches the VMM's handler as its neutral request.

        The images are the kernel model's exits for the decoder (a zeroed image
        with only the sub-call set when the model has none); an image the
        decoder declines is no failure, but one image must reach the handler.
        """
        if capability not in self.capabilities:
            pytest.skip(
                f"capability {capability!r} not declared by the plugin (it has no such "
                "exit; nothing to install: declare it in `capabilities` to have it checked)"
            )
        wanted = CAPABILITIES[capability]
        samples = self.samples()
        seen = False
        for abi_name in self.own_abis():
            abi = self.registry.abi(abi_name)
            for dec in self.dispatcher(abi_name).claims():
                if dec.request_type is not wanted:
                    continue
                for where, image in base_images(abi, dec, samples):
                    got: list[NeutralRequest] = []
                    d = self.dispatcher(abi.name)
                    d.on(wanted, _recorder(got))
                    if isinstance(d.dispatch(bytearray(image)), Unsupported):
                        continue  # declined: another image must reach the handler
                    assert len(got) == 1, f"{abi.name} {dec.name} {where}: handler called {got}"
                    assert isinstance(got[0], wanted), f"{abi.name} {dec.name}: {got[0]!r}"
                    seen = True
        assert seen, f"no decoder of {self.vendor!r} yields {wanted.__name__} to a handler"

    # -- the kernel model as the oracle ---------------------------------------------

    def test_kernel_model_accepts_every_completion(self) -> None:
        """Every completion of every example, for every status and Outcome, passes the model."""
        if not any(m.vendor == self.vendor for m in self.registry.models):
            pytest.skip(
                "the plugin registers no kernel model (test_every_decoder_has_a_model fails)"
            )
        problems, _ = _model_run(self.registry, self.vendor, tuple(self.own_abis()))
        assert not problems, "the kernel model refuses completions:\n" + "\n".join(problems)

    def test_every_decoder_has_a_model(self) -> None:
        """Every decoder is reached by a kernel-model example, or declares why not (unmodelled)."""
        _, reached = _model_run(self.registry, self.vendor, tuple(self.own_abis()))
        missing = sorted(
            {
                (part.abi, dec.name)
                for part in self.own_parts()
                for dec in part.decoders
                if (part.abi, dec.name) not in reached and dec.name not in self.unmodelled
            }
        )
        assert not missing, (
            "no kernel-model example raises these exits, so nothing checks their completions: "
            + "; ".join(f"{abi} {name}" for abi, name in missing)
            + ". Add a CallExample to the GuestCall that exits with it (ModelPart), or declare "
            "why on the kit class: unmodelled = {'DECODER': 'why'}"
        )
        stale = sorted(set(self.unmodelled) - {d.name for _, d in self.own_decoders()})
        assert not stale, f"unmodelled names no decoder of the plugin: {stale}"
        for name, why in self.unmodelled.items():
            assert why.strip(), f"unmodelled[{name!r}] gives no reason"

    # -- completions and robustness --------------------------------------------------

    def test_completions_write_only_their_fields(self) -> None:
        """Every answer to every decoder's base images changes only its write set's bytes."""
        samples = self.samples()
        problems: list[str] = []
        for abi, dec in self.own_decoders():
            for where, image in base_images(abi, dec, samples):
                for answer in [*answers(dec), None]:
                    d = self.dispatcher(abi.name)
                    answer_all(d, answer)
                    problems.extend(image_problems(abi, d, image, answer, where))
        assert not problems, "completions write outside their fields:\n" + "\n".join(problems[:20])

    def test_decoders_survive_boundary_values(self) -> None:
        """Each scalar of a decoder's member at each boundary value decodes and completes."""
        samples = self.samples()
        problems: list[str] = []
        by_abi: dict[str, list[ExitDecoder]] = {}
        for abi, dec in self.own_decoders():
            by_abi.setdefault(abi.name, []).append(dec)
        for abi_name, decs in by_abi.items():
            abi = self.registry.abi(abi_name)
            problems.extend(boundary_problems(abi, self.registry, self.vendor, decs, samples))
        assert not problems, "boundary values break the plugin:\n" + "\n".join(problems[:20])

    def _fuzz(self, raising: bool) -> None:
        targets = self.own_decoders()
        if not targets:
            pytest.skip("the plugin claims no exit")
        samples = self.samples()
        bases = {id(dec): base_images(abi, dec, samples) for abi, dec in targets}

        def check(data: st.DataObject) -> None:
            abi, dec = data.draw(st.sampled_from(targets), label="decoder")
            where, image = data.draw(st.sampled_from(bases[id(dec)]), label="base image")
            buf = bytearray(image)
            if data.draw(st.booleans(), label="random union"):
                noise = data.draw(st.binary(min_size=EXIT_UNION_SIZE, max_size=EXIT_UNION_SIZE))
                buf[_UNION] = noise
                disc = abi.discriminators.get(dec.reason)
                if disc is not None and dec.discriminator is not None and not dec.fallback:
                    disc.pack_into(buf, dec.discriminator)
            fields = scalar_fields(abi, member_of(dec, abi))
            what = where
            for f in data.draw(st.lists(st.sampled_from(fields), max_size=3), label="fields"):
                value = data.draw(
                    st.one_of(
                        st.sampled_from(boundary_values(f.size)),
                        st.integers(0, (1 << 8 * f.size) - 1),
                    ),
                    label=f.path,
                )
                buf[f.offset : f.offset + f.size] = value.to_bytes(f.size, "little")
                what += f", {f.path} = {value:#x}"
            answer = RAISES if raising else data.draw(st.sampled_from([*answers(dec), None]))
            d = self.dispatcher(abi.name)
            answer_all(d, answer)
            problems = image_problems(abi, d, bytes(buf), answer, what)
            assert not problems, "\n".join(problems)

        run_budgeted(check, self.fuzz_seconds)

    def test_dispatch_never_raises(self) -> None:
        """Random images of claimed exits never raise nor write outside the write set."""
        self._fuzz(raising=False)

    def test_dispatch_survives_raising_handler(self) -> None:
        """A raising handler completes random claimed exits with ERROR, writing only its fields."""
        self._fuzz(raising=True)

    # -- unknown exits --------------------------------------------------------------

    def test_unknown_exit_reason_is_unsupported(self) -> None:
        """An exit reason no decoder claims comes back as Unsupported with the buffer untouched."""
        abis = self.own_abis()
        if not abis:
            pytest.skip("the plugin contributes to no ABI")
        dispatchers = {abi: self.dispatcher(abi) for abi in abis}
        claimed = {abi: {dec.reason for dec in d.claims()} for abi, d in dispatchers.items()}

        def check(data: st.DataObject) -> None:
            abi = data.draw(st.sampled_from(abis), label="abi")
            reason = data.draw(
                st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)).filter(
                    lambda r: r not in claimed[abi]
                ),
                label="reason",
            )
            buf = bytearray(
                data.draw(st.binary(min_size=KVM_RUN_SIZE, max_size=KVM_RUN_SIZE), label="kvm_run")
            )
            buf[EXIT_REASON : EXIT_REASON + 4] = reason.to_bytes(4, "little")
            before = bytes(buf)
            result = dispatchers[abi].dispatch(buf)
            assert isinstance(result, Unsupported), result
            assert result.raw_reason == reason
            assert result.raw == before[_UNION]
            assert bytes(buf) == before

        run_budgeted(check, self.fuzz_seconds)

    # -- kernel model ----------------------------------------------------------------

    def test_kernel_model_lists_calls(self) -> None:
        """The kernel model names its calls ``vendor.call``, described, with a known generation."""
        parts = [m for m in self.registry.models if m.vendor == self.vendor]
        if not parts:
            pytest.skip("the plugin registers no kernel model (ModelPart)")
        names = [c.name for p in parts for c in p.calls]
        assert names, "the kernel model has no calls"
        assert len(set(names)) == len(names), f"duplicate call names: {names}"
        for part in parts:
            for call in part.calls:
                assert call.name.startswith(f"{self.vendor}."), call.name
                assert call.description, f"{call.name}: no description"
                assert (
                    call.since in {k.name for k in kernels.released()}
                    or call.since in self.registry.abis
                ), f"{call.name}: since {call.since!r} is neither a kernel generation nor an ABI"
        model = KernelModel(self.registry, self.vendor, ExampleMemory())
        assert sorted(model.calls) == sorted(names)
        for part in parts:
            for call in part.calls:
                for ex in call.examples:
                    unknown = part.unknown_registers(ex.cpu())
                    assert not unknown, (
                        f"{call.name} example {ex.name!r}: registers {unknown} are not among "
                        "its model part's registers"
                    )
