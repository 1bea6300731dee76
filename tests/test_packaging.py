# SPDX-License-Identifier: Apache-2.0
"""The three distributions build, pass ``twine check``, and work from wheels outside the repository.

Also: the editable install ``make`` makes is one type checkers see, and ``make`` makes
``.venv`` anew when it runs another interpreter than ``$(PYTHON)``.

Building and checking run offline (``python -m build --no-isolation`` with the dev
tools of ``.venv``). Installing the wheels into a fresh venv asks PyPI for their
dependencies (pluggy, attrs, cryptography); without PyPI those tests skip, saying so.
"""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROJECTS = {"coco-core": ROOT, "coco-snp": ROOT / "plugins/snp", "coco-tdx": ROOT / "plugins/tdx"}


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sdist and a wheel of each distribution, built once."""
    out = tmp_path_factory.mktemp("dist")
    for name, project in PROJECTS.items():
        done = _run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(project)],
            cwd=tmp_path_factory.mktemp("build"),
        )
        assert done.returncode == 0, f"{name}: python -m build failed:\n{done.stderr[-3000:]}"
    return out


def _wheel(dist: Path, name: str) -> Path:
    (wheel,) = dist.glob(f"{name.replace('-', '_')}-*.whl")
    return wheel


def _metadata(dist: Path, name: str) -> email.message.Message:
    with zipfile.ZipFile(_wheel(dist, name)) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(zf.read(meta).decode())


def test_build_makes_an_sdist_and_a_wheel_of_each(dist: Path) -> None:
    """python -m build makes one sdist and one wheel per distribution."""
    for name in PROJECTS:
        stem = name.replace("-", "_")
        assert len(list(dist.glob(f"{stem}-*.tar.gz"))) == 1, name
        assert len(list(dist.glob(f"{stem}-*-py3-none-any.whl"))) == 1, name


def test_twine_check_passes(dist: Path) -> None:
    """twine check --strict accepts every sdist and wheel."""
    files = sorted(str(p) for p in dist.iterdir())
    done = _run([str(BIN / "twine"), "check", "--strict", *files])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 6


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_wheel_metadata_is_complete(dist: Path, name: str) -> None:
    """Each wheel has the license and its file, classifiers, a Markdown long description."""
    meta = _metadata(dist, name)
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert meta["Description-Content-Type"] == "text/markdown"
    assert f"# {name}" in meta.get_payload() or name == "coco-core"
    with zipfile.ZipFile(_wheel(dist, name)) as zf:
        (lic,) = [n for n in zf.namelist() if n.endswith("licenses/LICENSE")]
        assert zf.read(lic) == (ROOT / "LICENSE").read_bytes()


@pytest.mark.parametrize("name", ["coco-snp", "coco-tdx"])
def test_plugins_bound_the_core_version(dist: Path, name: str) -> None:
    """A plugin requires coco-core from its own minor release up to the next one, exclusive."""
    requires = _metadata(dist, name).get_all("Requires-Dist") or []
    assert "coco-core<0.2,>=0.1.0" in requires


def test_license_is_apache_and_each_plugin_carries_the_same(dist: Path) -> None:
    """LICENSE is the Apache License 2.0, and the plugins' copies are identical."""
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    for project in ("plugins/snp", "plugins/tdx"):
        assert (ROOT / project / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("coco-snp", "coco_snp/data/snp/certs/ark_milan.pem"),
        ("coco-tdx", "coco_tdx/data/SOURCES.md"),
    ],
)
def test_plugin_wheels_ship_the_demo_data(dist: Path, name: str, data: str) -> None:
    """The plugin wheels carry the demo's data files and their provenance."""
    with zipfile.ZipFile(_wheel(dist, name)) as zf:
        assert data in zf.namelist()


@pytest.fixture(scope="module")
def wheel_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the repository with the three wheels installed (deps from PyPI)."""
    home = tmp_path_factory.mktemp("wheel-venv")
    venv.create(home / "venv", with_pip=True)
    python = home / "venv" / "bin" / "python"
    wheels = sorted(str(p) for p in dist.glob("*.whl"))
    done = _run(
        [str(python), "-m", "pip", "install", "--quiet", "--find-links", str(dist), *wheels],
        cwd=home,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.skip(
            "could not install the wheels' dependencies (pluggy, attrs, cryptography): needs "
            f"PyPI or a pip index that has them; pip said: {done.stderr.strip()[-300:]}"
        )
    return home


@pytest.mark.parametrize("argv", [["--version"], ["plugins", "list"], ["demo"]], ids=" ".join)
def test_cli_works_from_wheels_outside_the_repository(wheel_venv: Path, argv: list[str]) -> None:
    """coco --version, plugins list and demo exit 0 from the wheels, run far from any checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = _run([str(wheel_venv / "venv" / "bin" / "coco"), *argv], cwd=wheel_venv, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    if argv == ["demo"]:
        assert "2/2 scenarios passed" in done.stdout
    if argv == ["plugins", "list"]:
        assert "snp (coco-snp 0.1.0)" in done.stdout
        assert "tdx (coco-tdx 0.1.0)" in done.stdout


def test_wheel_install_has_no_checkout_on_its_path(wheel_venv: Path) -> None:
    """The wheel venv imports coco_core from its own site-packages, not from this repository."""
    python = wheel_venv / "venv" / "bin" / "python"
    code = "import coco_core, coco_snp; print(coco_core.__file__)"
    done = _run([str(python), "-c", code], cwd=wheel_venv)
    assert done.returncode == 0, done.stderr
    assert str(ROOT) not in done.stdout
    assert "site-packages" in done.stdout


def test_mypy_sees_the_editable_install_from_outside(tmp_path: Path) -> None:
    """mypy --strict on a user's file outside the repository finds coco_core and the plugins."""
    user = tmp_path / "vmm.py"
    user.write_text(
        "from coco_core import CoCoStatus, Registry\n"
        "from coco_tdx.qgs.client import QgsClient\n"
        "registry: Registry = Registry.from_entry_points(allow={'tdx'})\n"
        "status: CoCoStatus = CoCoStatus.OK\n"
        "client: QgsClient = QgsClient()\n"
    )
    done = _run(
        [str(BIN / "mypy"), "--strict", "--cache-dir", str(tmp_path / "cache"), str(user)],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Success")


_FAKE_PYTHON = """#!/bin/sh
# A stand-in interpreter for the Makefile's set-up: it answers the identity probe with
# its own identity and makes a venv whose python is another copy of itself.
case "$2" in
  *realpath*) echo "{version} /fake/{version}/python" ;;
  *assert*) ;;
esac
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
fi
exit 0
"""


def _fake_python(path: Path, version: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_FAKE_PYTHON.format(version=version))
    path.chmod(0o755)
    return path


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make (apt-get install make)")
def test_make_rebuilds_the_venv_for_another_interpreter(tmp_path: Path) -> None:
    """make PYTHON=other remakes a venv of another Python, says so, and then leaves it be."""
    venv_dir = tmp_path / "venv"
    _fake_python(venv_dir / "bin" / "python", "3.11.0")
    new = _fake_python(tmp_path / "python3.12", "3.12.0")
    cmd = ["make", "-C", str(ROOT), f"VENV={venv_dir}", f"PYTHON={new}", "setup"]
    first = _run(cmd)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (
        f"setup: {venv_dir} runs Python 3.11.0 /fake/3.11.0/python, not {new} "
        "(3.12.0 /fake/3.12.0/python): making it anew"
    ) in first.stdout
    assert f"setup: creating {venv_dir} with {new}" in first.stdout
    assert "3.12.0" in (venv_dir / "bin" / "python").read_text()
    again = _run(cmd)
    assert again.returncode == 0
    assert "setup:" not in again.stdout
