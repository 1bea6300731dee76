# SPDX-License-Identifier: Apache-2.0
"""The exception types of coco.

Every error coco raises on purpose derives from :class:`CoCoError`. Messages
name the field, the value and what was expected, so a user can act on them
without reading code; the ``coco`` command prints them as one line and exits
non-zero.
"""

from __future__ import annotations

__all__ = ["CoCoError", "ConfigurationError", "DecodeError", "LayoutError", "RegistrationError"]


class CoCoError(Exception):
    """Base class of every error coco raises on purpose."""


class LayoutError(CoCoError):
    """A declared struct layout disagrees with the C ABI or with itself."""


class RegistrationError(CoCoError):
    """A plugin registered something inconsistent (duplicate exit, bad error space, ...)."""


class DecodeError(CoCoError):
    """Bytes could not be decoded as the structure they claim to be."""


class ConfigurationError(CoCoError):
    """The embedder asked for something this host, kernel or ABI cannot do."""
