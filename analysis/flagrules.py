"""Which arithmetic flags an SIE site can reproduce exactly, and why it refuses the rest.

A seed instruction that sets flags a later instruction reads cannot simply have its result
fixed up afterwards: the reader would still see the flags of the old IV. The runtime rewrites
them for the instructions whose flags are a pure function of (input, IV) at the operand width:
``add``, ``sub`` (and ``cmp``) define CF PF AF ZF SF OF; ``and``, ``or``, ``xor`` and
``test`` define CF = OF = 0 and PF ZF SF of the result, and leave AF undefined. The site then
leaves AF as the CPU set it, which is exact only if nothing reads it: in compiled code only
``lahf`` and ``pushf`` can (jcc, setcc, cmovcc, adc and sbb never read AF), so a function
holding either is refused. Shifts keep their refusal: a count that becomes 0 would leave the
earlier flags in place, which no probe after the shift can know.
"""

from __future__ import annotations

from typing import Literal

from analysis import disasm

FlagsOp = Literal["add", "sub", "and", "or", "xor"]
# seed mnemonic -> the flags a recompute site rewrites (Site.flags_op)
REWRITTEN: dict[str, FlagsOp] = {"add": "add", "sub": "sub", "and": "and", "or": "or",
                                  "xor": "xor"}
_AF_UNDEFINED = ("and", "or", "xor", "test")
_AF_READERS = ("lahf", "pushf", "pushfq")
# SIE addresses a register by its pt_regs word; these name bits 8..15 of one
_HIGH_BYTES = ("ah", "bh", "ch", "dh")


def stale_flags(insns: list[disasm.Insn], k: int, func_start: int, func_end: int) -> str:
    """Why recomputing ``insns[k]``'s result would be inexact: its flags are read later and
    the site cannot rewrite them (empty when they are not read, or are rewritten)."""
    s = insns[k]
    if not s.writes_flags:
        return ""
    if s.mnemonic in REWRITTEN and s.writes_reg is not None and s.mem is None \
            and not disasm.zero_idiom(s):
        return operand_refusal(s, insns, func_start)
    reader = disasm.flags_reader(insns, k, func_start, func_end)
    if reader is None:
        return ""
    return (f"'{s.mnemonic} {s.op_str}' sets flags that "
            f"'{reader.mnemonic} {reader.op_str}' at +{reader.address - func_start:#x} may read: "
            "fixing its result up afterwards would leave them stale")


def operand_refusal(s: disasm.Insn, insns: list[disasm.Insn], func_start: int) -> str:
    """Why the flags of ``s`` (a flags-rewriting seed or a ``test``) cannot be reproduced."""
    op = s.op_str.split(",")[0].strip()
    if s.mem is not None or "[" in op:
        return f"'{s.mnemonic} {s.op_str}' tests memory: only a register operand is modelled"
    if op in _HIGH_BYTES:
        return (f"'{s.mnemonic} {s.op_str}': {op} is bits 8..15 of a register, which SIE "
                "cannot address")
    if s.mnemonic in _AF_UNDEFINED:
        reader = next((i for i in insns if i.mnemonic in _AF_READERS), None)
        if reader is not None:
            return (f"'{s.mnemonic} {s.op_str}' leaves AF undefined, and "
                    f"'{reader.mnemonic}' at +{reader.address - func_start:#x} may read it")
    return ""
