# SPDX-License-Identifier: Apache-2.0
"""The upstream certificate/TCB race-avoidance protocol: OFD locks on the certificate blob.

Linux ``Documentation/virt/kvm/x86/amd-memory-encryption.rst`` (``KVM_SEV_SNP_ENABLE_REQ_CERTS``,
v7 patch 2/2; ``docs/reference/kernel-abi.md`` §3.2) describes a convention, not a
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

**How an update replaces the blob.** A lock lives on an inode, and a crash in the middle of
an in-place rewrite would leave a torn or truncated blob for every later reader. So
:func:`exclusive_update` takes the exclusive lock on the blob's *current* inode, stages the
new contents in a temporary file in the same directory (written and synced), and
only at the end of the update renames it over the path (atomic), syncs the directory and
drops the lock. Readers (:func:`read_certificates_locked`) recheck the inode after they got
the shared lock, the way QEMU's reader does (``open_certs_locked``: ``fstat``/``stat`` inode
comparison loop, "[RFC PATCH v2 3/3] i386/sev: Add KVM_EXIT_SNP_REQ_CERTS support",
M. Wang, 2025-01-20, after D. Berrangé's review): a reader that opened the old inode waits
for the update, sees the inode changed and reopens the path. A reader therefore sees the
old blob whole or the new blob whole, never a part of either; a publisher that dies mid-way
leaves the old blob in place and a stale temporary file, which the next update removes.
The firmware change (``SNP_COMMIT``, hot-load, ``SNP_VLEK_LOAD``) belongs inside the same
update: no VMM reads certificates between it and the replace.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
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
    "publish_blob",
    "read_certificates_locked",
]

# struct flock (x86_64, include/uapi/asm-generic/fcntl.h): short l_type; short l_whence;
# [2 bytes padding to 8] off_t l_start; off_t l_len; pid_t l_pid; [4 bytes padding]. 32 bytes.
_FLOCK = struct.Struct("@hhqqi4x")
assert _FLOCK.size == 32, _FLOCK.size
#: Reopen attempts when the blob keeps being replaced under a reader (our choice: an
#: update takes the lock for a whole replace, so more than a few in a row means a loop).
_REOPENS = 16


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
        # a new blob is data read by VMMs: rw-r--r-- (before the umask), never executable
        return os.open(path, flags | os.O_CLOEXEC, 0o644)
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


def _still_the_file(fd: int, path: Path) -> bool:
    """True if ``path`` still names the inode ``fd`` has open (not replaced by an update)."""
    mine = os.fstat(fd)
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)


def _locked_open(path: Path, flags: int, lock_type: int, *, wait: bool, create: bool) -> int:
    """Open ``path`` and lock it; reopen while an update replaced it under us."""
    for _ in range(_REOPENS):
        fd = _open(path, flags | (os.O_CREAT if create else 0))
        try:
            _lock(fd, lock_type, wait=wait, path=path)
            if _still_the_file(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the lock was on the replaced inode: its close drops it
    raise CertificateFileError(
        f"{path}: replaced {_REOPENS} times while opening; expected it to settle"
    )


def read_certificates_locked(path: str | Path, *, wait: bool = True) -> LockedCertificates:
    """Take a shared OFD lock on ``path`` and read it (rechecking the inode, see above).

    :param wait: block until an update finishes (``F_OFD_SETLKW``); with ``False`` an update
        in progress raises :class:`CertificatesBusy` at once (``F_OFD_SETLK``).
    :raises CertificatesBusy: the blob is exclusively locked and ``wait`` is false.
    :raises CertificateFileError: the file cannot be opened, locked or read.
    """
    p = Path(path)
    fd = _locked_open(p, os.O_RDONLY, fcntl.F_RDLCK, wait=wait, create=False)
    try:
        data = _read_all(fd)
    except BaseException:
        os.close(fd)
        raise
    return LockedCertificates(path=p, data=data, fd=fd)


@attrs.define
class CertificateUpdate:
    """Handle given to an updater inside :func:`exclusive_update`.

    :meth:`write` stages the new blob; it replaces the old one when the update ends.
    """

    path: Path
    _fd: int = attrs.field(alias="fd")
    written: bool = False
    _staged: Path | None = attrs.field(default=None, alias="staged")

    def read(self) -> bytes:
        """The blob as it will be after the update (the staged one once :meth:`write` ran)."""
        if self._staged is not None:
            return self._staged.read_bytes()
        return _read_all(self._fd)

    def write(self, data: bytes) -> None:
        """Stage ``data`` as the new blob (a temporary file beside it, written and fsynced)."""
        tmp_fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=_stage_prefix(self.path))
        tmp = Path(name)
        try:
            os.fchmod(tmp_fd, os.fstat(self._fd).st_mode & 0o7777)
            view = memoryview(bytes(data))
            offset = 0
            while offset < len(view):
                offset += os.write(tmp_fd, view[offset:])
            os.fsync(tmp_fd)
        except BaseException:
            os.close(tmp_fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(tmp_fd)
        if self._staged is not None:
            self._staged.unlink(missing_ok=True)
        self._staged = tmp
        self.written = True

    def _commit(self) -> None:
        """Rename the staged blob over the path and make the rename durable."""
        if self._staged is None:
            return
        os.rename(self._staged, self.path)
        self._staged = None
        dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _discard(self) -> None:
        if self._staged is not None:
            self._staged.unlink(missing_ok=True)
            self._staged = None


def _stage_prefix(path: Path) -> str:
    return f".{path.name}.staged-"


def _remove_stale_stages(path: Path) -> None:
    """Temporary files of publishers that died mid-way (we hold the lock: nobody writes them)."""
    for stale in path.parent.glob(_stage_prefix(path) + "*"):
        with contextlib.suppress(OSError):
            stale.unlink()


@contextlib.contextmanager
def exclusive_update(
    path: str | Path, *, wait: bool = True, create: bool = False
) -> Iterator[CertificateUpdate]:
    """Hold an exclusive OFD lock on the blob for the duration of an update.

    Do the firmware change (``SNP_COMMIT``, hot-load, ``SNP_VLEK_LOAD``) *and*
    :meth:`CertificateUpdate.write` inside the ``with`` block: the staged blob replaces the
    old one atomically when the block ends without an exception (discarded otherwise), and
    only then is the lock dropped, so no VMM reads certificates in between.

    :param wait: block until VMMs holding shared locks finish; ``False`` raises
        :class:`CertificatesBusy` instead.
    :param create: create the file if it does not exist (the lock needs an inode).
    """
    p = Path(path)
    fd = _locked_open(p, os.O_RDWR, fcntl.F_WRLCK, wait=wait, create=create)
    update = CertificateUpdate(path=p, fd=fd)
    try:
        _remove_stale_stages(p)
        try:
            yield update
        except BaseException:
            update._discard()
            raise
        update._commit()
    finally:
        try:
            _unlock(fd)
        finally:
            os.close(fd)


def publish_blob(
    path: str | Path,
    data: bytes,
    *,
    wait: bool = True,
    during: Callable[[], None] | None = None,
) -> None:
    """Replace the certificate blob at ``path`` with ``data`` under the exclusive lock.

    :param during: run under the lock before the replace (the firmware change); if it
        raises, the old blob stays.
    :raises CertificatesBusy: ``wait`` is false and a VMM holds the shared lock.
    """
    with exclusive_update(path, wait=wait, create=True) as update:
        if during is not None:
            during()
        update.write(data)
