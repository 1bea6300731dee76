# SPDX-License-Identifier: Apache-2.0
"""Plain-text and Markdown renderers shared by the CLI commands (80 columns)."""

from __future__ import annotations

from collections.abc import Sequence

from coco_core.errorspace import ErrorSpace
from coco_core.status import CoCoStatus

__all__ = ["render_space", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool) -> str:
    """A table as Markdown, or as aligned plain text for an 80-column mail."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()]
    lines += [fmt.format(*r).rstrip() for r in rows]
    return "\n".join(lines)


def render_space(space: ErrorSpace, *, markdown: bool) -> str:
    """One error space: its statuses, raw values and names, then every code."""
    head = f"{space.id}: {space.title}"
    meta = f"width {space.width} bits; lands in: {space.landing.value}"
    if space.kernel_accepts is not None:
        meta += "; KVM accepts only: " + ", ".join(
            space.names.get(v, hex(v)) for v in sorted(space.kernel_accepts)
        )
    rows = [
        [status, f"{raw:#x}", name + (" *" if fb else "")] for status, raw, name, fb in space.rows()
    ]
    enc = table(["neutral status", "raw", "name (* = fallback)"], rows, markdown=markdown)
    codes = [
        [f"{raw:#x}", name, _status_name(space, raw)] for raw, name in sorted(space.names.items())
    ]
    dec = table(["raw", "name", "decodes to"], codes, markdown=markdown)
    src = f"source: {space.source}" if space.source else ""
    if markdown:
        return f"### `{space.id}`\n\n{space.title}\n\n{meta}\n\n{enc}\n\n{dec}\n\n{src}".rstrip()
    head, meta, src = (_wrap80(x) for x in (head, meta, src))
    return f"{head}\n{meta}\n\n{enc}\n\n{dec}\n{src}".rstrip()


def _wrap80(text: str) -> str:
    """Wrap prose for an 80-column mail; continuation lines are indented."""
    import textwrap

    return "\n".join(textwrap.wrap(text, 80, subsequent_indent="  ", break_on_hyphens=False))


def _status_name(space: ErrorSpace, raw: int) -> str:
    meant = space.decode(raw)
    return meant.name if isinstance(meant, CoCoStatus) else str(meant)
