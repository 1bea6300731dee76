# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_snp.certs.tcb: both TCB_VERSION layouts and product detection."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coco_core.errors import CoCoError
from coco_snp.certs.tcb import Product, TcbError, TcbLayout, TcbVersion, UnknownProductError


def test_milan_layout_decodes_gsg_reported_tcb() -> None:
    """0x4405000000000002 on Milan is BL 2, TEE 0, SNP 5, ucode 68 (SOURCES.md)."""
    tcb = TcbVersion.from_raw(0x4405000000000002, Product.MILAN)
    assert (tcb.boot_loader, tcb.tee, tcb.snp, tcb.microcode, tcb.fmc) == (2, 0, 5, 68, None)
    assert tcb.layout is TcbLayout.MILAN_GENOA


def test_genoa_uses_the_milan_layout() -> None:
    """Genoa's 0x541900000000000A is BL 10, SNP 25, ucode 84."""
    tcb = TcbVersion.from_raw(0x541900000000000A, Product.GENOA)
    assert (tcb.boot_loader, tcb.snp, tcb.microcode) == (10, 25, 84)


def test_turin_layout_decodes_oak_reported_tcb() -> None:
    """0x4700000002000100 on Turin is FMC 0, BL 1, TEE 0, SNP 2, ucode 71."""
    tcb = TcbVersion.from_raw(0x4700000002000100, Product.TURIN)
    assert (tcb.fmc, tcb.boot_loader, tcb.tee, tcb.snp, tcb.microcode) == (0, 1, 0, 2, 71)
    assert tcb.layout is TcbLayout.TURIN


def test_same_raw_differs_between_layouts() -> None:
    """The Turin value read with the Milan layout gives different fields."""
    milan = TcbVersion.from_raw(0x4700000002000100, Product.MILAN)
    assert (milan.boot_loader, milan.tee, milan.snp) == (0, 1, 0)


def test_from_fields_encodes_both_layouts() -> None:
    """Encoding SVN fields reproduces the real raw values."""
    assert (
        TcbVersion.from_fields(Product.MILAN, boot_loader=3, tee=0, snp=8, microcode=115).raw
        == 0x7308000000000003
    )
    turin = TcbVersion.from_fields(Product.TURIN, fmc=0, boot_loader=1, tee=0, snp=2, microcode=71)
    assert turin.raw == 0x4700000002000100
    assert turin.to_bytes() == (0x4700000002000100).to_bytes(8, "little")


def test_from_fields_rejects_fmc_on_milan() -> None:
    """A non-zero FMC SVN cannot be encoded in the Milan/Genoa layout."""
    with pytest.raises(TcbError, match="no FMC"):
        TcbVersion.from_fields(Product.MILAN, boot_loader=1, tee=0, snp=1, microcode=1, fmc=1)


def test_from_fields_rejects_out_of_range() -> None:
    """A field above 255 is rejected naming the field."""
    with pytest.raises(TcbError, match="snp is 256"):
        TcbVersion.from_fields(Product.GENOA, boot_loader=1, tee=0, snp=256, microcode=1)


def test_from_raw_rejects_more_than_u64() -> None:
    """Values outside u64 are rejected."""
    with pytest.raises(TcbError):
        TcbVersion.from_raw(1 << 64, Product.MILAN)


@pytest.mark.parametrize(
    ("name", "product"),
    [
        ("Milan-B0", Product.MILAN),
        ("Milan", Product.MILAN),
        ("Genoa", Product.GENOA),
        ("Turin", Product.TURIN),
        ("turin", Product.TURIN),
    ],
)
def test_product_from_product_name(name: str, product: Product) -> None:
    """VCEK productName values map to the product, ignoring the stepping suffix."""
    assert Product.from_product_name(name) is product


def test_unknown_product_name_is_an_error() -> None:
    """An unknown productName raises naming it."""
    with pytest.raises(UnknownProductError, match="'Rome'"):
        Product.from_product_name("Rome")


@pytest.mark.parametrize(
    ("family", "model", "product"),
    [
        (0x19, 0x00, Product.MILAN),
        (0x19, 0x01, Product.MILAN),
        (0x19, 0x0F, Product.MILAN),  # the last Milan model
        (0x19, 0x10, Product.GENOA),  # the first Genoa model
        (0x19, 0x11, Product.GENOA),
        (0x19, 0x1F, Product.GENOA),
        (0x1A, 0x00, Product.TURIN),
        (0x1A, 0x02, Product.TURIN),
        (0x1A, 0xFF, Product.TURIN),
    ],
)
def test_product_from_cpuid(family: int, model: int, product: Product) -> None:
    """CPUID family/model select the product, at each edge of each model range."""
    assert Product.from_cpuid(family, model) is product


@pytest.mark.parametrize(("family", "model"), [(0x19, 0x20), (0x18, 0x0F), (0x1B, 0x00)])
def test_cpuid_just_outside_the_ranges_is_unknown(family: int, model: int) -> None:
    """Model 0x20 of family 0x19, and families 0x18 and 0x1B, are no SNP product."""
    with pytest.raises(UnknownProductError):
        Product.from_cpuid(family, model)


def test_unknown_cpuid_is_an_error() -> None:
    """Family 0x17 (Rome) is not an SNP product here."""
    with pytest.raises(UnknownProductError, match="0x17"):
        Product.from_cpuid(0x17, 0x31)


def test_turin_is_the_only_turin_layout() -> None:
    """Milan and Genoa share a layout; Turin has its own."""
    assert Product.MILAN.layout is Product.GENOA.layout is TcbLayout.MILAN_GENOA
    assert Product.TURIN.layout is TcbLayout.TURIN


def test_reserved_bytes_are_reported() -> None:
    """Non-zero reserved bytes show up in ``reserved`` and survive the round trip."""
    tcb = TcbVersion.from_raw(0x0000FF0000000000, Product.MILAN)
    assert tcb.reserved == 0x0000FF0000000000
    assert tcb.to_raw() == 0x0000FF0000000000


@given(st.integers(0, (1 << 64) - 1), st.sampled_from(list(Product)))
def test_any_u64_decodes_and_reencodes(raw: int, product: Product) -> None:
    """Every u64 decodes; fields plus reserved bytes re-encode to the same value."""
    tcb = TcbVersion.from_raw(raw, product)
    again = TcbVersion.from_fields(
        product,
        boot_loader=tcb.boot_loader,
        tee=tcb.tee,
        snp=tcb.snp,
        microcode=tcb.microcode,
        fmc=tcb.fmc,
    )
    assert again.raw | tcb.reserved == raw


@given(st.integers(), st.integers())
def test_from_cpuid_only_raises_documented_errors(family: int, model: int) -> None:
    """Arbitrary family/model either map to a product or raise UnknownProductError."""
    with contextlib.suppress(CoCoError):
        Product.from_cpuid(family, model)
