"""Turn an oracle change no site explained into a site, when it is a function of V.

Three builds give three (V, immediate) points; if they lie on one integer line
IV = a*V + b, the instruction encodes a derived value of the constant (``cmp $(8V-1)``,
``and $(HZ/2-V)``), checked by the third point. A constant divided into another unit
(``BFQ_MIN_TT / NSEC_PER_USEC``) is V/d + b: three points leave d in an interval, so the
roundest candidates are each tried at two held-out values d*k-1 and d*k, which only the
exact d maps to different quotients; a scaled one (``2 * V / 3``) is (V*p)/q + b, also
tried at held-out values. The object's function is aligned with the shipped one
to find the same instruction in vmlinux, which must hold the default's immediate, and the
usual span analysis then makes it a site.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from fractions import Fraction

from analysis import disasm, halves, sitebuild
from analysis.candidates import Candidate
from analysis.elfimage import Image
from analysis.objdiff import Change

_WIDTH = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}


def fit(values: tuple[int, ...], imms: tuple[int, ...]) -> tuple[int, int] | None:
    """(a, b) with imm = a*V + b at every point, a and b integers, a != 0."""
    imms = tuple(_signed(i) for i in imms)
    (v0, v1), (i0, i1) = values[:2], imms[:2]
    if (i1 - i0) % (v1 - v0):
        return None
    a = (i1 - i0) // (v1 - v0)
    b = i0 - a * v0
    if a == 0 or any(a * v + b != i for v, i in zip(values, imms, strict=True)):
        return None
    return a, b


def _signed(imm: int) -> int:
    """Capstone shows some immediates unsigned (32-bit ones, and 64-bit sign-extended ones
    such as 'and $-6, %r13'): fold them to the signed reading."""
    if (1 << 63) <= imm < (1 << 64):
        return imm - (1 << 64)
    return imm - (1 << 32) if (1 << 31) <= imm < (1 << 32) else imm


def render(a: int, b: int) -> str:
    head = "V" if a == 1 else "-V" if a == -1 else f"V*{a}"
    return head if b == 0 else f"{head}+{b}" if b > 0 else f"{head}-{-b}"


def expression(values: tuple[int, ...], imms: tuple[int, ...], shift_count: bool = False
               ) -> str | None:
    """The likeliest IV = f(V) through the three points (see ``expressions``)."""
    found = expressions(values, imms, shift_count)
    return found[0] if found else None


def expressions(values: tuple[int, ...], imms: tuple[int, ...], shift_count: bool = False
                ) -> list[str]:
    """IV = f(V) through the three points, likeliest first: affine, a*log2(V)+b for the count
    of a shift (``shift_count``) at power-of-two values, or V/d+b for a divided constant (several
    divisors can fit three points: ``held_out`` values tell them apart)."""
    ab = fit(values, imms)
    if ab is not None:
        return [render(*ab)]
    if shift_count and all(v > 0 and v & (v - 1) == 0 for v in values):
        # before V>>s: at V0, 2V0, 4V0 a count growing by one per doubling also fits V>>s+b
        # when V0 < 2^s, which is wrong at the next doubling
        ab = fit(tuple(v.bit_length() - 1 for v in values), imms)
        if ab is not None:
            return [render(*ab).replace("V", "log2(V)", 1)]
    if (pw := halves.power(values, imms)) is not None:
        return [pw]
    out = []
    for d, b in divided(values, imms):
        head = f"(V >> {d.bit_length() - 1})" if d & (d - 1) == 0 else f"V/{d}"
        out.append(head if b == 0 else f"{head}+{b}" if b > 0 else f"{head}-{-b}")
    if (pqb := lattice(values, imms)) is not None:
        p, q, b = pqb
        out.append(f"V*{p}/{q}" + ("" if b == 0 else f"+{b}" if b > 0 else f"-{-b}"))
        out += _stepped(values, imms, p, q, b)
    if not out and (pqb := ratio(values, imms)) is not None:  # a last resort: q up to 128
        p, q, b = pqb  # fits three points by chance more often than the forms above
        out.append(f"(V*{p})/{q}" + ("" if b == 0 else f"+{b}" if b > 0 else f"-{-b}"))
    return out


def _stepped(values: tuple[int, ...], imms: tuple[int, ...], p: int, q: int, b: int
             ) -> list[str]:
    """(V/d)*m + b with m/d = p/q but a coarser step d = q*j: ``2 * (V / 32)`` (bfq's min
    budget doubled) is V*1/16 on the points, and only held-out values off multiples of 32
    tell the two apart."""
    signed = [_signed(i) for i in imms]
    out = []
    for j in (2, 3, 4):
        d, m = q * j, p * j
        if all(v // d * m + b == i for v, i in zip(values, signed, strict=True)):
            out.append(f"(V/{d})*{m}" + ("" if b == 0 else f"+{b}" if b > 0 else f"-{-b}"))
    return out


def ratio(values: tuple[int, ...], imms: tuple[int, ...], most_q: int = 128
          ) -> tuple[int, int, int] | None:
    """(p, q, b) with imm = (V*p)/q + b, C's truncating division, at every point, for the
    smallest q (2..``most_q``, p > 1 and coprime to it; p = 1 is ``divided``'s V/d).

    ``(2 * bfq_max_budget) / 3`` with the default max budget inlined is 2V/3 at any V: at
    16384, 32768, 65536 the slope 10923/16384 of ``lattice`` fits two points, not the third.
    ``held_out`` then tries V0+1 and V0+q-1, whose remainders mod q the truncation must
    also get right.
    """
    signed = [_signed(i) for i in imms]
    if any(v < 0 for v in values):
        return None
    k = max(range(1, len(values)), key=lambda j: abs(values[j] - values[0]))
    slope = Fraction(signed[k] - signed[0], values[k] - values[0])
    for q in range(2, most_q + 1):
        for p in {math.floor(slope * q), math.ceil(slope * q)}:
            if p <= 1 or math.gcd(p, q) != 1:
                continue
            b = signed[0] - values[0] * p // q
            if all(v * p // q + b == i for v, i in zip(values, signed, strict=True)):
                return p, q, b
    return None


def _cost(d: int) -> float:
    """How unlikely ``d`` is as a divisor written in C: its significant digits, in bits, in
    the cheaper of decimal (NSEC_PER_MSEC, 5000000) and binary (1024)."""
    s10 = str(d).rstrip("0")
    return min(2.5 * len(s10), (d >> ((d & -d).bit_length() - 1)).bit_length())


def divided(values: tuple[int, ...], imms: tuple[int, ...], most: int = 3
            ) -> list[tuple[int, int]]:
    """(d, b) with imm = V/d + b (C's truncating division, d >= 2) at every point.

    Three points bound d to an interval (each quotient is exact only to one unit); the
    ``most`` roundest d in it come first, and ``held_out`` gives the values that prove one.
    """
    signed = [_signed(i) for i in imms]
    if any(v < 0 for v in values):
        return []
    v0, i0 = values[0], signed[0]
    k = max(range(1, len(values)), key=lambda j: abs(values[j] - v0))
    dv, di = values[k] - v0, signed[k] - i0
    if di < 2 or dv <= di:
        return []
    lo, hi = max(2, dv // (di + 1)), dv // (di - 1) + 1
    if v0 // lo - v0 // hi > 10_000:
        return []
    found: set[int] = set()
    for q0 in range(v0 // hi, v0 // lo + 1):  # V0/d: d's interval follows from each point
        low, high = lo, hi
        for v, i in zip(values, signed, strict=True):
            q = q0 + i - i0  # v/d == q  <=>  v/(q+1) < d <= v/q
            low = max(low, v // (q + 1) + 1) if q >= 0 else high + 1
            high = min(high, v // q) if q > 0 else high
        if low <= high:
            found |= _round_in(low, high)
    est = dv / di
    fits = sorted(found, key=lambda d: (_cost(d), abs(d - est)))
    return [(d, i0 - v0 // d) for d in fits[:most]]


def _round_in(low: int, high: int) -> set[int]:
    """The roundest integers of [low, high]: a few multiples of each power of ten and two."""
    out = {low, high}
    for p in [10 ** e for e in range(19)] + [1 << e for e in range(63)]:
        first = -(-low // p) * p
        out |= set(range(first, min(high, first + 2 * p) + 1, p))
    return out


def held_out(v0: int, expr_text: str) -> tuple[int, int] | None:
    """The two values that must confirm a divided expression (None: not one of ours).

    V/d (and V>>s): d*k-1 and d*k, which only the exact d maps to k-1 and k (three points
    cannot tell V/1000000 from V/999999). V*p/q, exact on multiples of q: V0+q and V0+3q,
    multiples of q that are not multiples of 2q (a rounding to a coarser step shows there).
    (V*p)/q, exact at any V: V0+1 and V0+q-1 (V0+3 for q = 2), other remainders mod q.
    """
    expr_text = halves.inner(expr_text)
    if (m := re.fullmatch(r"\(1 << V\)/\d+", expr_text)) is not None:
        return v0 + 2, v0 + 3  # 2**(V+c) through three points; the division truncates at V < -c
    m = re.fullmatch(r"(\(?)V\*(\d+)\)?/(\d+)([+-]\d+)?", expr_text)
    if m is not None:
        q = int(m.group(3))
        return (v0 + 1, v0 + (q - 1 if q > 2 else 3)) if m.group(1) else (v0 + q, v0 + 3 * q)
    m = re.match(r"\(?V( >> |/)(\d+)", expr_text)
    if m is None:
        return None
    d = 1 << int(m.group(2)) if m.group(1) == " >> " else int(m.group(2))
    k = v0 // d + 2
    return d * k - 1, d * k


def lattice(values: tuple[int, ...], imms: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(p, q, b) with imm = V*p/q + b exactly at every point, every V a multiple of q.

    ``round_up(V, 64) * 5 / 256`` (xfs_iwalk's prefetch) is V*5/256 on multiples of 256 and
    nothing simpler elsewhere: the site holds only with a ``multiple_of q`` domain.
    """
    signed = [_signed(i) for i in imms]
    slope = Fraction(signed[1] - signed[0], values[1] - values[0])
    p, q = slope.numerator, slope.denominator
    if q == 1 or p <= 0 or any(v % q for v in values):
        return None
    b = signed[0] - values[0] * p // q
    if any(v * p // q + b != i for v, i in zip(values, signed, strict=True)):
        return None
    return p, q, b


def obj_index(obj_insns: list[disasm.Insn], vm_insns: list[disasm.Insn], address: int
              ) -> int | None:
    """The object-file position of the shipped instruction at ``address`` (mnemonic alignment)."""
    pos = next((k for k, i in enumerate(vm_insns) if i.address == address), None)
    if pos is None:
        return None
    sm = difflib.SequenceMatcher(None, [i.mnemonic for i in obj_insns],
                                 [i.mnemonic for i in vm_insns], autojunk=False)
    for a, b, n in sm.get_matching_blocks():
        if b <= pos < b + n:
            return a + pos - b
    return None


def _vm_instruction(change: Change, obj_insns: list[disasm.Insn], image: Image
                    ) -> tuple[bytes, list[disasm.Insn], disasm.Insn] | None:
    keys = [i.mnemonic for i in obj_insns]
    best: tuple[float, bytes, list[disasm.Insn], disasm.Insn] | None = None
    for func in image.by_name(change.function):
        code = image.code(func)
        vm = disasm.disassemble(code, func.start)
        sm = difflib.SequenceMatcher(None, keys, [i.mnemonic for i in vm], autojunk=False)
        for a, b, n in sm.get_matching_blocks():
            if a <= change.index < a + n:
                ins = vm[b + change.index - a]
                if change.imms[0] in ins.imms and (best is None or sm.ratio() > best[0]):
                    best = (sm.ratio(), code, vm, ins)
    return None if best is None else best[1:]


def promote(change: Change, obj_funcs: dict[str, list[disasm.Insn]], image: Image,
            values: tuple[int, ...], obj: str,
            check: Callable[[str, str], bool] | None = None) -> sitebuild.SiteResult | None:
    """A verified site for ``change``, or None when no expression explains it or the
    instruction is not found in vmlinux. A divided expression (V/d) is kept only if
    ``check(expr, width)`` confirms it at its ``held_out`` values; without ``check`` it is
    never kept."""
    texts = expressions(values, change.imms, change.mnemonic in ("shl", "sal", "shr", "sar"))
    if not texts and change.mnemonic == "movabs" and (parts := halves.split(change.imms)):
        which, const, half = parts  # two merged 32-bit stores: one half follows V
        texts = [halves.compose(which, const, t) for t in expressions(values, half)]
    if not texts or change.function not in obj_funcs or change.stack_frame:
        return None
    found = _vm_instruction(change, obj_funcs[change.function], image)
    if found is None:
        return None
    code, vm, ins = found
    width = _WIDTH.get(ins.imm_size, "u64")
    text = next((t for t in texts if ("/" not in t and ">>" not in t)
                 or (check is not None and check(t, width))), None)
    if text is None:
        return None
    func = image.function_at(ins.address)
    assert func is not None
    cand = Candidate(func, ins, text, width, "found by the oracle: a function of V",
                     f"{obj} (oracle)", False, obj[:-2] + ".c", image.module)
    res = sitebuild.build(code, cand, vm, values[0])
    if (m := re.fullmatch(r"V\*\d+/(\d+)([+-]\d+)?", text)) is not None:
        res.constraints.append((f"multiple_of:{m.group(1)}", f"{text} at {func.name}+"
                                f"{ins.address - func.start:#x} is exact only on multiples "
                                f"of {m.group(1)} (the code rounds V)"))
    if (bound := halves.power_bound(text)) is not None:
        res.constraints.append((f"max:{bound}", f"{text} at {func.name}+"
                                f"{ins.address - func.start:#x}: C computes the shift in int, "
                                f"negative above V={bound}"))
    return res if res.site is not None else None
