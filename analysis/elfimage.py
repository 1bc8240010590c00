"""The analysed ELF image: build-id, function symbols and the bytes of one function.

Reading a function's bytes straight from the file (address -> section offset) is what lets
analysis load one function as a blob at its real address instead of the whole image.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from autotune.core.errors import BadInputError
from autotune.core.kernel import parse_build_id_notes

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile


@dataclass(frozen=True)
class Function:
    name: str
    start: int
    size: int
    # False when the image's ftrace table has no entry in the function (``notrace``): the
    # kernel's kprobe events then refuse every address in it (CONFIG_KPROBE_EVENTS_ON_NOTRACE
    # is off in distribution kernels), so no SIE probe can ever attach there.
    traced: bool = True

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
        marks: dict[str, int] = {}
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
                    elif sym.name in ("__start_mcount_loc", "__stop_mcount_loc"):
                        marks[sym.name] = sym["st_value"]
        if not funcs:
            raise BadInputError(f"{path}: no function symbols; pass an unstripped vmlinux")
        sites = _ftrace_sites(elf, marks, bases) if not relocatable or elf.get_section_by_name(
            "__mcount_loc") else None
        if sites:
            funcs = {a: replace(f, traced=_any_within(sites, f.start, f.end))
                     for a, f in funcs.items()}
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


def _ftrace_sites(elf: ELFFile, marks: dict[str, int], bases: list[int]) -> list[int]:
    """Sorted addresses of the image's ftrace call sites (its ``__mcount_loc`` table).

    vmlinux keeps the table inside its init data between two linker symbols; a module keeps
    a ``__mcount_loc`` section whose entries are relocations against its code sections.
    An empty list means the image carries no table: nothing is then judged notrace.
    """
    if "__start_mcount_loc" in marks and "__stop_mcount_loc" in marks:
        start, stop = marks["__start_mcount_loc"], marks["__stop_mcount_loc"]
        for sec in elf.iter_sections():
            base = sec["sh_addr"]
            if sec["sh_type"] == "SHT_PROGBITS" and base <= start and stop <= base + sec["sh_size"]:
                data = sec.data()[start - base:stop - base]
                return sorted(int.from_bytes(data[i:i + 8], "little")
                              for i in range(0, len(data) - 7, 8))
        return []
    rela = elf.get_section_by_name(".rela__mcount_loc")
    if rela is None:
        return []
    symtab = elf.get_section(rela["sh_link"])
    out = []
    for r in rela.iter_relocations():  # type: ignore[attr-defined]
        sym = symtab.get_symbol(r["r_info_sym"])  # type: ignore[attr-defined]
        shndx = sym["st_shndx"]
        if isinstance(shndx, int):
            out.append(bases[shndx] + sym["st_value"] + r["r_addend"])
    return sorted(out)


def _any_within(sorted_addrs: list[int], start: int, end: int) -> bool:
    i = bisect.bisect_left(sorted_addrs, start)
    return i < len(sorted_addrs) and sorted_addrs[i] < end
