# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures of the core tests: throw-away plugin modules, real KVM, real uapi headers.

Tests marked ``requires_kvm`` (or using the ``kvm`` fixture) are skipped, with
the reason from :func:`coco_core.kvm.probe.usable`, where ``/dev/kvm`` is missing
or cannot run a tiny guest to a port I/O exit. On the development and CI hosts
they run.

The Linux 7.2 uapi headers (``linux/kvm.h`` and friends) come from one place,
the ``uapi_include`` fixture (``header_dir`` is the same fixture under the name
``tests/review`` uses):

1. ``$COCO_UAPI_INCLUDE``, if set: a folder with ``linux/kvm.h``, or a tree with
   ``usr/include/linux/kvm.h`` (such as ``dpkg -x linux-libc-dev_7.2*.deb DIR``);
2. else ``.venv/cache/uapi72``, filled on first use: the test run fetches Debian's
   ``linux-libc-dev`` with ``apt-get download`` and unpacks it with ``dpkg -x``
   (nothing is installed), printing a line that says so.

Offline, or on a host without ``apt-get``/``dpkg``, the tests that need the
headers skip, naming what is missing and how to get it. ``make clean`` removes
the cache with ``.venv``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coco_core.errors import CoCoError
from coco_core.hookspecs import hookimpl
from coco_core.kvm.probe import usable
from coco_core.kvm.runloop import install_kick_handler
from coco_core.kvm.system import Kvm
from coco_core.registry import Registrar

RegisterFn = Callable[[Registrar], None]
PluginFactory = Callable[[str, RegisterFn], types.ModuleType]
#: ``coco("demo", "-v")`` runs the ``coco`` command in-process: (status, stdout, stderr)
CocoRunner = Callable[..., tuple[int, str, str]]


def _make_plugin(name: str, register: RegisterFn) -> types.ModuleType:
    """A plugin module ``coco_<name>.plugin`` whose hook calls ``register``."""
    module = types.ModuleType(f"coco_{name}.plugin")

    @hookimpl
    def coco_register_vendor(registrar: Registrar) -> None:
        register(registrar)

    module.coco_register_vendor = coco_register_vendor  # type: ignore[attr-defined]
    return module


@pytest.fixture
def make_plugin() -> PluginFactory:
    """Build a throw-away plugin module: ``make_plugin("acme", register_fn)``."""
    return _make_plugin


@pytest.fixture
def coco(capsys: pytest.CaptureFixture[str]) -> CocoRunner:
    """Run ``coco ARGV`` in-process and return (status, stdout, stderr)."""
    from coco_core.cli import main as cli

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


@functools.cache
def kvm_status() -> tuple[bool, str]:
    """Whether /dev/kvm is usable here, and why (computed once per session)."""
    try:
        with Kvm.open() as kvm:
            install_kick_handler()
            return usable(kvm, deadline=5.0)
    except CoCoError as exc:
        return False, str(exc)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``requires_kvm`` marker."""
    config.addinivalue_line(
        "markers", "requires_kvm: needs a /dev/kvm that can run a guest (skipped otherwise)"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip ``requires_kvm`` tests with the probe's reason when KVM is unusable."""
    if item.get_closest_marker("requires_kvm") is not None:
        ok, reason = kvm_status()
        if not ok:
            pytest.skip(f"real KVM unusable: {reason}")


@pytest.fixture(scope="session")
def kvm() -> Iterator[Kvm]:
    """An open, usable /dev/kvm (skips the test otherwise)."""
    ok, reason = kvm_status()
    if not ok:
        pytest.skip(f"real KVM unusable: {reason}")
    with Kvm.open() as handle:
        yield handle


# -- the Linux 7.2 uapi headers ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
#: where a test run keeps the headers it fetched (documented in this module's docstring)
UAPI_CACHE = ROOT / ".venv" / "cache" / "uapi72"
#: the release the tests compare against (coco_core.kernels: the newest released kernel)
UAPI_RELEASE = (7, 2)
_DEBIAN = "deb http://deb.debian.org/debian unstable main\n"
_HOW = (
    "set COCO_UAPI_INCLUDE to a folder with the Linux 7.2 linux/kvm.h (for instance "
    "`apt-get download linux-libc-dev && dpkg -x linux-libc-dev_7.2*.deb DIR`, then "
    "COCO_UAPI_INCLUDE=DIR), or run the tests once with access to Debian's archive"
)


def _include_of(tree: Path) -> Path | None:
    """The include folder of ``tree`` (it, or its ``usr/include``) holding ``linux/kvm.h``."""
    for cand in (tree, tree / "usr" / "include"):
        if (cand / "linux" / "kvm.h").is_file():
            return cand
    return None


def _release_of(include: Path) -> tuple[int, int] | None:
    """``(major, patchlevel)`` from ``linux/version.h``, or None if it does not say."""
    version_h = include / "linux" / "version.h"
    if not version_h.is_file():
        return None
    text = version_h.read_text(errors="replace")
    major = re.search(r"LINUX_VERSION_MAJOR (\d+)", text)
    minor = re.search(r"LINUX_VERSION_PATCHLEVEL (\d+)", text)
    return (int(major[1]), int(minor[1])) if major and minor else None


def _fetch_uapi(dest: Path) -> None:
    """Fetch Debian unstable's linux-libc-dev with apt-get download and unpack it with dpkg -x."""
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"'{tool}' is not on PATH")
    work = dest.parent / "uapi72-apt"
    lists = work / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    sources = work / "sources.list"
    sources.write_text(_DEBIAN)
    opts = [
        "-o",
        f"Dir::Etc::SourceList={sources}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={lists}",
    ]

    def apt(*args: str) -> None:
        done = subprocess.run(
            ["apt-get", *opts, *args],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"apt-get {args[0]} failed: {done.stderr.strip()[-300:]}")

    apt("update")
    for old in work.glob("linux-libc-dev_*.deb"):
        old.unlink()
    apt("download", "linux-libc-dev")
    (deb,) = sorted(work.glob("linux-libc-dev_*.deb"))
    staged = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staged, ignore_errors=True)
    subprocess.run(["dpkg", "-x", str(deb), str(staged)], check=True, capture_output=True)
    shutil.rmtree(dest, ignore_errors=True)
    staged.rename(dest)


def _say(config: pytest.Config, line: str) -> None:
    """One line on the terminal, past pytest's output capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.ensure_newline()
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_line(line)


class UapiMissing(Exception):
    """The Linux 7.2 uapi headers are not to be had here; the message says why and what to do."""


def find_uapi(say: Callable[[str], None], cache: Path = UAPI_CACHE) -> Path:
    """The include folder of the Linux 7.2 uapi headers (see this module's docstring).

    :param say: prints one line (that a fetch from Debian starts).
    :raises UapiMissing: none given, none cached, and fetching failed or gave another release.
    """
    wanted = ".".join(map(str, UAPI_RELEASE))
    given = os.environ.get("COCO_UAPI_INCLUDE")
    if given:
        include = _include_of(Path(given))
        if include is None:
            raise UapiMissing(f"COCO_UAPI_INCLUDE={given}: no linux/kvm.h there or in usr/include")
    else:
        include = _include_of(cache)
        if include is None:
            shown = cache.relative_to(ROOT) if cache.is_relative_to(ROOT) else cache
            say(
                f"coco tests: fetching the Linux {wanted} uapi headers "
                f"(Debian linux-libc-dev) into {shown}"
            )
            try:
                _fetch_uapi(cache)
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
                raise UapiMissing(
                    f"no Linux {wanted} uapi headers: fetching them failed ({exc}); {_HOW}"
                ) from exc
            include = _include_of(cache)
            if include is None:
                raise UapiMissing(
                    f"no Linux {wanted} uapi headers: no kvm.h in the package; {_HOW}"
                )
    release = _release_of(include)
    if release != UAPI_RELEASE:
        got = "of no stated release" if release is None else ".".join(map(str, release))
        raise UapiMissing(f"the headers in {include} are Linux {got}, not {wanted}; {_HOW}")
    return include


@pytest.fixture(scope="session")
def uapi_include(request: pytest.FixtureRequest) -> Path:
    """The include folder of the Linux 7.2 uapi headers; skips, saying why, where there are none."""
    try:
        return find_uapi(lambda line: _say(request.config, line))
    except UapiMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def header_dir(uapi_include: Path) -> Path:
    """The Linux 7.2 uapi include folder: :func:`uapi_include` under the reviewers' name."""
    return uapi_include


@pytest.fixture(scope="session")
def gcc() -> str:
    """The path of gcc (skips, saying how to get it, where there is none)."""
    found = shutil.which("gcc")
    if found is None:
        pytest.skip(
            "needs gcc to compile against the uapi headers (on Debian: apt-get install gcc)"
        )
    return found
