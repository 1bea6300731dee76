# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_snp.certs.lock: OFD shared/exclusive locks on the certificate blob."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from coco_snp.certs.lock import (
    CertificateFileError,
    CertificatesBusy,
    exclusive_update,
    read_certificates_locked,
)


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    p = tmp_path / "certs.bin"
    p.write_bytes(b"old-certs")
    return p


def test_shared_read_returns_data_and_releases(blob: Path) -> None:
    """A shared lock reads the blob; release is idempotent."""
    locked = read_certificates_locked(blob, wait=False)
    assert locked.data == b"old-certs"
    assert locked.held
    locked.release()
    locked.release()
    assert not locked.held


def test_two_shared_readers_coexist(blob: Path) -> None:
    """Shared locks from two open file descriptions do not conflict."""
    with read_certificates_locked(blob, wait=False), read_certificates_locked(blob, wait=False):
        pass


def test_update_blocks_non_blocking_reader_with_busy(blob: Path) -> None:
    """While an update holds the exclusive lock a non-blocking read raises CertificatesBusy."""
    with exclusive_update(blob) as update:
        update.write(b"new")
        with pytest.raises(CertificatesBusy, match="RETRY") as info:
            read_certificates_locked(blob, wait=False)
        assert info.value.errno_value == 11  # EAGAIN
    assert read_certificates_locked(blob, wait=False).data == b"new"


def test_reader_blocks_non_blocking_update(blob: Path) -> None:
    """While a VMM holds the shared lock a non-blocking update raises CertificatesBusy."""
    with read_certificates_locked(blob), pytest.raises(CertificatesBusy):  # noqa: SIM117
        with exclusive_update(blob, wait=False):
            pass
    with exclusive_update(blob, wait=False) as update:
        assert update.read() == b"old-certs"


def test_blocking_reader_waits_for_update_in_a_thread(blob: Path) -> None:
    """A blocking reader in another thread sees only the completed new blob."""
    seen: list[bytes] = []
    started = threading.Event()

    def vmm() -> None:
        started.set()
        with read_certificates_locked(blob, wait=True) as locked:
            seen.append(locked.data)

    with exclusive_update(blob) as update:
        update.write(b"half")
        t = threading.Thread(target=vmm)
        t.start()
        started.wait()
        time.sleep(0.1)
        assert seen == []  # still blocked on F_OFD_SETLKW
        update.write(b"new-certs-complete")
    t.join(5)
    assert seen == [b"new-certs-complete"]


def test_update_rewrites_in_place(blob: Path) -> None:
    """The inode stays the same across an update, so locks keep working."""
    inode = blob.stat().st_ino
    with exclusive_update(blob) as update:
        update.write(b"x" * 10)
    assert blob.stat().st_ino == inode
    assert blob.read_bytes() == b"x" * 10


def test_lock_conflicts_with_another_process(blob: Path) -> None:
    """A shared lock held by a child process makes a non-blocking update busy."""
    code = textwrap.dedent(f"""
        import sys
        from coco_snp.certs.lock import read_certificates_locked
        with read_certificates_locked({str(blob)!r}):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        try:
            assert child.stdout.readline().strip() == "locked"
            with pytest.raises(CertificatesBusy, match="exclusive"):  # noqa: SIM117
                with exclusive_update(blob, wait=False):
                    pass
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.wait(10) == 0
        finally:
            if child.poll() is None:
                child.kill()
    with exclusive_update(blob, wait=False):
        pass


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """Opening a missing blob raises CertificateFileError naming the path."""
    with pytest.raises(CertificateFileError, match=r"missing.bin"):
        read_certificates_locked(tmp_path / "missing.bin")


def test_create_makes_the_blob(tmp_path: Path) -> None:
    """exclusive_update(create=True) creates a missing blob."""
    p = tmp_path / "fresh.bin"
    with exclusive_update(p, create=True) as update:
        update.write(b"abc")
    assert p.read_bytes() == b"abc"
