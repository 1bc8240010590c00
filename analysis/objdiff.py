"""Which immediates change between builds of one object at different values of a constant.

Functions are compared by name; their instruction streams are aligned on mnemonics (a new
value may change an instruction's length and so every later branch target, but not the
sequence of operations), and for each aligned non-branch instruction the immediates of the
three builds are recorded when they differ. Unaligned stretches are reported too: the
compiler chose different code, which no single-site expression can describe.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from analysis import disasm


@dataclass(frozen=True)
class Change:
    """One aligned instruction whose immediate differs between the builds."""

    function: str
    index: int          # position among the function's instructions (default build)
    mnemonic: str
    imms: tuple[int, ...]  # the immediate in each build, default first
    stack_frame: bool = False  # the immediate sizes the stack frame: V sizes a local array

    def describe(self) -> str:
        what = " (stack frame size: V sizes an on-stack array)" if self.stack_frame else ""
        return f"{self.function} #{self.index} {self.mnemonic} {self.imms}{what}"


def functions(obj: Path) -> dict[str, list[disasm.Insn]]:
    """Every sized function symbol of a relocatable object, disassembled at offset 0."""
    return {name: disasm.disassemble(code, 0) for name, code in function_code(obj).items()}


def function_code(obj: Path) -> dict[str, bytes]:
    """The bytes of every sized function symbol of a relocatable object."""
    from elftools.elf.elffile import ELFFile

    out: dict[str, bytes] = {}
    with open(obj, "rb") as fh:
        elf = ELFFile(fh)
        symtab = elf.get_section_by_name(".symtab")
        if symtab is None:
            return out
        data: dict[int, bytes] = {}
        for sym in symtab.iter_symbols():  # type: ignore[attr-defined]
            if sym["st_info"]["type"] != "STT_FUNC" or sym["st_size"] == 0:
                continue
            shndx = sym["st_shndx"]
            if not isinstance(shndx, int):
                continue
            if shndx not in data:
                data[shndx] = elf.get_section(shndx).data()
            out[sym.name] = data[shndx][sym["st_value"]:sym["st_value"] + sym["st_size"]]
    return out


_NUMBER = re.compile(r"-?0x[0-9a-f]+|-?\b\d+\b")


# a conditional move of one ordering: min(a, b) is 'cmp a, b; cmova' or 'cmp b, a; cmovbe'
# as register allocation swaps the compared registers (tcp_init_buffer_space's min3)
_CMOV_ORDER = {**dict.fromkeys(("cmova", "cmovae", "cmovb", "cmovbe"), "cmov unsigned"),
               **dict.fromkeys(("cmovg", "cmovge", "cmovl", "cmovle"), "cmov signed")}


def _key(i: disasm.Insn) -> str:
    if i.mnemonic in ("add", "sub") and i.imms:
        return "add/sub"  # GCC writes x + 128 as 'sub $-128' (an imm8): same operation
    if i.mnemonic in _CMOV_ORDER:
        return _CMOV_ORDER[i.mnemonic]
    return "mov" if disasm.zero_idiom(i) else i.mnemonic  # 0 is 'xor %r, %r', others 'mov $V'


def _imms(i: disasm.Insn) -> tuple[int, ...]:
    return (0,) if disasm.zero_idiom(i) else i.imms


def _as(base: disasm.Insn, other: disasm.Insn) -> tuple[int, ...]:
    """``other``'s immediates read in ``base``'s operation: an add aligned with a sub has
    its immediate negated (``add $0x20`` at V0, ``sub $-0x80`` at V=128 is V)."""
    imms = _imms(other)
    if {base.mnemonic, other.mnemonic} == {"add", "sub"}:
        return tuple(-i for i in imms)
    return imms


def _signature(i: disasm.Insn) -> str:
    if i.branch:
        return i.mnemonic
    if disasm.zero_idiom(i):
        return f"mov {i.op_str.split(',')[0]}, #"
    return f"{i.mnemonic} {_NUMBER.sub('#', i.op_str)}"


def _by_signature(insns: list[disasm.Insn], other: list[disasm.Insn]) -> dict[int, int] | None:
    """Position pairs when two builds hold the same instructions up to immediates, in another
    order: GCC schedules 'xor %ecx, %ecx' (it clobbers the flags) away from where it puts
    'mov $V, %ecx' (SMC_TX_WORK_DELAY = 0). None when they are not such a permutation."""
    mine: dict[str, list[int]] = defaultdict(list)
    theirs: dict[str, list[int]] = defaultdict(list)
    for k, i in enumerate(insns):
        mine[_signature(i)].append(k)
    for k, i in enumerate(other):
        theirs[_signature(i)].append(k)
    if {s: len(v) for s, v in mine.items()} != {s: len(v) for s, v in theirs.items()}:
        return None
    return {a: b for s, ks in mine.items() for a, b in zip(ks, theirs[s], strict=True)}


def _rescheduled(insns: list[disasm.Insn], other: list[disasm.Insn], pairs: dict[int, int]
                 ) -> bool:
    """Whether two builds hold the same operations and differ only in where some without
    immediates sit: a moved 'cmp %edx, %eax' or 'push %rbx' as registers are allocated
    otherwise (tcp_init_transfer at TCP_INIT_CWND=5). Every immediate and branch is aligned,
    so the immediates are still compared one to one."""
    if Counter(map(_key, insns)) != Counter(map(_key, other)):
        return False
    mine = [i for k, i in enumerate(insns) if k not in pairs]
    theirs = [i for k, i in enumerate(other) if k not in set(pairs.values())]
    return not any(_imms(i) or i.branch for i in mine + theirs)


def diff(builds: list[dict[str, list[disasm.Insn]]]) -> tuple[list[Change], list[str]]:
    """(aligned immediate changes, functions whose code differs otherwise)."""
    base = builds[0]
    changes: list[Change] = []
    reshaped: list[str] = []
    for name, insns in base.items():
        others = [b.get(name) for b in builds[1:]]
        if any(o is None for o in others):
            reshaped.append(name)
            continue
        aligned: dict[int, list[int]] = {}
        differs = False
        for other in others:
            assert other is not None
            sm = difflib.SequenceMatcher(None, [_key(i) for i in insns], [_key(i) for i in other],
                                         autojunk=False)
            ops = sm.get_opcodes()
            pairs = {a0 + k: b0 + k for tag, a0, a1, b0, _ in ops if tag == "equal"
                     for k in range(a1 - a0)}
            # a zero idiom paired by mnemonic alone may sit beside another register's 'mov'
            crossed = any(disasm.zero_idiom(insns[a]) != disasm.zero_idiom(other[b])
                          and _signature(insns[a]) != _signature(other[b]) for a, b in pairs.items())
            if crossed or len(pairs) < max(len(insns), len(other)):
                reordered = _by_signature(insns, other)
                differs = differs or (reordered is None and (crossed or not _rescheduled(
                    insns, other, pairs)))
                pairs = reordered or pairs
            for a, b in pairs.items():
                aligned.setdefault(a, []).append(b)
        for idx, partners in aligned.items():
            if len(partners) != len(others) or insns[idx].branch:
                continue
            mine = _imms(insns[idx])
            theirs = [_as(insns[idx], o[p]) for o, p in zip(others, partners, strict=True)
                      if o is not None]
            if any(t != mine for t in theirs) and all(len(t) == len(mine) for t in theirs):
                for slot in range(len(mine)):
                    column = (mine[slot], *(t[slot] for t in theirs))
                    if len(set(column)) > 1:
                        frame = (insns[idx].writes_reg == "rsp"
                                 and insns[idx].mnemonic in ("sub", "add"))
                        changes.append(Change(name, idx, insns[idx].mnemonic, column, frame))
        if differs:
            reshaped.append(name)
    return changes, reshaped
