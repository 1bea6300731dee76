# SPDX-License-Identifier: Apache-2.0
"""SEV-SNP ``TCB_VERSION``: a little-endian u64 whose byte layout depends on the product.

Sources (see also ``docs/reference/kernel-abi.md`` §3.7):

* AMD SEV-SNP ABI specification (pub. 56860), "TCB_VERSION Structure";
* virtee/sev ``src/firmware/host/types/snp.rs`` ``TcbVersionMilanGenoa`` /
  ``TcbVersionTurin`` (``TcbVersion::{from_legacy_bytes,from_turin_bytes}``).

====  =========================  =================
byte  Milan / Genoa (Fam 19h)    Turin (Fam 1Ah)
====  =========================  =================
0     BOOT_LOADER                FMC
1     TEE                        BOOT_LOADER
2     reserved                   TEE
3     reserved                   SNP
4..5  reserved                   reserved
6     SNP                        reserved
7     MICROCODE                  MICROCODE
====  =========================  =================

The raw u64 does not say which layout applies: take the product from the report's
CPUID bytes (report version 3 and later) or from the VCEK ``productName`` extension.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from coco_core.plugin import CoCoError, DecodeError

__all__ = ["Product", "TcbError", "TcbLayout", "TcbVersion", "UnknownProductError"]

U64_MAX = (1 << 64) - 1


class TcbError(DecodeError):
    """A TCB_VERSION value or one of its fields is out of range."""


class UnknownProductError(CoCoError):
    """A product name or CPUID family/model is not a known SEV-SNP product."""


@enum.unique
class TcbLayout(enum.Enum):
    """Which byte layout a TCB_VERSION u64 uses."""

    MILAN_GENOA = "milan-genoa"  # Fam 19h: BL, TEE, 4 reserved, SNP, ucode
    TURIN = "turin"  # Fam 1Ah: FMC, BL, TEE, SNP, 3 reserved, ucode


# Byte positions per layout: field -> byte index in the little-endian u64.
# Source: virtee/sev src/firmware/host/types/snp.rs (TcbVersionMilanGenoa / TcbVersionTurin).
_POSITIONS: dict[TcbLayout, dict[str, int]] = {
    TcbLayout.MILAN_GENOA: {"boot_loader": 0, "tee": 1, "snp": 6, "microcode": 7},
    TcbLayout.TURIN: {"fmc": 0, "boot_loader": 1, "tee": 2, "snp": 3, "microcode": 7},
}


@enum.unique
class Product(enum.Enum):
    """An SEV-SNP product generation; the value is the KDS product name."""

    MILAN = "Milan"
    GENOA = "Genoa"
    TURIN = "Turin"

    @property
    def layout(self) -> TcbLayout:
        """The TCB_VERSION layout this product uses (Turin is the only Fam 1Ah product)."""
        return TcbLayout.TURIN if self is Product.TURIN else TcbLayout.MILAN_GENOA

    @classmethod
    def from_product_name(cls, name: str) -> Product:
        """Product from a VCEK/VLEK ``productName`` ("Milan-B0", "Milan", "Genoa", "Turin").

        The KDS spec (AMD pub. 57230) names the product, optionally followed by ``-`` and a
        stepping ("Milan-B0"); the stepping does not change the layout.
        """
        base = name.strip().split("-", 1)[0]
        for product in cls:
            if product.value.lower() == base.lower():
                return product
        known = ", ".join(p.value for p in cls)
        raise UnknownProductError(
            f"productName {name!r} is not a known SEV-SNP product; expected one of {known} "
            "(optionally with a stepping suffix such as '-B0')"
        )

    @classmethod
    def from_cpuid(cls, family: int, model: int) -> Product:
        """Product from the CPUID family and model (report bytes 0x188/0x189, version 3+).

        Family 0x19 model 0x00-0x0F is Milan, 0x10-0x1F Genoa; family 0x1A is Turin.
        Source: go-sev-guest ``abi/abi.go`` (milanExtendedModel 0, genoaExtendedModel 1,
        sevExtendedFamily 0xA) and the reports in ``testdata/snp/reports`` (19/01, 19/11, 1A/02).
        """
        if family == 0x19 and 0x00 <= model <= 0x0F:
            return cls.MILAN
        if family == 0x19 and 0x10 <= model <= 0x1F:
            return cls.GENOA
        if family == 0x1A:
            return cls.TURIN
        raise UnknownProductError(
            f"CPUID family 0x{family:02X} model 0x{model:02X} is not a known SEV-SNP product; "
            "expected family 0x19 model 0x00-0x1F (Milan, Genoa) or family 0x1A (Turin)"
        )

    @classmethod
    def from_text(cls, text: str) -> Product:
        """Product from a command-line spelling ("milan", "Genoa", "Milan-B0")."""
        return cls.from_product_name(text)


def _check_byte(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise TcbError(f"TCB field {name} is {value}; expected a byte value 0..255")


@attrs.frozen
class TcbVersion:
    """A decoded TCB_VERSION: the raw u64, the layout used, and its SVN fields.

    ``fmc`` is ``None`` for the Milan/Genoa layout, which has no FMC byte.
    """

    raw: int
    layout: TcbLayout
    boot_loader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None

    @classmethod
    def from_raw(cls, raw: int, product: Product) -> TcbVersion:
        """Decode ``raw`` with the layout of ``product``."""
        return cls.from_raw_layout(raw, product.layout)

    @classmethod
    def from_raw_layout(cls, raw: int, layout: TcbLayout) -> TcbVersion:
        """Decode ``raw`` with an explicit layout."""
        if not 0 <= raw <= U64_MAX:
            raise TcbError(f"TCB_VERSION 0x{raw:X} does not fit in a u64; expected 0..2**64-1")
        data = raw.to_bytes(8, "little")
        pos = _POSITIONS[layout]
        return cls(
            raw=raw,
            layout=layout,
            boot_loader=data[pos["boot_loader"]],
            tee=data[pos["tee"]],
            snp=data[pos["snp"]],
            microcode=data[pos["microcode"]],
            fmc=data[pos["fmc"]] if "fmc" in pos else None,
        )

    @classmethod
    def from_bytes(cls, data: bytes, product: Product) -> TcbVersion:
        """Decode the 8 little-endian bytes of a TCB_VERSION."""
        if len(data) != 8:
            raise TcbError(f"TCB_VERSION is {len(data)} bytes; expected 8")
        return cls.from_raw(int.from_bytes(data, "little"), product)

    @classmethod
    def from_fields(
        cls,
        product: Product,
        *,
        boot_loader: int,
        tee: int,
        snp: int,
        microcode: int,
        fmc: int | None = None,
    ) -> TcbVersion:
        """Encode SVN fields into a TCB_VERSION (reserved bytes zero).

        ``fmc`` must be given for Turin (``None`` means 0) and must be ``None`` or 0 otherwise.
        """
        layout = product.layout
        values = {"boot_loader": boot_loader, "tee": tee, "snp": snp, "microcode": microcode}
        if layout is TcbLayout.TURIN:
            values["fmc"] = 0 if fmc is None else fmc
        elif fmc not in (None, 0):
            raise TcbError(
                f"TCB field fmc is {fmc} for {product.value}; the Milan/Genoa layout has no FMC "
                "byte (expected None or 0)"
            )
        data = bytearray(8)
        for name, value in values.items():
            _check_byte(name, value)
            data[_POSITIONS[layout][name]] = value
        return cls.from_raw_layout(int.from_bytes(data, "little"), layout)

    def to_raw(self) -> int:
        """The u64 value (identical to ``raw``; reserved bytes are kept as decoded)."""
        return self.raw

    def to_bytes(self) -> bytes:
        """The 8 little-endian bytes."""
        return self.raw.to_bytes(8, "little")

    @property
    def reserved(self) -> int:
        """The reserved bytes of the layout as an integer (0 for a well-formed value)."""
        used = set(_POSITIONS[self.layout].values())
        data = self.raw.to_bytes(8, "little")
        return int.from_bytes(bytes(0 if i in used else b for i, b in enumerate(data)), "little")

    def spl_key(self) -> tuple[int, int, int, int, int]:
        """(fmc, boot_loader, tee, snp, microcode), fmc 0 when absent; compare with VCEK SPLs."""
        return (self.fmc or 0, self.boot_loader, self.tee, self.snp, self.microcode)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        out: dict[str, Any] = {"raw": f"0x{self.raw:016X}", "layout": self.layout.value}
        if self.fmc is not None:
            out["fmc"] = self.fmc
        out.update(
            boot_loader=self.boot_loader, tee=self.tee, snp=self.snp, microcode=self.microcode
        )
        return out

    def describe(self) -> str:
        """One line: ``0x... (layout: FMC x, BL x, TEE x, SNP x, ucode x)``."""
        parts = [] if self.fmc is None else [f"FMC {self.fmc}"]
        parts += [
            f"BL {self.boot_loader}",
            f"TEE {self.tee}",
            f"SNP {self.snp}",
            f"ucode {self.microcode}",
        ]
        return f"0x{self.raw:016X} ({self.layout.value}: {', '.join(parts)})"
