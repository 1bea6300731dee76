# SPDX-License-Identifier: Apache-2.0
"""The documentation site builds with Sphinx, warnings as errors, with a generated API reference."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SPHINX = Path(sys.executable).with_name("sphinx-build")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built from a copy of docs/ (the build writes its API stubs beside the pages)."""
    if not SPHINX.is_file():
        pytest.fail(f"no {SPHINX}: run `make setup` (the docs tools come with .venv)")
    work = tmp_path_factory.mktemp("site")
    src = work / "docs"
    shutil.copytree(DOCS, src, ignore=shutil.ignore_patterns("_build", "generated"))
    out = work / "html"
    done = subprocess.run(
        [str(SPHINX), "-W", "--keep-going", "-q", "-b", "html", str(src), str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, f"sphinx-build -W failed:\n{done.stderr[-4000:]}"
    assert done.stderr.strip() == "", done.stderr
    return out


def test_every_page_is_on_the_site(site: Path) -> None:
    """Each Markdown page of docs/ becomes an HTML page."""
    pages = [
        p for p in DOCS.rglob("*.md") if "_build" not in p.parts and "generated" not in p.parts
    ]
    missing = [
        str(p.relative_to(DOCS))
        for p in pages
        if not (site / p.relative_to(DOCS).with_suffix(".html")).is_file()
    ]
    assert not missing, missing


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("coco_core.dispatch", "Dispatcher"),
        ("coco_core.registry", "Registry"),
        ("coco_snp.report", "load_report"),
        ("coco_snp.certs.store", "CertificateStore"),
        ("coco_tdx.quote", "Quote"),
        ("coco_tdx.qgs.client", "QgsClient"),
    ],
)
def test_api_reference_is_generated_for_all_three_packages(
    site: Path, module: str, name: str
) -> None:
    """The API reference has a page per module, with its names documented from the docstrings."""
    page = site / "reference" / "generated" / f"{module}.html"
    assert page.is_file(), page
    assert re.search(rf'id="{re.escape(module)}\.{name}"', page.read_text()), f"{module}.{name}"


def test_a_reexported_name_is_documented_once(site: Path) -> None:
    """A name the package re-exports is described in its defining module only."""
    package = (site / "reference" / "generated" / "coco_core.html").read_text()
    assert 'id="coco_core.Registry"' not in package
    defining = (site / "reference" / "generated" / "coco_core.registry.html").read_text()
    assert 'id="coco_core.registry.Registry"' in defining


def test_c_layouts_render_as_c(site: Path) -> None:
    """A layout class's C text is a C code block, not reST prose."""
    page = (site / "reference" / "generated" / "coco_snp.uapi.html").read_text()
    blocks = page.split('<div class="highlight-c')[1:]
    assert any("kvm_exit_snp_req_certs" in block.split("</pre>")[0] for block in blocks)
