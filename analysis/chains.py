"""Strength-reduced multiplies: ``x * f(V)`` compiled as a short chain with no immediate.

GCC turns a multiply by a constant into lea/shl/add/sub/mov chains (``x*1280`` as
``lea (x,x,4); shl $8``, ``x*7`` as ``lea (,x,8); sub x``, ``x*10`` as ``lea (x,x,4); add
r,r``) and picks other instructions at other values (``imul``, other shifts), so no
immediate holds V and the oracle saw the function as reshaped. A chain is a run of
register-only instructions in one block whose output register equals input * K for one
input register: a small linear evaluator finds it (cheap, over whole functions), angr's
symbolic step proves it on the real bytes, and the site saves the input before the chain
and writes input * f(V) after it (a save-recompute site with ``recompute_op`` mul).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from analysis import disasm
from autotune.core import expr as exprs

WHY = "strength-reduced multiply chain"
WINDOW = 6  # instructions a chain may span, passengers included
ENCODINGS = ("V", "V-1", "V+1")
_REGS64 = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
           "r12", "r13", "r14", "r15")
_REGS32 = ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp") + tuple(
    f"r{n}d" for n in range(8, 16))
FULL = {**{r: (r, 64) for r in _REGS64}, **{r: (f, 32) for r, f in zip(_REGS32, _REGS64,
                                                                             strict=True)}}


def _aliases() -> dict[str, str]:
    """Every alias of a general-purpose register -> its 64-bit name (8/16-bit views too)."""
    out = {a: f for a, (f, _) in FULL.items()}
    for x in "abcd":
        out |= {f"{x}x": f"r{x}x", f"{x}l": f"r{x}x", f"{x}h": f"r{x}x"}
    for x in ("si", "di", "bp", "sp"):
        out |= {x: f"r{x}", f"{x}l": f"r{x}"}
    for n in range(8, 16):
        out |= {f"r{n}w": f"r{n}", f"r{n}b": f"r{n}"}
    return out


_ALIASES = _aliases()
_ALU = {"mov", "lea", "add", "sub", "neg", "shl", "sal", "imul"}


@dataclass(frozen=True)
class Chain:
    """Instructions ``members`` (indexes) leave ``dest`` = ``source`` * ``factor``."""

    start: int                 # first member: the save probe sits on it
    end: int                   # last member: the site probe sits on the next instruction
    members: tuple[int, ...]
    dest: str                  # as written: eax, rdx
    source: str                # 64-bit input register, read at ``start``
    factor: int                # modulo 2**bits
    bits: int
    window: tuple[int, int]    # [first, last] index of the run stepped (passengers too)


@dataclass
class _Val:
    """A register as ``sum(coeff * input) + const`` modulo 2**bits, and the members it came from."""

    coeffs: dict[str, int]
    const: int
    bits: int
    deps: frozenset[int]


def full_name(name: str) -> str:
    """The 64-bit register of an alias (eax -> rax, r8b -> r8); other text unchanged."""
    return _ALIASES.get(name, name)


def registers_in(text: str) -> list[str]:
    """Register names (any width) mentioned in an operand string."""
    return [t for t in re.findall(r"[a-z][a-z0-9]*", text) if t in _ALIASES]


def _operands(ins: disasm.Insn) -> list[str]:
    return [o.strip() for o in ins.op_str.split(",")]


def _read(state: dict[str, _Val], name: str) -> _Val | None:
    if name not in FULL:
        return None
    full, bits = FULL[name]
    v = state.get(full) or _Val({full: 1}, 0, 64, frozenset())
    return _trunc(v, min(v.bits, bits))


def _trunc(v: _Val, bits: int) -> _Val:
    mask = (1 << bits) - 1
    return _Val({r: c & mask for r, c in v.coeffs.items() if c & mask}, v.const & mask, bits,
                v.deps)


def _combine(a: _Val, b: _Val, k: int, bits: int) -> _Val:
    """a + k*b at ``bits``."""
    coeffs = dict(a.coeffs)
    for r, c in b.coeffs.items():
        coeffs[r] = coeffs.get(r, 0) + k * c
    return _trunc(_Val(coeffs, a.const + k * b.const, min(a.bits, b.bits, bits),
                       a.deps | b.deps), min(a.bits, b.bits, bits))


def _address(state: dict[str, _Val], mem: str, bits: int) -> _Val | None:
    """``[base + index*scale + disp]`` of a lea as a linear value (None: rip, segment...)."""
    if not mem.startswith("[") or ":" in mem:
        return None
    total = _Val({}, 0, 64, frozenset())
    for sign, term in _terms(mem.strip("[]")):
        reg, _, scale = term.partition("*")
        if reg in FULL:
            v = _read(state, reg)
            if v is None or (scale and not scale.isdigit()):
                return None
            total = _combine(total, v, sign * int(scale or "1"), 64)
        else:
            try:
                total = _combine(total, _Val({}, int(term, 0), 64, frozenset()), sign, 64)
            except ValueError:
                return None
    return _trunc(total, min(total.bits, bits))


def _terms(text: str) -> list[tuple[int, str]]:
    out, sign = [], 1
    for tok in text.split():
        if tok in "+-":
            sign = 1 if tok == "+" else -1
        else:
            out.append((sign, tok))
    return out


def _passenger(state: dict[str, _Val], ins: disasm.Insn, k: int) -> bool:
    """A load or store GCC scheduled into the chain (``mov 0x..(,%r13,8), %rax`` between
    fits_capacity's lea and shl): stepped over when it reads no value the chain computed;
    a loaded register becomes an unknown no chain can start from."""
    ops = _operands(ins)
    if ins.mnemonic not in ("mov", "movzx", "movsx", "movsxd") or len(ops) != 2 \
            or not any("[" in o for o in ops):
        return False
    loads = ops[0] in _ALIASES
    reads = registers_in(ops[1]) + ([] if loads else registers_in(ops[0]))
    if any((v := state.get(full_name(r))) is not None and v.deps for r in reads):
        return False  # it stores or addresses with a value of the chain
    if loads:
        state[full_name(ops[0])] = _Val({f"?{k}": 1}, 0, 64, frozenset())
    return True


def _step(state: dict[str, _Val], ins: disasm.Insn, k: int) -> bool:
    """Apply one instruction; False when it is neither a register-only linear operation
    nor a passenger load or store."""
    if _passenger(state, ins, k):
        return True
    ops = _operands(ins)
    if ins.mnemonic not in _ALU or not ops or ops[0] not in FULL or ins.branch:
        return False
    if any("ptr" in o for o in ops):
        return False
    full, bits = FULL[ops[0]]
    mn, v = ins.mnemonic, None
    src = _read(state, ops[1]) if len(ops) > 1 and ops[1] in FULL else None
    imm = int(ops[-1], 0) if ops[-1].lstrip("-").startswith(("0x", *"0123456789")) else None
    if mn == "mov" and len(ops) == 2:
        v = src if src is not None else (None if imm is None else _Val({}, imm, bits,
                                                                      frozenset()))
    elif mn == "lea" and len(ops) == 2:
        v = _address(state, ops[1], bits)
    elif mn in ("add", "sub") and len(ops) == 2:
        other = src if src is not None else (None if imm is None else _Val({}, imm, 64,
                                                                          frozenset()))
        mine = _read(state, ops[0])
        if other is not None and mine is not None:
            v = _combine(mine, other, 1 if mn == "add" else -1, bits)
    elif mn == "neg" and len(ops) == 1:
        mine = _read(state, ops[0])
        v = None if mine is None else _combine(_Val({}, 0, 64, frozenset()), mine, -1, bits)
    elif mn in ("shl", "sal") and len(ops) == 2 and imm is not None:
        mine = _read(state, ops[0])
        v = None if mine is None else _combine(_Val({}, 0, 64, frozenset()), mine, 1 << imm,
                                               bits)
    elif mn == "imul" and len(ops) == 3 and src is not None and imm is not None:
        v = _combine(_Val({}, 0, 64, frozenset()), src, imm, bits)
    if v is None:
        return False
    state[full] = _trunc(_Val(v.coeffs, v.const, min(v.bits, bits), v.deps | {k}),
                         min(v.bits, bits))
    return True


def _chain_ending(insns: list[disasm.Insn], j: int, factors: set[int]) -> Chain | None:
    """The shortest run ending at ``j`` that leaves j's register = one input * K, K in
    ``factors`` (a shorter run may multiply by another K: 'add eax, eax' alone is x*2)."""
    dest = _operands(insns[j])[0]
    if dest not in FULL or insns[j].mnemonic not in _ALU:
        return None
    for i in range(j, max(-1, j - WINDOW), -1):
        state: dict[str, _Val] = {}
        if not all(_step(state, insns[k], k) for k in range(i, j + 1)):
            return None  # an earlier start would step this instruction too
        v = state[FULL[dest][0]]
        if v.const or len(v.coeffs) != 1 or v.bits != FULL[dest][1] or j not in v.deps:
            continue
        (source, factor), = v.coeffs.items()
        if factor not in factors or source.startswith("?"):
            continue
        members = tuple(sorted(v.deps))
        return Chain(members[0], j, members, dest, source, factor, v.bits, (i, j))
    return None


def find(insns: list[disasm.Insn], factors: set[int], ends: Iterable[int] | None = None
         ) -> list[Chain]:
    """Non-overlapping chains whose factor is one of ``factors``, ending at ``ends``
    (indexes; every instruction when None), in address order."""
    out: list[Chain] = []
    taken: set[int] = set()
    for j in sorted(set(range(len(insns)) if ends is None else ends) & set(range(len(insns)))):
        c = _chain_ending(insns, j, factors)
        if c is None or taken & set(c.members):
            continue
        # a longer run ending later may extend this one (x*5 then x*10): keep the last
        if out and out[-1].dest == c.dest and set(out[-1].members) <= set(c.members):
            taken -= set(out.pop().members)
        out.append(c)
        taken |= set(c.members)
    return out


def factor_of(expr_text: str, v: int, bits: int) -> int:
    return exprs.parse(expr_text).evaluate(v, "u64") & ((1 << bits) - 1)


def seed_factors(v0: int) -> dict[int, str]:
    """K -> expression for the encodings of a seed whose default is ``v0``: a power of two
    (or K < 3) is a single shift or add, which the immediate sites already cover."""
    out: dict[int, str] = {}
    for text in ENCODINGS:
        k = exprs.parse(text).evaluate(v0, "s64")
        if k >= 3 and k & (k - 1):
            out.setdefault(k, text)
    return out


def worth_a_site(c: Chain, insns: list[disasm.Insn]) -> bool:
    """Two or more members, or one ``lea (x,x,s)``: a lone ``imul $K`` or ``shl`` already
    holds an immediate the ordinary sites rewrite."""
    if len(c.members) > 1:
        return True
    ins = insns[c.start]
    return ins.mnemonic == "lea" and "*" in ins.op_str


def collapse(insns: list[disasm.Insn], chains: list[tuple[Chain, str]]
             ) -> tuple[list[disasm.Insn], list[int]]:
    """``insns`` with each chain's members replaced by one pseudo instruction named by its
    label (``chain32 V-1``) at its first member (passengers stay), and the original index
    of each instruction kept."""
    first = {c.start: (c, label) for c, label in chains}
    dropped = {m for c, _ in chains for m in c.members} - set(first)
    out: list[disasm.Insn] = []
    origin: list[int] = []
    for k, ins in enumerate(insns):
        if k in dropped:
            continue
        if k in first:
            c, label = first[k]
            ins = replace(ins, mnemonic=label, op_str=f"{c.dest}, {c.source}", imms=(),
                          mem=None, writes_flags=False, reads_flags=False)
        out.append(ins)
        origin.append(k)
    return out, origin
