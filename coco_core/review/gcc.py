# SPDX-License-Identifier: Apache-2.0
"""gcc as the layout oracle: measure what the C compiler makes of a layout.

Every :class:`~coco_core.layout.Layout` coco uses is rendered as C, compiled
with gcc into a program that prints ``offsetof``/``sizeof`` of every member
path :meth:`~coco_core.layout.Layout.flatten` yields, and run; the measured
map is compared with coco's own. :func:`header_offsets` and
:func:`header_defines` ask a real ``linux/kvm.h`` instead.

The program is written by :func:`coco_core.review.render.render_c`, with two
settings the compiler needs: tagged structs used as members are defined first,
and every tag gets a per-layout suffix so that two ABIs' ``struct kvm_run``
can share one program.

No gcc → :class:`CompilerUnavailable`; tests skip on it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from coco_core.errors import CompilerUnavailable, OracleError
from coco_core.layout import Layout
from coco_core.review.render import render_c

__all__ = [
    "CompilerUnavailable",
    "KvmHeader",
    "Mismatch",
    "OracleError",
    "compare_with_gcc",
    "find_header_dir",
    "find_kvm_header",
    "gcc_offsets",
    "header_defines",
    "header_offsets",
    "render_program_c",
]

_PRELUDE = """\
#include <stddef.h>
#include <stdio.h>
typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef signed short __s16;
typedef unsigned int __u32;
typedef signed int __s32;
typedef unsigned long long __u64;
typedef signed long long __s64;
typedef __u16 __le16;
typedef __u32 __le32;
typedef __u64 __le64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u64 __aligned_u64 __attribute__((aligned(8)));
typedef __u64 __aligned_le64 __attribute__((aligned(8)));
typedef __u64 __aligned_be64 __attribute__((aligned(8)));
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s8 s8;
typedef __s16 s16;
typedef __s32 s32;
typedef __s64 s64;
typedef __u8 uint8_t;
typedef __u16 uint16_t;
typedef __u32 uint32_t;
typedef __u64 uint64_t;
typedef __s8 int8_t;
typedef __s16 int16_t;
typedef __s32 int32_t;
typedef __s64 int64_t;
"""


@attrs.frozen
class Mismatch:
    """One member whose offset or size gcc disagrees with.

    ``expected`` is coco's ``(offset, size)``, ``measured`` gcc's; either is
    None when the member exists on one side only.
    """

    path: str
    expected: tuple[int, int] | None
    measured: tuple[int, int] | None

    def __str__(self) -> str:
        def fmt(v: tuple[int, int] | None) -> str:
            return "missing" if v is None else f"offset {v[0]} size {v[1]}"

        return f"{self.path}: coco {fmt(self.expected)}, gcc {fmt(self.measured)}"


# -- rendering ------------------------------------------------------------------------


def _tag_of(name: str, suffix: str) -> str:
    kind, _, tag = name.partition(" ")
    return f"{kind} {tag.replace(' ', '_')}{suffix}"


def _designator(key: str, path: str) -> str:
    return path[len(key) + 1 :]


def render_program_c(layouts: Mapping[str, Layout]) -> str:
    """A C program printing ``KEY<TAB>PATH<TAB>OFFSET<TAB>SIZE`` for every member.

    Paths are :meth:`Layout.flatten` paths with the dict key as prefix; the
    whole struct is printed as the path ``KEY`` at offset 0 with its ``sizeof``.
    """
    out = [_PRELUDE]
    body: list[str] = []
    for i, (key, lay) in enumerate(layouts.items()):
        suffix = f"__coco{i}"
        defs: dict[str, str] = {}
        top_name = lay.name if not lay.anonymous else f"{lay.kind} coco_top"
        top = attrs.evolve(lay, name=top_name)
        text = render_c(top, comment=None, tag=functools.partial(_tag_of, suffix=suffix), defs=defs)
        out.extend(defs.values())
        out.append(text)
        tname = _tag_of(top_name, suffix)
        body.append(f'\tprintf("%s\\t%s\\t0\\t%zu\\n", "{key}", "{key}", sizeof({tname}));')
        for path, _, _, _ in top.flatten(key):
            d = _designator(key, path)
            body.append(
                f'\tprintf("%s\\t%s\\t%zu\\t%zu\\n", "{key}", "{path}", '
                f"offsetof({tname}, {d}), sizeof((({tname} *)0)->{d}));"
            )
    out.append("int main(void)\n{")
    out.extend(body)
    out.append("\treturn 0;\n}\n")
    return "\n".join(out)


# -- running --------------------------------------------------------------------------


def _compiler(cc: str) -> str:
    path = shutil.which(cc)
    if path is None:
        raise CompilerUnavailable(f"C compiler {cc!r} not found on PATH")
    return path


def _compile_and_run(source: str, cc: str, flags: Iterable[str] = ()) -> str:
    compiler = _compiler(cc)
    with tempfile.TemporaryDirectory(prefix="coco-gcc-") as tmp:
        src = Path(tmp, "probe.c")
        exe = Path(tmp, "probe")
        src.write_text(source)
        cmd = [compiler, "-std=gnu11", "-O0", "-w", *flags, "-o", str(exe), str(src)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        if res.returncode != 0:
            lines = res.stderr.splitlines()
            errors = [ln for ln in lines if ": error" in ln or ": fatal error" in ln]
            first = next(iter(errors), next((ln for ln in reversed(lines) if ln.strip()), ""))
            raise OracleError(f"{cc} failed: {first}", "\n".join(errors or lines[-40:]))
        run = subprocess.run([str(exe)], capture_output=True, text=True, check=False, timeout=60)
        if run.returncode != 0:
            raise OracleError(f"probe program failed: {run.stderr.strip()}")
        return run.stdout


def gcc_offsets(
    layouts: Mapping[str, Layout], *, cc: str = "gcc"
) -> dict[str, dict[str, tuple[int, int]]]:
    """Compile every layout with gcc; return ``{key: {path: (offset, size)}}``.

    Paths are ``layout.flatten(key)`` paths; ``key`` itself maps to
    ``(0, sizeof)``.

    :raises CompilerUnavailable: ``cc`` is not installed.
    :raises OracleError: the rendered C did not compile.
    """
    if not layouts:
        return {}
    out: dict[str, dict[str, tuple[int, int]]] = {k: {} for k in layouts}
    for line in _compile_and_run(render_program_c(layouts), cc).splitlines():
        key, path, off, size = line.split("\t")
        out[key][path] = (int(off), int(size))
    return out


def compare_with_gcc(layout: Layout, prefix: str, *, cc: str = "gcc") -> list[Mismatch]:
    """Every member (and the total size) where gcc and ``layout`` disagree."""
    measured = gcc_offsets({prefix: layout}, cc=cc)[prefix]
    expected = layout.offsets(prefix)
    expected[prefix] = (0, layout.size)
    out: list[Mismatch] = []
    for path in sorted(expected.keys() | measured.keys()):
        e, m = expected.get(path), measured.get(path)
        if e != m:
            out.append(Mismatch(path, e, m))
    return out


# -- a real header --------------------------------------------------------------------


@attrs.frozen
class KvmHeader:
    """A ``kvm.h`` to probe: the file, and the include root its ``<asm/kvm.h>`` is under."""

    file: Path
    include: Path

    def flags(self) -> list[str]:
        """The ``-I`` flags: the root and, when there, Debian's ``x86_64-linux-gnu``."""
        flags = ["-I", str(self.include)]
        multiarch = self.include / "x86_64-linux-gnu"
        if multiarch.is_dir():
            flags += ["-I", str(multiarch)]
        return flags


def find_kvm_header(path: str | os.PathLike[str]) -> KvmHeader:
    """The ``kvm.h`` that ``path`` names.

    ``path`` may be the file itself (any name: ``ROOT/linux/kvm.h``, a patched copy
    ``/tmp/kvm-v8.h``), an include directory (``ROOT`` with ``linux/kvm.h``), a tree
    with ``usr/include/linux/kvm.h`` or ``include/linux/kvm.h`` (a ``dpkg -x`` of
    ``linux-libc-dev``, a kernel's ``make headers_install``), or the folder holding
    ``kvm.h`` (the ``linux/`` folder itself). The include root is the folder above
    ``linux/``, or the file's own folder when it is not in one.

    :raises OracleError: no ``kvm.h`` there.
    """
    p = Path(path)
    if p.is_file():
        root = p.parent.parent if p.parent.name == "linux" else p.parent
        return KvmHeader(p, root)
    for cand in (p, p / "usr" / "include", p / "include"):
        if (cand / "linux" / "kvm.h").is_file():
            return KvmHeader(cand / "linux" / "kvm.h", cand)
    if (p / "kvm.h").is_file():
        return KvmHeader(p / "kvm.h", p.parent if p.name == "linux" else p)
    raise OracleError(
        f"{p}: no kvm.h there (expected the kvm.h file, an include dir with linux/kvm.h, "
        "DIR/usr/include/linux/kvm.h, DIR/include/linux/kvm.h, or a folder holding kvm.h)"
    )


def find_header_dir(path: str | os.PathLike[str]) -> Path:
    """The include root of the ``kvm.h`` ``path`` names (see :func:`find_kvm_header`).

    :raises OracleError: no ``kvm.h`` there.
    """
    return find_kvm_header(path).include


def _quoted(file: Path) -> str:
    """``"FILE"`` for ``#include``: the file itself, whatever its name or folder.

    :raises OracleError: the path holds a ``"`` or a newline (C has no escape there).
    """
    text = str(file.resolve())
    if '"' in text or "\n" in text:
        raise OracleError(f"{text!r}: a path with '\"' or a newline cannot be #included")
    return f'"{text}"'


_ERR_LINE = re.compile(r"probe\.c:(\d+):\d+: error")


def _probe_lines(
    header_dir: str | os.PathLike[str], lines: dict[str, str], cc: str
) -> dict[str, str]:
    """Compile one printf line per key against the header; drop lines gcc rejects.

    Returns ``{key: printed value}`` for the lines that compiled.
    """
    header = find_kvm_header(header_dir)
    flags = header.flags()
    keys = list(lines)
    for _ in range(len(keys) + 1):
        head = f"#include <stddef.h>\n#include <stdio.h>\n#include {_quoted(header.file)}\n"
        head += "int main(void)\n{\n"
        first = head.count("\n") + 1
        src = head + "\n".join(lines[k] for k in keys) + "\n\treturn 0;\n}\n"
        try:
            stdout = _compile_and_run(src, cc, flags)
        except OracleError as exc:
            bad = {int(n) - first for n in _ERR_LINE.findall(exc.output)}
            bad = {b for b in bad if 0 <= b < len(keys)}
            if not bad:
                raise
            keys = [k for i, k in enumerate(keys) if i not in bad]
            continue
        out: dict[str, str] = {}
        for ln in stdout.splitlines():
            k, _, v = ln.partition("\t")
            out[k] = v
        return out
    raise OracleError("could not compile the header probe")


def header_offsets(
    header_dir: str | os.PathLike[str], paths: Iterable[str], *, cc: str = "gcc"
) -> dict[str, tuple[int, int] | None]:
    """``offsetof``/``sizeof`` of each path in the real header; None if it has no such member.

    A path is ``STRUCT.member.member`` as C writes it (``kvm_run.tdx.get_quote.gpa``);
    its first component names ``struct STRUCT``.
    """
    lines: dict[str, str] = {}
    for path in paths:
        struct, _, d = path.partition(".")
        t = f"struct {struct}"
        if not d:
            lines[path] = f'\tprintf("%s\\t0 %zu\\n", "{path}", sizeof({t}));'
        else:
            lines[path] = (
                f'\tprintf("%s\\t%zu %zu\\n", "{path}", offsetof({t}, {d}), '
                f"sizeof((({t} *)0)->{d}));"
            )
    got = _probe_lines(header_dir, lines, cc)
    out: dict[str, tuple[int, int] | None] = {}
    for path in lines:
        v = got.get(path)
        if v is None:
            out[path] = None
        else:
            off, size = v.split()
            out[path] = (int(off), int(size))
    return out


def header_defines(
    header_dir: str | os.PathLike[str], names: Iterable[str], *, cc: str = "gcc"
) -> dict[str, int | None]:
    """The value of each ``#define`` in the real header; None if undefined or not an integer."""
    wanted = list(dict.fromkeys(names))
    got = _probe_defines(header_dir, wanted, cc)
    return {n: got.get(n) for n in wanted}


def _probe_defines(header_dir: str | os.PathLike[str], names: list[str], cc: str) -> dict[str, int]:
    header = find_kvm_header(header_dir)
    flags = header.flags()
    keep = list(names)
    for _ in range(len(names) + 1):
        parts = ["#include <stdio.h>", f"#include {_quoted(header.file)}", "int main(void)", "{"]
        index: dict[int, str] = {}
        for n in keep:
            parts.append(f"#ifdef {n}")
            index[len(parts) + 1] = n
            parts.append(f'\tprintf("%s\\t%lld\\n", "{n}", (long long)({n}));')
            parts.append("#endif")
        parts += ["\treturn 0;", "}", ""]
        try:
            stdout = _compile_and_run("\n".join(parts), cc, flags)
        except OracleError as exc:
            bad = {index.get(int(n)) for n in _ERR_LINE.findall(exc.output)}
            bad.discard(None)
            if not bad:
                raise
            keep = [n for n in keep if n not in bad]
            continue
        out: dict[str, int] = {}
        for ln in stdout.splitlines():
            k, _, v = ln.partition("\t")
            out[k] = int(v)
        return out
    raise OracleError("could not compile the #define probe")
