"""Capstone disassembly of one function, and the x86 facts the site finder needs.

Kept apart from the symbolic step so the cheap questions (which instruction holds this
immediate, which one reads the flags, which bytes can a jump-optimized kprobe cover) never
pay for angr.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BRANCH_GROUPS = {1, 2, 3, 7}  # CS_GRP_JUMP, CALL, RET, BRANCH_RELATIVE
JUMP_OPT_BYTES = 5  # a jump-optimized kprobe replaces 5 bytes with a rel32 jmp


@dataclass(frozen=True)
class Insn:
    """The slice of a capstone instruction we keep (picklable, cheap to compare)."""

    address: int
    size: int
    mnemonic: str
    op_str: str
    imms: tuple[int, ...]           # immediate operands, as encoded (sign-extended)
    imm_size: int                   # operand size in bytes of the instruction
    writes_reg: str | None          # first operand when it is a register
    mem: tuple[str, int, int] | None  # (base, disp, size) of a memory operand
    reads_flags: bool
    writes_flags: bool
    branch: bool
    rip_relative: bool

    @property
    def next(self) -> int:
        return self.address + self.size


def _cs() -> Any:
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    return md


def disassemble(code: bytes, base: int) -> list[Insn]:
    """Linear sweep of ``code`` at ``base`` (kernel functions are contiguous, no data)."""
    import capstone
    from capstone import x86

    out: list[Insn] = []
    for ins in _cs().disasm(code, base):
        imms: list[int] = []
        mem = None
        rip = False
        first_reg = None
        size = 0
        for i, op in enumerate(ins.operands):
            size = max(size, op.size)
            if op.type == x86.X86_OP_IMM:
                imms.append(op.imm)
            elif op.type == x86.X86_OP_REG and i == 0:
                first_reg = ins.reg_name(op.reg)
            elif op.type == x86.X86_OP_MEM:
                base_reg = ins.reg_name(op.mem.base) if op.mem.base else ""
                rip = rip or base_reg == "rip"
                if not op.mem.index:
                    mem = (base_reg, op.mem.disp, op.size)
                if ins.mnemonic == "lea" and op.mem.disp:
                    imms.append(op.mem.disp)
        try:
            reads, writes = ins.regs_access()
            regs_read = {ins.reg_name(r) for r in reads}
            regs_written = {ins.reg_name(r) for r in writes}
        except capstone.CsError:
            regs_read, regs_written = set(), set()
        out.append(Insn(ins.address, ins.size, ins.mnemonic, ins.op_str, tuple(imms), size,
                        first_reg, mem, "rflags" in regs_read, "rflags" in regs_written,
                        any(g in BRANCH_GROUPS for g in ins.groups), rip))
    return out


def jump_optimizable(insns: list[Insn], index: int, func_end: int) -> bool:
    """Whether a kprobe at ``insns[index]`` can become a 5-byte jump (Linux's optprobe rules)."""
    start = insns[index].address
    if start + JUMP_OPT_BYTES > func_end:
        return False
    i = index
    while i < len(insns) and insns[i].address < start + JUMP_OPT_BYTES:
        if insns[i].branch or insns[i].rip_relative:
            return False
        i += 1
    return True
