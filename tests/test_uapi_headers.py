# SPDX-License-Identifier: Apache-2.0
"""The one way the tests find the Linux 7.2 uapi headers: given, cached, or fetched and said so."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent


def _conftest() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_coco_tests_conftest", HERE / "conftest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


CONF = _conftest()


def _tree(root: Path, major: int, minor: int) -> Path:
    include = root / "usr" / "include"
    (include / "linux").mkdir(parents=True)
    (include / "linux" / "kvm.h").write_text("/* kvm.h */\n")
    (include / "linux" / "version.h").write_text(
        f"#define LINUX_VERSION_MAJOR {major}\n#define LINUX_VERSION_PATCHLEVEL {minor}\n"
    )
    return include


def test_given_folder_is_used_as_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """COCO_UAPI_INCLUDE naming a dpkg -x tree gives its usr/include, fetching nothing."""
    include = _tree(tmp_path, 7, 2)
    monkeypatch.setenv("COCO_UAPI_INCLUDE", str(tmp_path))
    said: list[str] = []
    assert CONF.find_uapi(said.append, tmp_path / "cache") == include
    assert said == []


def test_given_folder_without_kvm_h_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COCO_UAPI_INCLUDE naming a folder without linux/kvm.h is refused, naming it."""
    monkeypatch.setenv("COCO_UAPI_INCLUDE", str(tmp_path))
    with pytest.raises(CONF.UapiMissing, match=f"COCO_UAPI_INCLUDE={tmp_path}: no linux/kvm.h"):
        CONF.find_uapi(print, tmp_path / "cache")


def test_cached_headers_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers already in the cache are used without fetching."""
    monkeypatch.delenv("COCO_UAPI_INCLUDE", raising=False)
    include = _tree(tmp_path / "cache", 7, 2)
    monkeypatch.setattr(CONF, "_fetch_uapi", lambda dest: pytest.fail("fetched"))
    assert CONF.find_uapi(print, tmp_path / "cache") == include


def test_fetch_says_so_and_fills_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty cache is filled by a fetch announced with one line."""
    monkeypatch.delenv("COCO_UAPI_INCLUDE", raising=False)
    monkeypatch.setattr(CONF, "_fetch_uapi", lambda dest: _tree(dest, 7, 2))
    said: list[str] = []
    got = CONF.find_uapi(said.append, tmp_path / "cache")
    assert got == tmp_path / "cache" / "usr" / "include"
    assert len(said) == 1
    assert said[0].startswith("coco tests: fetching the Linux 7.2 uapi headers (Debian")


def test_offline_fetch_names_what_is_missing_and_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed fetch says the headers are missing, why, and how to provide them."""
    monkeypatch.delenv("COCO_UAPI_INCLUDE", raising=False)

    def offline(dest: Path) -> None:
        raise RuntimeError("apt-get update failed: Could not resolve 'deb.debian.org'")

    monkeypatch.setattr(CONF, "_fetch_uapi", offline)
    with pytest.raises(CONF.UapiMissing) as info:
        CONF.find_uapi(print, tmp_path / "cache")
    text = str(info.value)
    assert text.startswith("no Linux 7.2 uapi headers: fetching them failed (apt-get update")
    assert "set COCO_UAPI_INCLUDE" in text
    assert "apt-get download linux-libc-dev" in text


def test_headers_of_another_release_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Headers of Linux 7.3 (Debian moved on) are not taken for 7.2."""
    monkeypatch.setenv("COCO_UAPI_INCLUDE", str(tmp_path))
    _tree(tmp_path, 7, 3)
    with pytest.raises(CONF.UapiMissing, match=r"are Linux 7\.3, not 7\.2"):
        CONF.find_uapi(print, tmp_path / "cache")
