# SPDX-License-Identifier: Apache-2.0
"""Every exception coco raises on purpose, in one place.

All derive from :class:`CoCoError`. Messages name the field, the value and
what was expected, so a user can act on them without reading code; the
``coco`` command prints them as one line and exits non-zero.

The rooms raise them: the registry (:class:`RegistrationError`,
:class:`ConfigurationError`), error spaces (:class:`CodeError`), exits
(:class:`CompletionError`), the kernel model (:class:`KvmRunRejected`), the
KVM backend (:class:`KvmUnavailable`, :class:`KvmRunError`,
:class:`RunDeadlineExceeded`, :class:`GuestMemoryError`), the emulated TEE
(:class:`GuestBuildError`, :class:`UnexpectedExit`), the reviewers' tooling
(:class:`CParseError`, :class:`CompilerUnavailable`, :class:`OracleError`)
and the conformance kit (:class:`GoldenError`).
"""

from __future__ import annotations

import errno

from coco_core.status import CoCoStatus

__all__ = [
    "CParseError",
    "CoCoError",
    "CodeError",
    "CompilerUnavailable",
    "CompletionError",
    "ConfigurationError",
    "DecodeError",
    "GoldenError",
    "GuestBuildError",
    "GuestMemoryError",
    "KvmRunError",
    "KvmRunRejected",
    "KvmUnavailable",
    "LayoutError",
    "OracleError",
    "RegistrationError",
    "RunDeadlineExceeded",
    "UnexpectedExit",
]


class CoCoError(Exception):
    """Base class of every error coco raises on purpose."""


# -- the model and the plugin contract ----------------------------------------------------


class LayoutError(CoCoError):
    """A declared struct layout disagrees with the C ABI or with itself."""


class RegistrationError(CoCoError):
    """A plugin registered something inconsistent (duplicate exit, bad error space, ...)."""


class DecodeError(CoCoError):
    """Bytes could not be decoded as the structure they claim to be."""


class ConfigurationError(CoCoError):
    """The embedder asked for something this host, kernel or ABI cannot do."""


class CodeError(CoCoError):
    """A raw code was used where its space cannot carry it.

    :param space: the error-space id.
    :param raw: the raw value, if there was one.
    :param status: the neutral status it was meant to carry, if known.
    """

    def __init__(
        self, space: str, raw: int | None, status: CoCoStatus | None, message: str
    ) -> None:
        super().__init__(message)
        self.space = space
        self.raw = raw
        self.status = status


class CompletionError(CoCoError):
    """An exit was completed twice, or with RETRY after it was handed on."""


class KvmRunRejected(CoCoError):
    """``KVM_RUN`` would fail: the completion userspace wrote is one KVM rejects.

    :param err: the errno ``KVM_RUN`` would fail with (EINVAL by default).
    """

    def __init__(self, message: str, err: int = errno.EINVAL) -> None:
        super().__init__(message)
        self.errno = err


# -- the KVM backend and the emulated TEE -------------------------------------------------


class KvmUnavailable(ConfigurationError):
    """``/dev/kvm`` is missing, not accessible, or not usable on this host."""


class KvmRunError(CoCoError):
    """``KVM_RUN`` or a vCPU ioctl failed with an errno no loop can handle.

    :param err: the errno.
    """

    def __init__(self, message: str, err: int) -> None:
        super().__init__(message)
        self.errno = err


class RunDeadlineExceeded(CoCoError):
    """A guest did not reach the expected exit within its time bound."""


class GuestMemoryError(CoCoError):
    """A guest-physical range is not wholly inside guest memory."""


class GuestBuildError(ConfigurationError):
    """A guest could not be assembled (missing tool, bad source, unknown name)."""


class UnexpectedExit(CoCoError):
    """The guest made an exit the doorbell router does not handle."""


# -- the reviewers' tooling and the conformance kit ---------------------------------------


class CParseError(DecodeError):
    """C text coco cannot read; the message names the file, the line and what was expected.

    :param line: the 1-based line of the text, if known.
    :param source: the file the text came from, if known (``FILE:LINE: message``).
    """

    def __init__(self, message: str, line: int | None = None, source: str | None = None) -> None:
        where = f"line {line}" if line is not None else ""
        if source:
            where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.line = line
        self.source = source

    def located(self, source: str) -> CParseError:
        """The same error, naming ``source`` as its file (unless it names one already)."""
        return self if self.source else CParseError(self.message, self.line, source)


class CompilerUnavailable(CoCoError):
    """No C compiler to ask; tests that need one skip."""


class OracleError(CoCoError):
    """The generated program did not compile or run.

    :param message: one line: the first error gcc printed.
    :param output: gcc's error lines, for a caller that reads them (the probes drop the
        lines gcc rejects).
    """

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class GoldenError(CoCoError):
    """A golden file is malformed; the message names the file and the field."""
