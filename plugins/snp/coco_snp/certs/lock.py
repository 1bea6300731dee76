# SPDX-License-Identifier: Apache-2.0
"""The upstream certificate/TCB race-avoidance protocol: OFD locks on the certificate blob.

Linux ``Documentation/virt/kvm/x86/amd-memory-encryption.rst`` (``KVM_SEV_SNP_ENABLE_REQ_CERTS``,
v7 patch 2/2; ``reference/kernel-abi.md`` §3.2) describes a convention, not a
kernel mechanism:

* the VMM takes a **shared** open-file-description lock (``fcntl(F_OFD_SETLK)``) on the
  certificate blob file before reading it, writes the table into guest memory, sets
  ``kvm_run.immediate_exit = 1`` and calls ``KVM_RUN``; KVM completes the request (issues
  ``SNP_GUEST_REQUEST``, so the firmware signs now) and returns ``-EINTR`` before entering the
  guest; only then does the VMM drop the lock;
* tools that change the endorsement key or TCB (``SNP_COMMIT``, ``SNP_SET_CONFIG``,
  ``SNP_VLEK_LOAD``, firmware hot-load) hold an **exclusive** lock on the blob for the whole
  update.

OFD locks (``fcntl(2)``, "Open file description locks") belong to the open file description,
so two ``open()`` calls conflict even inside one process or thread, and ``l_pid`` must be 0.

**Why updates rewrite the file in place.** A lock lives on an inode. The usual "write a temp
file and ``rename()`` it over" would give the blob a *new* inode: a VMM opening the path after
the rename locks the new inode and does not conflict with the updater's exclusive lock on the
old one, while the updater may still be mid-way through ``SNP_COMMIT``. The VMMs follow the
documented protocol and lock the blob file itself, so a sidecar lock file would not exclude
them either. Hence :func:`exclusive_update` opens the existing file, takes the exclusive lock
and rewrites it in place (truncate, write, ``fsync``); readers holding the shared lock never
see a partial write, because the writer cannot start until they are done and they cannot
start until it is done. The cost: a crash mid-write leaves a torn blob (the lock dies with the
process); updaters should keep the previous blob to restore it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import attrs

from coco_core.plugin import CoCoError

__all__ = [
    "CertificateFileError",
    "CertificateUpdate",
    "CertificatesBusy",
    "LockedCertificates",
    "exclusive_update",
    "read_certificates_locked",
]

# struct flock (x86_64, include/uapi/asm-generic/fcntl.h): short l_type; short l_whence;
# [2 bytes padding to 8] off_t l_start; off_t l_len; pid_t l_pid; [4 bytes padding]. 32 bytes.
_FLOCK = struct.Struct("@hhqqi4x")
assert _FLOCK.size == 32, _FLOCK.size


class CertificateFileError(CoCoError):
    """The certificate blob file cannot be opened, locked or read."""


class CertificatesBusy(CoCoError):
    """The blob is locked by an update; a request handler should answer RETRY (EAGAIN).

    KVM maps ``ret = EAGAIN`` to ``SNP_GUEST_VMM_ERR_BUSY`` (kernel-abi.md §3.2), and the guest
    retries without consuming a message sequence number.
    """

    errno_value: int = errno.EAGAIN


def _lock(fd: int, lock_type: int, *, wait: bool, path: Path) -> None:
    # Whole file: l_whence SEEK_SET, l_start 0, l_len 0; l_pid must be 0 for OFD locks.
    arg = _FLOCK.pack(lock_type, os.SEEK_SET, 0, 0, 0)
    cmd = fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK
    try:
        fcntl.fcntl(fd, cmd, arg)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES) and not wait:
            what = "shared" if lock_type == fcntl.F_RDLCK else "exclusive"
            raise CertificatesBusy(
                f"{path}: {what} OFD lock unavailable; the certificates are being updated "
                "(answer RETRY/EAGAIN and let the guest retry)"
            ) from None
        raise CertificateFileError(
            f"{path}: fcntl(F_OFD_SETLK{'W' if wait else ''}) failed: {e.strerror}"
        ) from None


def _unlock(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, 0, 0, 0))


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 16, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def _open(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError as e:
        raise CertificateFileError(f"{path}: cannot open certificate blob: {e.strerror}") from None


@attrs.define
class LockedCertificates:
    """The blob contents plus the shared lock that keeps them current.

    Hold it until KVM has completed the request (the ``immediate_exit`` ``KVM_RUN`` returned
    ``EINTR``), then :meth:`release`. Usable as a context manager; release is idempotent.
    """

    path: Path
    data: bytes = attrs.field(repr=False)
    _fd: int | None = attrs.field(alias="fd")

    @property
    def held(self) -> bool:
        """True until :meth:`release`."""
        return self._fd is not None

    def release(self) -> None:
        """Drop the shared lock and close the file (safe to call twice)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                _unlock(fd)
            finally:
                os.close(fd)

    def __enter__(self) -> LockedCertificates:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def read_certificates_locked(path: str | Path, *, wait: bool = True) -> LockedCertificates:
    """Take a shared OFD lock on ``path`` and read it.

    :param wait: block until an update finishes (``F_OFD_SETLKW``); with ``False`` an update
        in progress raises :class:`CertificatesBusy` at once (``F_OFD_SETLK``).
    :raises CertificatesBusy: the blob is exclusively locked and ``wait`` is false.
    :raises CertificateFileError: the file cannot be opened, locked or read.
    """
    p = Path(path)
    fd = _open(p, os.O_RDONLY)
    try:
        _lock(fd, fcntl.F_RDLCK, wait=wait, path=p)
        data = _read_all(fd)
    except BaseException:
        os.close(fd)
        raise
    return LockedCertificates(path=p, data=data, fd=fd)


@attrs.define
class CertificateUpdate:
    """Handle given to an updater inside :func:`exclusive_update`."""

    path: Path
    _fd: int = attrs.field(alias="fd")
    written: bool = False

    def read(self) -> bytes:
        """The current blob."""
        return _read_all(self._fd)

    def write(self, data: bytes) -> None:
        """Replace the blob in place (truncate, write, fsync) under the exclusive lock."""
        os.ftruncate(self._fd, 0)
        view = memoryview(bytes(data))
        offset = 0
        while offset < len(view):
            offset += os.pwrite(self._fd, view[offset:], offset)
        os.fsync(self._fd)
        self.written = True


@contextlib.contextmanager
def exclusive_update(
    path: str | Path, *, wait: bool = True, create: bool = False
) -> Iterator[CertificateUpdate]:
    """Hold an exclusive OFD lock on the blob for the duration of an update.

    Do the firmware change (``SNP_COMMIT``, hot-load, ``SNP_VLEK_LOAD``) *and* the certificate
    rewrite inside the ``with`` block, so no VMM can read certificates in between.

    :param wait: block until VMMs holding shared locks finish; ``False`` raises
        :class:`CertificatesBusy` instead.
    :param create: create the file if it does not exist (the lock needs a stable inode).
    """
    p = Path(path)
    fd = _open(p, os.O_RDWR | (os.O_CREAT if create else 0))
    try:
        _lock(fd, fcntl.F_WRLCK, wait=wait, path=p)
        try:
            yield CertificateUpdate(path=p, fd=fd)
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
