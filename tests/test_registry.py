# SPDX-License-Identifier: Apache-2.0
"""The registry: discovery, allow-lists, merging ABI parts, and rejecting contradictions."""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any

import coco_example.plugin as example
import pluggy
import pytest

from coco_core.abi import AbiPart, ExitDecoder
from coco_core.errors import ConfigurationError, RegistrationError
from coco_core.errorspace import ErrorSpace, Landing
from coco_core.generic.uapi import KVM_RUN_FRAME
from coco_core.hookspecs import hookimpl
from coco_core.registry import Registrar, Registry
from coco_core.requests import NeutralRequest, QuoteRequest, VendorSpecific
from coco_core.status import CoCoStatus


def _space(space_id: str) -> ErrorSpace:
    """A minimal total error space: OK 0, ERROR 1, everything else falls back to ERROR."""
    return ErrorSpace(
        id=space_id,
        title="test",
        width=8,
        landing=Landing.KVM_RUN_VERBATIM,
        names={0: "OK", 1: "ERR"},
        primary={CoCoStatus.OK: 0, CoCoStatus.ERROR: 1},
        fallbacks={s: CoCoStatus.ERROR for s in CoCoStatus if s.name not in ("OK", "ERROR")},
    )


def _decode(run: memoryview) -> NeutralRequest:
    return VendorSpecific("acme", "x", ())


def _part(vendor: str, exits: dict[str, int], *decoders: ExitDecoder) -> AbiPart:
    return AbiPart(
        abi="acme-1",
        vendor=vendor,
        source="test",
        released=False,
        exits=exits,
        decoders=decoders,
        frame=KVM_RUN_FRAME,
    )


def _dec(name: str, vendor: str, reason: int, disc: int | None = None) -> ExitDecoder:
    return ExitDecoder(
        name=name,
        reason=reason,
        discriminator=disc,
        vendor=vendor,
        request_type=VendorSpecific,
        decode=_decode,
        write=None,
        error_space=None,
    )


def test_duplicate_exit_claim_from_two_plugins_names_both(make_plugin: Any) -> None:
    """Two plugins decoding one (reason, discriminator) for a vendor are rejected, naming both."""
    one = make_plugin(
        "one",
        lambda r: (
            r.add_vendor("acme", "Acme"),
            r.add_abi(_part("acme", {"KVM_EXIT_ACME": 45}, _dec("ACME/A", "acme", 45, 1))),
        ),
    )
    two = make_plugin(
        "two",
        lambda r: r.add_abi(_part("acme", {"KVM_EXIT_ACME": 45}, _dec("ACME/B", "acme", 45, 1))),
    )
    with pytest.raises(RegistrationError) as info:
        Registry.from_plugins([one, two])
    msg = str(info.value)
    assert "exit (45, 1)" in msg
    assert "'one' (ACME/A)" in msg
    assert "'two' (ACME/B)" in msg


def test_same_exit_name_with_two_numbers_is_rejected(make_plugin: Any) -> None:
    """One exit name given two numbers in one ABI is rejected, naming both plugins."""
    one = make_plugin("one", lambda r: r.add_abi(_part("kvm", {"KVM_EXIT_ACME": 45})))
    two = make_plugin("two", lambda r: r.add_abi(_part("kvm", {"KVM_EXIT_ACME": 46})))
    with pytest.raises(RegistrationError, match=r"KVM_EXIT_ACME is 45 for plugin 'one' but 46"):
        Registry.from_plugins([one, two])


def test_same_exit_number_with_two_names_is_rejected(make_plugin: Any) -> None:
    """Two exit names for one number in one ABI are rejected, naming both plugins."""
    one = make_plugin("one", lambda r: r.add_abi(_part("kvm", {"KVM_EXIT_ACME": 45})))
    two = make_plugin("two", lambda r: r.add_abi(_part("kvm", {"KVM_EXIT_OTHER": 45})))
    with pytest.raises(RegistrationError, match=r"'one'.*'two'"):
        Registry.from_plugins([one, two])


def test_duplicate_error_space_id_names_both(make_plugin: Any) -> None:
    """Two plugins registering different spaces under one id are rejected, naming both."""
    one = make_plugin("one", lambda r: r.add_error_space(_space("acme.status")))
    two = make_plugin("two", lambda r: r.add_error_space(_space("acme.status")))
    with pytest.raises(
        RegistrationError,
        match=r"error space 'acme.status' registered by both plugin 'one' and plugin 'two'",
    ):
        Registry.from_plugins([one, two])


def test_same_error_space_object_may_be_registered_twice(make_plugin: Any) -> None:
    """Registering the very same space object again (e.g. via two ABI parts) is allowed."""
    space = _space("acme.status")
    one = make_plugin("one", lambda r: (r.add_error_space(space), r.add_error_space(space)))
    assert Registry.from_plugins([one]).space("acme.status") is space


def test_duplicate_vendor_names_both(make_plugin: Any) -> None:
    """Two plugins declaring one vendor are rejected, naming both."""
    one = make_plugin("one", lambda r: r.add_vendor("acme", "Acme"))
    two = make_plugin("two", lambda r: r.add_vendor("acme", "Acme again"))
    with pytest.raises(
        RegistrationError, match=r"'acme' registered by both plugin 'one' and plugin 'two'"
    ):
        Registry.from_plugins([one, two])


def test_duplicate_command_names_both(make_plugin: Any) -> None:
    """Two plugins adding one command group are rejected, naming both."""
    one = make_plugin("one", lambda r: r.add_command("acme", "a:b", "help"))
    two = make_plugin("two", lambda r: r.add_command("acme", "c:d", "help"))
    with pytest.raises(RegistrationError, match=r"command 'acme'.*'one'.*'two'"):
        Registry.from_plugins([one, two])


def test_registrar_is_dead_after_the_hook(make_plugin: Any) -> None:
    """A registrar kept past coco_register_vendor refuses further registration."""
    kept: list[Registrar] = []
    Registry.from_plugins([make_plugin("one", kept.append)])
    with pytest.raises(RegistrationError, match="after coco_register_vendor returned"):
        kept[0].add_vendor("late", "Late")


def test_unknown_hook_fails_check_pending() -> None:
    """A plugin implementing a hook no spec defines is refused when the registry is built."""
    import types

    module = types.ModuleType("coco_bad.plugin")

    @hookimpl
    def coco_no_such_hook(registrar: Registrar) -> None:
        """Not a hook."""

    module.coco_no_such_hook = coco_no_such_hook  # type: ignore[attr-defined]
    with pytest.raises(pluggy.PluginValidationError, match="coco_no_such_hook"):
        Registry.from_plugins([module])


def test_vendor_decoder_wins_over_generic(make_plugin: Any) -> None:
    """A vendor's decoder for a key the core also decodes takes the vendor's table slot."""
    mine = _dec("MY_IO", "acme", 2)
    plugin = make_plugin(
        "one",
        lambda r: (
            r.add_vendor("acme", "Acme"),
            r.add_abi(
                AbiPart(
                    abi="linux-7.2",
                    vendor="acme",
                    source="test",
                    released=True,
                    decoders=(mine,),
                    frame=KVM_RUN_FRAME,
                )
            ),
        ),
    )
    reg = Registry.from_plugins([plugin])
    assert reg.decoders_for("linux-7.2", "acme")[(2, None)] is mine
    assert reg.decoders_for("linux-7.2", "other")[(2, None)].name == "KVM_EXIT_IO"


def test_unknown_abi_lists_known_ones() -> None:
    """Asking for an unregistered ABI names every registered one."""
    reg = Registry.from_plugins([example])
    with pytest.raises(ConfigurationError) as info:
        reg.abi("linux-9.9")
    for name in ("linux-6.16", "linux-7.0", "linux-7.1", "linux-7.2", "example-1"):
        assert name in str(info.value)


def test_unknown_space_lists_known_ones() -> None:
    """Asking for an unregistered error space names the registered ones."""
    reg = Registry.from_plugins([example])
    with pytest.raises(ConfigurationError, match=r"unknown error space 'nope'.*example\.status"):
        reg.space("nope")


def test_abis_merge_parts_and_sort_by_order() -> None:
    """Parts of one ABI from several plugins merge; ABIs sort by release order."""
    reg = Registry.from_plugins([example])
    assert list(reg.abis) == ["linux-6.16", "linux-7.0", "linux-7.1", "linux-7.2", "example-1"]
    abi = reg.abi("example-1")
    assert not abi.released
    assert abi.vendors == ("example",)
    assert abi.exits == {
        "KVM_EXIT_SYSTEM_EVENT": 24,
        "KVM_EXIT_RISCV_SBI": 35,
        "KVM_EXIT_EXAMPLE_ATTEST": 44,
    }
    assert [a.name for a in reg.abis_of("example")] == ["example-1"]


# -- discovery ---------------------------------------------------------------------


def _eps(*pairs: tuple[str, str]) -> list[importlib.metadata.EntryPoint]:
    return [importlib.metadata.EntryPoint(n, v, "coco_core") for n, v in pairs]


def test_plugin_that_fails_to_import_is_reported_and_others_load(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A plugin whose import fails is listed by name in failures and logged; the others load."""
    fake = _eps(("broken", "coco_no_such_module.plugin"), ("example", "coco_example.plugin"))
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: fake)
    with caplog.at_level(logging.ERROR, logger="coco_core.plugins"):
        reg = Registry.from_entry_points()
    assert [f.name for f in reg.failures] == ["broken"]
    assert reg.failures[0].target == "coco_no_such_module.plugin"
    assert "ModuleNotFoundError" in reg.failures[0].error
    assert "example" in reg.vendors
    assert "plugin broken (coco_no_such_module.plugin) failed to import" in caplog.text


def test_allow_list_is_respected(caplog: pytest.LogCaptureFixture) -> None:
    """Only allow-listed entry points load; the core's built-ins always do."""
    with caplog.at_level(logging.INFO, logger="coco_core.plugins"):
        reg = Registry.from_entry_points(allow={"example"})
    assert [p.name for p in reg.plugins] == ["core", "example"]
    assert set(reg.vendors) == {"example"}
    for other in ("snp", "tdx"):
        assert f"plugin {other} skipped: not in the allow-list" in caplog.text


def test_empty_allow_list_loads_only_builtins() -> None:
    """An empty allow-list loads no third-party plugin at all."""
    reg = Registry.from_entry_points(allow=set())
    assert [p.module for p in reg.plugins] == ["coco_core.generic.plugin"]
    assert reg.vendors == {}


def test_installed_example_entry_point_records_its_distribution() -> None:
    """A plugin loaded from an entry point records its distribution and version."""
    reg = Registry.from_entry_points(allow={"example"})
    (p,) = [p for p in reg.plugins if p.name == "example"]
    assert (p.module, p.dist, p.version) == ("coco_example.plugin", "coco-example", "0.1.0")


def test_quote_request_type_is_shared() -> None:
    """The example's attest exit decodes to the same neutral QuoteRequest a TDX GetQuote does."""
    reg = Registry.from_plugins([example])
    dec = reg.decoders_for("example-1", "example")[(44, None)]
    assert dec.request_type is QuoteRequest


def test_reused_space_keeps_its_first_owner(make_plugin: Any) -> None:
    """A plugin reusing the core's error space does not become its owner."""
    from coco_core.generic.kvmerrno import MAP_GPA_RANGE_ERRNO

    reuser = make_plugin("one", lambda r: r.add_error_space(MAP_GPA_RANGE_ERRNO))
    reg = Registry.from_plugins([reuser])
    assert reg.space_owner["kvm.map_gpa_range"] == "core"


# -- checks across ABIs and against the layout ------------------------------------------


def _abi_part(abi: str, exits: dict[str, int], **kw: Any) -> AbiPart:
    return AbiPart(
        abi=abi,
        vendor="acme",
        source="test",
        released=False,
        exits=exits,
        frame=KVM_RUN_FRAME,
        **kw,
    )


def _register(make_plugin: Any, *parts: AbiPart) -> Registry:
    def register(r: Registrar) -> None:
        r.add_vendor("acme", "Acme")
        for part in parts:
            r.add_abi(part)

    return Registry.from_plugins([make_plugin("acme", register)])


def test_exit_number_reused_from_a_release_is_refused(make_plugin: Any) -> None:
    """A proposal giving a released exit number another name fails, naming number, ABIs, plugins."""
    with pytest.raises(RegistrationError) as info:
        _register(make_plugin, _abi_part("acme-1", {"KVM_EXIT_ACME": 43}))
    msg = str(info.value)
    assert "exit 43 is KVM_EXIT_ACME in ABI 'acme-1' but KVM_EXIT_SNP_REQ_CERTS in ABI" in msg
    assert "AbiPart.renumbers" in msg
    assert "plugin 'acme'" in msg
    assert "plugin 'core'" in msg


def test_exit_number_reused_is_accepted_when_the_abi_renumbers(make_plugin: Any) -> None:
    """The same reuse passes when the proposal says why it renumbers; 44 reuses nothing."""
    reg = _register(
        make_plugin,
        _abi_part("acme-1", {"KVM_EXIT_ACME": 43}, renumbers="posted before 43 was allocated"),
        _abi_part("acme-2", {"KVM_EXIT_ACME2": 44}),
    )
    assert reg.abi("acme-1").renumbers == "posted before 43 was allocated"


def test_exit_name_with_two_numbers_across_abis_is_refused(make_plugin: Any) -> None:
    """One exit name numbered differently by two ABIs fails unless one renumbers."""
    with pytest.raises(RegistrationError, match=r"KVM_EXIT_ACME is 44 in ABI 'acme-1' but 45"):
        _register(
            make_plugin,
            _abi_part("acme-1", {"KVM_EXIT_ACME": 44}),
            _abi_part("acme-2", {"KVM_EXIT_ACME": 45}),
        )


def test_released_abi_cannot_renumber(make_plugin: Any) -> None:
    """A released part that says it renumbers is refused: released numbers are allocated once."""
    part = AbiPart(abi="linux-7.2", vendor="acme", source="test", released=True, renumbers="no")
    with pytest.raises(RegistrationError, match="released kernel but says it renumbers"):
        _register(make_plugin, part)


def test_union_member_named_like_a_generic_one_is_refused(make_plugin: Any) -> None:
    """A plugin's system_event member that is not the generic one is an error, not dropped."""
    lay = example.KvmExitExampleAttest.c_layout()
    with pytest.raises(RegistrationError, match=r"union member 'system_event'.*generic"):
        _register(make_plugin, _abi_part("acme-1", {}, union_members={"system_event": lay}))
    from coco_core.generic.uapi import generic_union_members

    same = {"system_event": generic_union_members()["system_event"]}
    _register(make_plugin, _abi_part("acme-1", {}, union_members=same))  # the generic one: fine


def test_discriminator_field_is_checked_against_the_layout(make_plugin: Any) -> None:
    """A discriminator whose offset is not the member it names is refused with both offsets."""
    from coco_core.abi import Discriminator

    member = {"example_attest": example._union_member()}
    wrong = Discriminator(reason=44, offset=44, fmt="<I", field="kvm_run.example_attest.len")
    with pytest.raises(RegistrationError) as info:
        _register(
            make_plugin,
            _abi_part("acme-1", {}, union_members=member, discriminators=(wrong,)),
        )
    assert "reads kvm_run.example_attest.len at 44 size 4" in str(info.value)
    assert "puts that scalar at 40 size 4" in str(info.value)
    missing = Discriminator(reason=44, offset=40, fmt="<I", field="kvm_run.example_attest.nr")
    with pytest.raises(RegistrationError, match="has no member 'nr'"):
        _register(
            make_plugin,
            _abi_part("acme-1", {}, union_members=member, discriminators=(missing,)),
        )


def test_status_field_and_write_set_are_checked_against_the_layout(make_plugin: Any) -> None:
    """A status field at another member's offset, or a write set naming no member, is refused."""
    from attrs import evolve

    from coco_core.abi import StatusField

    member = {"example_attest": example._union_member()}
    wrong = evolve(
        example.ATTEST,
        vendor="acme",
        status_field=StatusField(offset=40, fmt="<I", field="kvm_run.example_attest.ret"),
    )
    with pytest.raises(RegistrationError, match=r"declared at 40 size 4, but the layout puts"):
        _register(make_plugin, _abi_part("acme-1", {}, union_members=member, decoders=(wrong,)))
    bad_writes = evolve(example.ATTEST, vendor="acme", writes=("kvm_run.example_attest.rett",))
    with pytest.raises(RegistrationError, match=r"written field kvm_run.example_attest.rett"):
        _register(
            make_plugin, _abi_part("acme-1", {}, union_members=member, decoders=(bad_writes,))
        )
