"""``sizeof(struct X)`` from the build's DWARF, for defaults written in terms of a type's size.

A default such as ``PAGE_SIZE / sizeof(struct xfs_inobt_rec_incore)`` is a compile-time
constant that the source text alone cannot fold (the layout depends on the config and the
ABI), but the ``-dbg`` package records every type's ``DW_AT_byte_size``. ``llvm-dwarfdump
--name`` finds one type in a module's debug file in about 2 s (vmlinux: about 10 s), so the
module built from the seed's directory is searched first and vmlinux only after it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

_TAGS = {"struct": ("DW_TAG_structure_type",), "union": ("DW_TAG_union_type",),
         "": ("DW_TAG_structure_type", "DW_TAG_union_type", "DW_TAG_base_type")}
_DIE = re.compile(r"^0x[0-9a-f]+: (DW_TAG_\w+)\n((?:\s+DW_AT_.*\n?)*)", re.M)
_SIZE = re.compile(r"DW_AT_byte_size\s+\((0x[0-9a-f]+|\d+)\)")


class TypeSizes:
    """Byte sizes of named types, looked up in the debug files that built a source file."""

    def __init__(self, vmlinux: Path, modules_debug: Path | None) -> None:
        self.vmlinux = vmlinux
        self.modules_debug = modules_debug

    def files_for(self, source_file: str) -> list[Path]:
        """The modules built from ``source_file``'s directory, then vmlinux."""
        mods: list[Path] = []
        if self.modules_debug is not None:
            where = self.modules_debug / "kernel" / Path(source_file).parent
            if where.is_dir():
                mods = sorted(p for p in where.iterdir() if p.suffix == ".ko")
        return [*mods, self.vmlinux]

    def size(self, kind: str, name: str, source_file: str) -> int | None:
        """sizeof(``kind`` ``name``) (kind: "struct", "union" or "" for a base type), or None."""
        for path in self.files_for(source_file):
            found = _lookup(path, kind, name)
            if found is not None:
                return found
        return None


@lru_cache(maxsize=64)
def _lookup(path: Path, kind: str, name: str) -> int | None:
    tool = shutil.which("llvm-dwarfdump")
    if tool is None:
        return None  # the default stays unfolded; its reason names the sizeof
    out = subprocess.run([tool, f"--name={name}", str(path)], capture_output=True, text=True,
                         check=False).stdout
    sizes = {int(m.group(1), 0) for d in _DIE.finditer(out) if d.group(1) in _TAGS[kind]
             if (m := _SIZE.search(d.group(2)))}
    # one layout across compile units, or the name means different types: no answer
    return sizes.pop() if len(sizes) == 1 else None
