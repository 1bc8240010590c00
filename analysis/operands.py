"""Memory operands a site reads: which ones the SIE runtime can address, and how long they last.

A probe reads registers and memory as they are when it fires, not as the seed instruction saw
them. A compare's operand is read again at the flags reader's probe, and a multiply's memory
source at the save probe on the multiply itself, so the operand must be addressable from the
saved registers (a base, an optional index, a displacement: no per-CPU segment) and, for a
compare, unchanged between the compare and the probe.

A rip-relative operand (a global) is addressable too, in vmlinux: its displacement is fixed
at link time relative to the instruction, and KASLR moves code and data together, so the
cell's offset from the function's start is a constant. The runtime knows the function's
start at run time (the probe address minus the probe's offset, which it passes as the
attach cookie). In a module it is not: the .ko's displacement is an unapplied relocation,
and since Linux 6.4 a module's data is allocated apart from its code, so no offset from the
probe names the cell before the module is loaded.
"""

from __future__ import annotations

from typing import Literal, cast

from analysis import disasm
from autotune.core.catalog import MemoryOperand

# instructions that read memory (their last operand) and write only their first operand
_LOADS = ("mov", "movzx", "movsx", "movsxd", "lea", "cmp", "test")
_STACK_WRITERS = ("push", "pushfq", "call", "enter")


def memory_operand(s: disasm.Insn, func_start: int | None) -> MemoryOperand:
    """The memory operand of ``s`` as the runtime reads it; a rip-relative one as
    ``{base_reg: rip, disp: the cell's offset from func_start}`` (``func_start`` None: code of
    an unloaded module, whose rip-relative cells are refused). ValueError when nothing the
    runtime knows names its address (a gs:/fs: per-CPU operand, absolute, a module's global)."""
    if s.mem is not None and s.mem[0] == "rip":
        if func_start is None:
            raise ValueError(f"'{s.mnemonic} {s.op_str}': a module's global (rip-relative): the "
                             "module's data is allocated apart from its code at load, so no "
                             "offset from the probe names it")
        return MemoryOperand(base_reg="rip", disp=s.next + s.mem[1] - func_start,
                             size=cast(Literal[1, 2, 4, 8], s.mem[2]))
    if s.mem is not None and s.mem[0] != "":
        base, disp, size = s.mem
        return MemoryOperand(base_reg=base, disp=disp, size=cast(Literal[1, 2, 4, 8], size))
    if s.indexed is not None and s.indexed[0] not in ("", "rip"):
        base, index, scale, disp, size = s.indexed
        return MemoryOperand(base_reg=base, index_reg=index, disp=disp,
                             scale=cast(Literal[1, 2, 4, 8], scale),
                             size=cast(Literal[1, 2, 4, 8], size))
    raise ValueError(f"'{s.mnemonic} {s.op_str}': its memory operand is per-CPU (gs:, whose base "
                     "the saved registers do not hold) or absolute: nothing names its address")


def compare_operand(s: disasm.Insn, func_start: int | None) -> str | MemoryOperand:
    """What ``cmp op, $IV`` compares: a register name or a memory operand (ValueError as above)."""
    first = s.op_str.split(",")[0].strip()
    return memory_operand(s, func_start) if "[" in first else first


def _registers(operand: str | MemoryOperand) -> set[str]:
    """The registers the operand's value or address depends on (rip moves, but the address
    computed from the function's start does not)."""
    names = [operand] if isinstance(operand, str) else [operand.base_reg, operand.index_reg]
    return {_full(n) for n in names if n and n != "rip"}


def _full(name: str) -> str:
    """The 64-bit register a name views (eax, ax, al -> rax; r9d -> r9); others unchanged."""
    n = name.lower()
    if n.startswith("r") and n[1:].rstrip("dwb").isdigit():
        return n.rstrip("dwb")
    for full in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"):
        core = full[1:]
        if n in (full, "e" + core, core, core[0] + "l", core[0] + "h", core + "l"):
            return full
    return n


def _may_store(ins: disasm.Insn) -> bool:
    """Whether ``ins`` may write memory (conservative: any memory operand but a load's source)."""
    if ins.mnemonic in _STACK_WRITERS or ins.mnemonic.startswith(("rep", "stos", "movs")):
        return True
    first = ins.op_str.split(",")[0]
    return "[" in ins.op_str and (ins.mnemonic not in _LOADS or "[" in first
                                  and ins.mnemonic not in ("cmp", "test"))


def kept_until(insns: list[disasm.Insn], k: int, last: int, operand: str | MemoryOperand) -> int:
    """The last address up to ``last`` where the operand ``insns[k]`` compared still holds
    what it compared: the first instruction that writes one of its registers, or memory when
    it is a memory operand (the probe may sit there: it fires before the instruction)."""
    regs = _registers(operand)
    for ins in insns[k + 1:]:
        if ins.address >= last:
            break
        written = set(ins.regs_written) | ({ins.writes_reg} if ins.writes_reg else set())
        if {_full(r) for r in written} & regs or (not isinstance(operand, str) and _may_store(ins)):
            return ins.address
    return last
