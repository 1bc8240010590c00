"""Candidate instructions: immediates on a use's line-table rows that encode V0.

GCC rarely stores the source value as written: ``x < V`` becomes ``cmp $(V-1)`` with a
``<=`` jump, a select becomes ``and $-V; add $2V``, a range check ``lea -2; cmp $(V-2)``,
and two 32-bit fields are merged into one ``movabs``. Each encoding here is a hypothesis
IV = f(V) at V0; the oracle's recompiles at other values confirm or refute it.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.disasm import Insn, zero_idiom
from analysis.elfimage import Function
from autotune.core import expr as exprs

_MASKS = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF, 8: 0xFFFF_FFFF_FFFF_FFFF}
_WIDTH = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
SHIFT_COUNT_MAX = 32  # a default below this may be a shift count (IV = 1 << V)
# (expression template over the scaled default B, why GCC emits it)
_AFFINE: list[tuple[str, str]] = [
    ("V", "the value itself"),
    ("V-1", "'<' compiled as '<=' (or '>=' as '>')"),
    ("V+1", "'<=' compiled as '<'"),
    ("V-2", "range check 'lea -2; cmp'"),
    ("-V", "select idiom mask 'and $-V'"),
    ("V*2", "select idiom 'add $2V'"),
]


@dataclass(frozen=True)
class Candidate:
    """An instruction whose immediate equals f(V0) for one encoding f."""

    function: Function
    insn: Insn
    expr: str
    width: str
    why: str
    use: str            # file:line of the source use that led here
    fallback: bool      # found on a neighbouring line because the use's own had no rows
    cu: str = ""        # compile unit's source file: the object the oracle recompiles
    module: str = ""    # "" for vmlinux


def encodings(v0: int, scale: int = 1, unit: str = "V") -> list[tuple[str, str]]:
    """The (expr, why) hypotheses for a constant whose source default is ``v0``; ``unit`` is
    what the use's code holds (``(V+3) >> 2`` for msecs_to_jiffies(V) at HZ=250)."""
    out = []
    for template, why in _AFFINE:
        text = template.replace("V", f"V*{scale}") if scale != 1 else template
        out.append((text if unit == "V" else text.replace("V", f"({unit})"), why))
    if scale == 1 and unit == "V" and 0 < v0 < SHIFT_COUNT_MAX:
        out.append(("1 << V", "V is a shift count: 'x += 1 << V' adds the power of two"))
    return out


def match(insn: Insn, v0: int, scale: int = 1, unit: str = "V") -> list[tuple[str, str, str]]:
    """(expr, width, why) for each way ``insn``'s immediates encode ``v0``."""
    if scale == 1 and unit == "V" and (log2 := match_log2(insn, v0)):
        return log2  # at V0 = 2 or 4 the count also reads as V-1 or V-2: a coincidence
    if v0 == 0:  # every 'cmp $0' and 'test' would match: only loads of the zero count
        if scale == 1 and unit == "V" and zero_idiom(insn):
            return [("V", _WIDTH.get(insn.imm_size, "u64"), "a zero constant loaded by 'xor %r, %r'")]
        if insn.mnemonic != "mov":
            return []
    found: list[tuple[str, str, str]] = []
    size = insn.imm_size if insn.imm_size in _MASKS else 8
    width = _WIDTH[size]
    for imm in insn.imms:
        if insn.mnemonic == "movabs" or (size == 8 and not -(1 << 31) <= imm < 1 << 31):
            hi, lo = (imm >> 32) & 0xFFFF_FFFF, imm & 0xFFFF_FFFF
            if hi == v0 * scale and lo != hi:
                found.append((f"(V << 32) | {lo}" if scale == 1 else f"(V*{scale} << 32) | {lo}",
                              "u64", "two 32-bit stores merged into one movabs (high half)"))
                continue
            if lo == v0 * scale and hi:
                found.append((f"{hi << 32} | V" if scale == 1 else f"{hi << 32} | V*{scale}",
                              "u64", "two 32-bit stores merged into one movabs (low half)"))
                continue
        for text, why in encodings(v0, scale, unit):
            # the value must fit the operand: 1281 is no 'mov $1' into a byte
            if _fits(exprs.parse(text).evaluate(v0, "s64"), size) and \
                    exprs.parse(text).evaluate(v0, width) == imm & _MASKS[size]:
                found.append((text, width, why))
                break
    return found


def _fits(value: int, size: int) -> bool:
    """Whether ``value`` is representable in ``size`` bytes, signed or unsigned."""
    return -(1 << (8 * size - 1)) <= value < 1 << (8 * size)


def match_log2(insn: Insn, v0: int) -> list[tuple[str, str, str]]:
    """A shift by ilog2(V0) where a power-of-two V0 multiplies or divides: IV = log2(V).

    Not affine in V, so no encoding above finds it; the oracle's builds at 2V0 and 4V0 confirm
    it (the shift count grows by one per doubling) and the knob gets the ``pow2`` constraint.
    """
    if v0 < 2 or v0 & (v0 - 1) or insn.mnemonic not in ("shl", "sal", "shr", "sar"):
        return []
    if v0.bit_length() - 1 not in insn.imms:
        return []
    size = insn.imm_size if insn.imm_size in _MASKS else 8
    return [("log2(V)", _WIDTH[size], "x*V or x/V by a power of two: a shift by ilog2(V)")]


def in_ranges(insns: list[Insn], ranges: list[tuple[int, int]]) -> list[Insn]:
    """Instructions that start inside any [start, end) range."""
    return [i for i in insns if any(a <= i.address < b for a, b in ranges)]
