"""The analysed ELF image: build-id, function symbols and the bytes of one function.

Reading a function's bytes straight from the file (address -> section offset) is what lets
analysis load one function as a blob at its real address instead of the whole image.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

from autotune.core.errors import BadInputError
from autotune.core.kernel import parse_build_id_notes


@dataclass(frozen=True)
class Function:
    name: str
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


class Image:
    """Function symbols and code bytes of a vmlinux (or any executable ELF)."""

    def __init__(self, path: Path, module: str = "") -> None:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        self.path = path
        self.module = module  # "" for vmlinux
        try:
            self._fh = open(path, "rb")  # noqa: SIM115 - held for the image's lifetime
            elf = ELFFile(self._fh)
        except (OSError, ELFError) as e:
            raise BadInputError(f"{path}: not a readable ELF image ({e}); pass a vmlinux with "
                                "DWARF (--kernel lab, or the -dbg package's vmlinux)") from e
        self.build_id = "unknown"
        self._sections: list[tuple[int, int, int]] = []
        funcs: dict[int, Function] = {}
        # a module (ET_REL) keeps symbols section-relative: place them at their section's
        # address (modules.relocated() gives every code section its own)
        relocatable = elf["e_type"] == "ET_REL"
        bases = [sec["sh_addr"] for sec in elf.iter_sections()]
        for sec in elf.iter_sections():
            if sec["sh_type"] == "SHT_NOTE" and self.build_id == "unknown":
                self.build_id = parse_build_id_notes(sec.data()) or "unknown"
            if sec["sh_flags"] & 0x4 and sec["sh_type"] == "SHT_PROGBITS":  # SHF_EXECINSTR
                self._sections.append((sec["sh_addr"], sec["sh_size"], sec["sh_offset"]))
            if sec["sh_type"] == "SHT_SYMTAB":
                for sym in sec.iter_symbols():  # type: ignore[attr-defined]
                    if sym["st_info"]["type"] == "STT_FUNC" and sym["st_size"] > 0:
                        addr = sym["st_value"]
                        if relocatable and isinstance(sym["st_shndx"], int):
                            addr += bases[sym["st_shndx"]]
                        if addr not in funcs or sym["st_info"]["bind"] == "STB_GLOBAL":
                            funcs[addr] = Function(sym.name, addr, sym["st_size"])
        if not funcs:
            raise BadInputError(f"{path}: no function symbols; pass an unstripped vmlinux")
        self.functions = sorted(funcs.values(), key=lambda f: f.start)
        self._starts = [f.start for f in self.functions]
        self._names: dict[str, list[Function]] = {}
        for f in self.functions:
            self._names.setdefault(f.name, []).append(f)

    def function_at(self, addr: int) -> Function | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and self.functions[i].start <= addr < self.functions[i].end:
            return self.functions[i]
        return None

    def by_name(self, name: str) -> list[Function]:
        return self._names.get(name, [])

    def read(self, addr: int, size: int) -> bytes:
        for start, length, offset in self._sections:
            if start <= addr and addr + size <= start + length:
                self._fh.seek(offset + addr - start)
                return self._fh.read(size)
        raise BadInputError(f"{self.path}: address {addr:#x} is not in an executable section")

    def code(self, func: Function) -> bytes:
        return self.read(func.start, func.size)
