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
# Instructions that define every arithmetic flag GCC may test afterwards (imul/mul leave
# SF ZF AF PF undefined, which compiled code never reads), so earlier flags are dead.
FULL_FLAG_WRITERS = {"add", "sub", "cmp", "test", "and", "or", "xor", "neg", "imul", "mul"}
_SHIFTS = {"shl", "sal", "shr", "sar"}
FLAGS_LOOKAHEAD = 32


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
    # (base, index, scale, disp, size) of an indexed memory operand (``mem`` is None then)
    indexed: tuple[str, str, int, int, int] | None = None
    regs_written: frozenset[str] = frozenset()  # every register it writes, implicit ones too

    @property
    def next(self) -> int:
        return self.address + self.size


def _cs() -> Any:
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    return md


def zero_idiom(ins: Insn) -> bool:
    """``xor %r, %r``: how GCC loads the constant 0 (no immediate; ``mov $V`` at any other V)."""
    ops = [o.strip() for o in ins.op_str.split(",")]
    return ins.mnemonic == "xor" and len(ops) == 2 and ops[0] == ops[1] and ins.mem is None


def disassemble(code: bytes, base: int) -> list[Insn]:
    """Linear sweep of ``code`` at ``base`` (kernel functions are contiguous, no data)."""
    import capstone
    from capstone import x86

    out: list[Insn] = []
    for ins in _cs().disasm(code, base):
        imms: list[int] = []
        mem = indexed = None
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
                # a gs:/fs: operand (per-CPU data) has no address the registers name
                if not op.mem.index and not op.mem.segment:
                    mem = (base_reg, op.mem.disp, op.size)
                elif not op.mem.segment:
                    indexed = (base_reg, ins.reg_name(op.mem.index), op.mem.scale, op.mem.disp,
                               op.size)
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
                        any(g in BRANCH_GROUPS for g in ins.groups), rip, indexed,
                        frozenset(regs_written)))
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


def _kills_flags(ins: Insn) -> bool:
    if ins.reads_flags or not ins.writes_flags:
        return False
    if ins.mnemonic in FULL_FLAG_WRITERS:
        return True
    # a shift by a non-zero immediate sets them; by %cl it may be by 0 and keep them
    return ins.mnemonic in _SHIFTS and bool(ins.imms) and ins.imms[-1] % 64 != 0


def flags_reader(insns: list[Insn], index: int, func_start: int, func_end: int) -> Insn | None:
    """The instruction that may read the flags ``insns[index]`` set, or None when they die.

    Flags die at the next full writer, at a call or a return (the ABI preserves no flags) and
    at a jump out of the function (a tail call); direct jumps inside are followed. A reader,
    an indirect jump or a path longer than the look-ahead is returned: the flags may be live.
    """
    at = {ins.address: k for k, ins in enumerate(insns)}
    k = index + 1
    for _ in range(FLAGS_LOOKAHEAD):
        if k >= len(insns):
            return None
        ins = insns[k]
        if ins.reads_flags:
            return ins
        if _kills_flags(ins) or ins.mnemonic in ("call", "ret"):
            return None
        if ins.mnemonic == "jmp":
            if not ins.imms:
                return ins
            target = jump_target(ins)
            if not func_start <= target < func_end:
                return None
            if target not in at:
                return ins
            k = at[target]
            continue
        k += 1
    return insns[min(k, len(insns) - 1)]


def first_join(insns: list[Insn], start: int, upto: int) -> int | None:
    """The first address in [``start``, ``upto``] that a jump from outside the straight
    stretch [``start``, there) lands on: a join, where another path enters with other
    register and memory contents, so a probe there or below also sees that path.

    Direct jumps only: kernel code is built without jump tables, and an indirect jump's
    target is a function entry (retpoline thunks, tail calls), never a join inside one.
    """
    sources: dict[int, list[int]] = {}
    for ins in insns:
        if ins.branch and ins.mnemonic.startswith("j") and ins.imms:
            sources.setdefault(jump_target(ins), []).append(ins.address)
    for ins in insns:
        if start <= ins.address <= upto and any(not start <= src < ins.address
                                                for src in sources.get(ins.address, ())):
            return ins.address
    return None


def jump_target(ins: Insn) -> int:
    """A direct jump's target address: capstone gives it as a signed 64-bit immediate, which
    is negative for every kernel address (0xffffffff81...)."""
    return ins.imms[0] & ((1 << 64) - 1)
