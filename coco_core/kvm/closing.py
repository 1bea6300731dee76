# SPDX-License-Identifier: Apache-2.0
"""``with`` for the things that hold file descriptors: a VM, ``/dev/kvm``, a booted guest."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["Closing"]


class Closing:
    """A base whose ``with`` block ends with :meth:`close`, whatever happens inside.

    Subclasses define ``close`` (idempotent). No ``__slots__`` of its own, so it
    suits slotted attrs classes as well as plain ones.
    """

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
