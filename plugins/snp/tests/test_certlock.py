# SPDX-License-Identifier: Apache-2.0
"""Tests for coco_snp.certs.lock: OFD shared/exclusive locks on the certificate blob."""

from __future__ import annotations

import hashlib
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
    publish_blob,
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


def test_update_replaces_the_blob_whole(blob: Path) -> None:
    """An update renames a fully written file over the blob: new inode, same mode, no leftovers."""
    blob.chmod(0o640)
    inode = blob.stat().st_ino
    with exclusive_update(blob) as update:
        update.write(b"x" * 10)
        assert blob.read_bytes() == b"old-certs"  # nothing visible before the update ends
    assert blob.stat().st_ino != inode
    assert blob.read_bytes() == b"x" * 10
    assert blob.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in blob.parent.iterdir()) == ["certs.bin"]


def test_failed_update_keeps_the_old_blob(blob: Path) -> None:
    """An exception inside the update (a failed SNP_COMMIT) discards the staged blob."""

    def commit() -> None:
        with exclusive_update(blob) as update:
            update.write(b"new")
            raise RuntimeError("SNP_COMMIT failed")

    with pytest.raises(RuntimeError, match="SNP_COMMIT"):
        commit()
    assert blob.read_bytes() == b"old-certs"
    assert sorted(p.name for p in blob.parent.iterdir()) == ["certs.bin"]


def _version(n: int) -> bytes:
    """Blob number ``n``: its length, its SHA-256 and a body of 1..64 KiB, checkable alone."""
    body = bytes([n % 251]) * (1024 * (1 + n % 64))
    return len(body).to_bytes(8, "little") + hashlib.sha256(body).digest() + body


def _whole(data: bytes) -> bool:
    size = int.from_bytes(data[:8], "little")
    body = data[40:]
    return len(body) == size and hashlib.sha256(body).digest() == data[8:40]


def test_readers_holding_the_shared_lock_see_only_whole_blobs(tmp_path: Path) -> None:
    """Reader threads and a reader process, looping with the shared lock, never see a torn blob."""
    blob = tmp_path / "certs.bin"
    blob.write_bytes(_version(0))
    stop = threading.Event()
    seen: list[bytes] = []
    bad: list[bytes] = []

    def vmm() -> None:
        while not stop.is_set():
            with read_certificates_locked(blob) as locked:
                (seen if _whole(locked.data) else bad).append(locked.data[:40])
                time.sleep(0.001)  # hold it, as a VMM does until KVM completed the request

    code = textwrap.dedent(f"""
        import hashlib, sys, time
        from coco_snp.certs.lock import read_certificates_locked
        end, torn, reads = time.monotonic() + 1.5, 0, 0
        while time.monotonic() < end:
            with read_certificates_locked({str(blob)!r}) as locked:
                d = locked.data
                reads += 1
                size = int.from_bytes(d[:8], "little")
                torn += len(d[40:]) != size or hashlib.sha256(d[40:]).digest() != d[8:40]
        print(reads, torn)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    readers = [threading.Thread(target=vmm) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for n in range(1, 40):
            publish_blob(blob, _version(n))
    finally:
        stop.set()
        for t in readers:
            t.join(10)
        out, _ = child.communicate(timeout=30)
    reads, torn = map(int, out.split())
    assert bad == []
    assert torn == 0
    assert seen
    assert reads > 0
    assert blob.read_bytes() == _version(39)


def test_publisher_crash_mid_write_leaves_the_old_blob(blob: Path) -> None:
    """A publisher killed half-way through writing leaves the old blob whole for every reader."""
    code = textwrap.dedent(f"""
        import os
        from coco_snp.certs import lock
        real_write, real_pwrite = os.write, os.pwrite
        def crash(fd, data, *rest):
            (real_pwrite if rest else real_write)(fd, bytes(data)[: len(data) // 2], *rest)
            os._exit(3)  # the publisher dies half-way through its write
        os.write, os.pwrite = crash, crash
        with lock.exclusive_update({str(blob)!r}) as update:
            update.write(b"N" * 100000)
    """)
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=30).returncode == 3
    with read_certificates_locked(blob, wait=False) as locked:
        assert locked.data == b"old-certs"
    publish_blob(blob, b"next")  # the next publisher cleans up after the dead one
    assert blob.read_bytes() == b"next"
    assert sorted(p.name for p in blob.parent.iterdir()) == ["certs.bin"]


def test_reader_that_opened_the_old_inode_reopens_the_new_one(blob: Path) -> None:
    """A reader blocked on the old inode's lock gets the new blob after the replace."""
    got: list[bytes] = []
    with exclusive_update(blob) as update:
        update.write(b"replaced")
        t = threading.Thread(target=lambda: got.append(read_certificates_locked(blob).data))
        t.start()
        time.sleep(0.1)
        assert got == []
    t.join(5)
    assert got == [b"replaced"]


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
