"""Loadable modules: which ones hold a seed's uses, and each as an analysable image.

Many constants (NFS, btrfs, bfq, ipvs ...) are compiled only into modules of the cloud
build; their DWARF is in the same ``-dbg`` package. A module is a relocatable object whose
code sections all start at address 0, so a copy is made with each code section moved to
its own address (``objcopy --change-section-address``): llvm-dwarfdump then resolves the
line table's relocations to distinct addresses and symbols map one to one. The copy and
its parsed line table are cached per build-id like vmlinux's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from analysis import linetable
from analysis.elfimage import Image
from analysis.seeds import Seed
from autotune.core.errors import EnvironmentProblem

SECTION_STRIDE = 1 << 28


def candidates_for(seeds: list[Seed], missing: set[str], debug_root: Path) -> list[Path]:
    """Module debug files under the directories of the C files whose uses vmlinux lacks."""
    dirs = {str(Path(u.file).parent) for s in seeds for u in s.uses
            if u.file.endswith(".c") and f"{u.file}:{u.line}" in missing}
    found: list[Path] = []
    for d in sorted(dirs):
        where = debug_root / "kernel" / d
        if where.is_dir():
            found += sorted(p for p in where.iterdir() if p.suffix == ".ko")
    return found


def relocated(ko: Path, cache: Path) -> Path:
    """A cached copy of ``ko`` whose code sections sit at distinct addresses."""
    out = cache / "modules" / ko.name
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    from elftools.elf.elffile import ELFFile

    with open(ko, "rb") as fh:
        names = [s.name for s in ELFFile(fh).iter_sections()
                 if s["sh_flags"] & 0x4 and s["sh_type"] == "SHT_PROGBITS"]
    args: list[str] = []
    for k, name in enumerate(names, 1):
        args += ["--change-section-address", f"{name}={k * SECTION_STRIDE:#x}"]
    tool = shutil.which("objcopy")
    if tool is None:
        raise EnvironmentProblem("objcopy not found: apt-get install binutils")
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    res = subprocess.run([tool, *args, str(ko), str(tmp)], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        raise EnvironmentProblem(f"objcopy {ko.name} failed: {res.stderr.strip()[-200:]}")
    os.replace(tmp, out)
    return out


def module_image(ko: Path, cache: Path) -> tuple[Image, linetable.LineTable]:
    """(image, line table) of one module, both cached under ``cache``."""
    copy = relocated(ko, cache)
    name = ko.name.removesuffix(".ko")
    table = linetable.line_table(copy, cache / "modules" / f"{name}.lines")
    return Image(copy, module=name), table
