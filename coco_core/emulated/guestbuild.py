# SPDX-License-Identifier: Apache-2.0
"""Assemble the emulated TEE's guests into flat binaries.

A guest is GNU assembler source (AT&T syntax, 64-bit) that the VMM enters in
long mode at :data:`GUEST_LOAD_GPA` (see :meth:`coco_core.kvm.vcpu.Vcpu.setup_long_mode`).
A guest is named by its stem when it is one of coco's own generic guests
(``coco_core/emulated/guest/<name>.S``), or by the path of its ``.S`` file
when a plugin ships it (``coco_snp/guest/snp_demo.S``).
``build_guest(guest)`` runs ``as`` and ``ld`` with a fixed linker script and
``objcopy -O binary``, and caches the image under a directory keyed by the
SHA-256 of the sources, the linker script and the tool command lines, so
tests and benchmarks assemble each guest once.

A source may name other sources to link with on a line of its own::

    # coco-link: doorbell

Each name is looked up next to the source that names it, then among the
generic guests, so a plugin's guest links with the core's doorbell framework.

The memory map every guest shares (all in one slot of :data:`GUEST_RAM_SIZE`
at GPA 0, identity-mapped with 2 MiB pages):

============================  ==========================================
``0x001000 .. 0x005000``      page tables and GDT (``PAGE_TABLES_GPA``)
``0x100000 ..``               the guest image (``GUEST_LOAD_GPA``)
``.. 0x300000``               the stack, growing down (``GUEST_STACK_TOP``)
``0x300000 .. 0x400000``      scratch for VMM/guest buffers (``GUEST_SCRATCH_GPA``)
============================  ==========================================
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from coco_core.errors import GuestBuildError
from coco_core.kvm.closing import Closing

if TYPE_CHECKING:
    from coco_core.kvm.system import Kvm
    from coco_core.kvm.vcpu import Vcpu
    from coco_core.kvm.vm import GuestRam, Vm

__all__ = [
    "BINUTILS",
    "GUEST_DIR",
    "GUEST_LOAD_GPA",
    "GUEST_RAM_SIZE",
    "GUEST_SCRATCH_GPA",
    "GUEST_STACK_STRIDE",
    "GUEST_STACK_TOP",
    "PAGE_TABLES_GPA",
    "BootedGuest",
    "boot_guest",
    "build_guest",
    "guest_source",
    "missing_binutils",
]

GUEST_DIR = Path(__file__).with_name("guest")
GUEST_RAM_SIZE = 0x400000
PAGE_TABLES_GPA = 0x1000
GUEST_LOAD_GPA = 0x100000
GUEST_STACK_TOP = 0x300000
GUEST_SCRATCH_GPA = 0x300000
GUEST_STACK_STRIDE = 0x10000  # vCPU n gets RSP = GUEST_STACK_TOP - n * stride

_LINKER_SCRIPT = f"""\
ENTRY(_start)
SECTIONS
{{
    . = {GUEST_LOAD_GPA:#x};
    .text : {{ *(.text.entry) *(.text .text.*) }}
    .rodata : {{ *(.rodata .rodata.*) }}
    .data : {{ *(.data .data.*) }}
    .bss : {{ *(.bss .bss.*) *(COMMON) }}
    /DISCARD/ : {{ *(.note*) *(.eh_frame*) *(.comment) }}
}}
"""
_LINK_RE = re.compile(r"^\s*#\s*coco-link:\s*(.+)$", re.MULTILINE)
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


def guest_source(guest: str | Path, *, near: Path | None = None) -> Path:
    """The ``.S`` file of ``guest``: a path, or the stem of a generic guest.

    :param near: a folder searched before :data:`GUEST_DIR` for a stem (the
        folder of the source that links with it).
    """
    if isinstance(guest, Path):
        if guest.suffix != ".S" or not guest.is_file():
            raise GuestBuildError(f"no guest source {guest} (a .S file)")
        return guest
    if not _NAME_RE.match(guest):
        raise GuestBuildError(f"guest name {guest!r} must be letters, digits and '_'")
    for folder in (near, GUEST_DIR):
        if folder is not None and (folder / f"{guest}.S").is_file():
            return folder / f"{guest}.S"
    raise GuestBuildError(f"no guest source {guest}.S in {GUEST_DIR}")


def _sources(guest: str | Path) -> list[Path]:
    order: list[Path] = []
    pending: list[tuple[str | Path, Path | None]] = [(guest, None)]
    while pending:
        name, near = pending.pop(0)
        path = guest_source(name, near=near)
        if path in order:
            continue
        order.append(path)
        for match in _LINK_RE.finditer(path.read_text()):
            pending.extend((linked, path.parent) for linked in match.group(1).split())
    return order


#: the GNU binutils programs :func:`build_guest` runs (as, ld, objcopy, in that order)
BINUTILS = ("as", "ld", "objcopy")


def missing_binutils() -> list[str]:
    """The programs of :data:`BINUTILS` that are not on ``PATH`` (empty: guests can be built)."""
    return [name for name in BINUTILS if shutil.which(name) is None]


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise GuestBuildError(
            f"'{name}' (GNU binutils) is not on PATH: it is needed to assemble the test "
            "guests (on Debian: apt-get install binutils)"
        )
    return found


def _cache_dir() -> Path:
    base = os.environ.get("COCO_GUEST_CACHE")
    if base:
        return Path(base)
    return Path(tempfile.gettempdir()) / f"coco-guests-{os.getuid()}"


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GuestBuildError(f"{what} failed ({' '.join(cmd)}):\n{proc.stderr.strip()}")


def build_guest(guest: str | Path) -> bytes:
    """Assemble ``guest`` (and what it links with) into a flat image for GUEST_LOAD_GPA."""
    sources = _sources(guest)
    name = sources[0].stem
    as_cmd = [_tool("as"), "--64"]
    ld_cmd = [_tool("ld"), "-m", "elf_x86_64", "-nostdlib", "-static", "--build-id=none"]
    objcopy_cmd = [
        _tool("objcopy"),
        "-O",
        "binary",
        "--set-section-flags",
        ".bss=alloc,load,contents",
    ]
    digest = hashlib.sha256()
    for part in (as_cmd, ld_cmd, objcopy_cmd):
        digest.update(" ".join(Path(p).name for p in part).encode())
    digest.update(_LINKER_SCRIPT.encode())
    for src in sources:
        digest.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
    cache = _cache_dir()
    cached = cache / f"{name}-{digest.hexdigest()[:24]}.bin"
    if cached.is_file():
        return cached.read_bytes()

    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"coco-guest-{name}-") as tmp:
        work = Path(tmp)
        objects = []
        for src in sources:
            obj = work / f"{src.stem}.o"
            _run([*as_cmd, "-o", str(obj), str(src)], f"assembling {src.name}")
            objects.append(str(obj))
        script = work / "guest.ld"
        script.write_text(_LINKER_SCRIPT)
        elf = work / f"{name}.elf"
        _run([*ld_cmd, "-T", str(script), "-o", str(elf), *objects], f"linking guest {name}")
        flat = work / f"{name}.bin"
        _run([*objcopy_cmd, str(elf), str(flat)], f"objcopy of guest {name}")
        image = flat.read_bytes()
        staged = cache / f".{cached.name}.{os.getpid()}"
        staged.write_bytes(image)
        os.replace(staged, cached)
    return image


@attrs.frozen
class BootedGuest(Closing):
    """A VM with a guest image loaded and vCPUs in long mode at its entry."""

    vm: Vm
    ram: GuestRam
    vcpus: tuple[Vcpu, ...]

    def close(self) -> None:
        """Close the VM (vCPUs, memory)."""
        self.vm.close()


def boot_guest(kvm: Kvm, guest: str | Path, *, nr_vcpus: int = 1) -> BootedGuest:
    """Create a VM with :data:`GUEST_RAM_SIZE` at GPA 0, load ``guest``, start vCPUs.

    Every vCPU enters the image at :data:`GUEST_LOAD_GPA` in long mode, with its
    own stack (see :data:`GUEST_STACK_STRIDE`). Set more registers with
    ``vcpu.set_regs(vcpu.get_regs().replace(...))`` before running.
    """
    image = build_guest(guest)
    vm = kvm.create_vm()
    try:
        ram = vm.add_memory(0, GUEST_RAM_SIZE)
        ram.write(GUEST_LOAD_GPA, image)
        vcpus = []
        for n in range(nr_vcpus):
            vcpu = vm.create_vcpu(n)
            vcpu.setup_long_mode(
                ram,
                GUEST_LOAD_GPA,
                GUEST_STACK_TOP - n * GUEST_STACK_STRIDE,
                page_tables=PAGE_TABLES_GPA,
            )
            vcpus.append(vcpu)
    except BaseException:
        vm.close()
        raise
    return BootedGuest(vm, ram, tuple(vcpus))
