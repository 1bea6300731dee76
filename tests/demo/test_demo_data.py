# SPDX-License-Identifier: Apache-2.0
"""The real files the plugins ship for ``coco demo`` are the repository's, with their provenance."""

from __future__ import annotations

from pathlib import Path

import pytest

import coco_snp
import coco_tdx
from coco_snp import demo as snp_demo

ROOT = Path(__file__).resolve().parents[2]
DATA = [Path(coco_snp.__file__).parent / "data", Path(coco_tdx.__file__).parent / "data"]
SHIPPED = sorted(
    (d, p) for d in DATA for p in d.rglob("*") if p.is_file() and p.name != "SOURCES.md"
)


def test_each_plugin_ships_data() -> None:
    """coco-snp ships three certificates and coco-tdx a TDREPORT and a quote."""
    names = sorted(p.name for _, p in SHIPPED)
    assert names == sorted(
        [
            "ark_milan.pem",
            "ask_milan.pem",
            "milan_v2_gsg_vcek.der",
            "quote_v5_emr_coco.dat",
            "tdreport_tdx15_coco.bin",
        ]
    )


@pytest.mark.parametrize(("data", "path"), SHIPPED, ids=[p.name for _, p in SHIPPED])
def test_shipped_file_is_the_testdata_file(data: Path, path: Path) -> None:
    """Each shipped file is byte for byte the repository's testdata/ file of the same path."""
    rel = path.relative_to(data)
    assert path.read_bytes() == (ROOT / "testdata" / rel).read_bytes(), rel


@pytest.mark.parametrize(("data", "path"), SHIPPED, ids=[p.name for _, p in SHIPPED])
def test_shipped_file_has_its_provenance(data: Path, path: Path) -> None:
    """Each shipped file has a row in its data/SOURCES.md naming a repository and a commit."""
    rel = path.relative_to(data).as_posix()
    rows = [r for r in (data / "SOURCES.md").read_text().splitlines() if r.startswith(f"| {rel} |")]
    assert len(rows) == 1, rel
    assert " @" in rows[0], f"{rel}: no repository @ commit"


def test_snp_demo_reads_only_shipped_certificates() -> None:
    """Every certificate the SNP scenario loads is shipped in coco_snp/data/snp."""
    for rel in snp_demo.CERTIFICATES:
        assert (DATA[0] / "snp" / rel).is_file(), rel
