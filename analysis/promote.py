"""Turn an oracle change no site explained into a site, when it is affine in V (or V>>s).

Three builds give three (V, immediate) points; if they lie on one integer line
IV = a*V + b, the instruction encodes a derived value of the constant (``cmp $(8V-1)``,
``and $(HZ/2-V)``). The object's function is aligned with the shipped one to find the
same instruction in vmlinux, which must hold the default's immediate, and the usual span
analysis then makes it a site. The affine fit is checked by the third point.
"""

from __future__ import annotations

import difflib

from analysis import disasm, sitebuild
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
    """Capstone shows some 32-bit immediates unsigned: fold them to the signed reading."""
    return imm - (1 << 32) if (1 << 31) <= imm < (1 << 32) else imm


def render(a: int, b: int) -> str:
    head = "V" if a == 1 else "-V" if a == -1 else f"V*{a}"
    return head if b == 0 else f"{head}+{b}" if b > 0 else f"{head}-{-b}"


def expression(values: tuple[int, ...], imms: tuple[int, ...], shift_count: bool = False
               ) -> str | None:
    """IV = f(V) through the three points: affine, a*log2(V)+b for the count of a shift
    (``shift_count``) at power-of-two values, or V>>s (+b) for a divided constant."""
    ab = fit(values, imms)
    if ab is not None:
        return render(*ab)
    if shift_count and all(v > 0 and v & (v - 1) == 0 for v in values):
        # before V>>s: at V0, 2V0, 4V0 a count growing by one per doubling also fits V>>s+b
        # when V0 < 2^s, which is wrong at the next doubling
        ab = fit(tuple(v.bit_length() - 1 for v in values), imms)
        if ab is not None:
            return render(*ab).replace("V", "log2(V)", 1)
    signed = [_signed(i) for i in imms]
    for shift in range(1, 7):
        b = signed[0] - (values[0] >> shift)
        if all((v >> shift) + b == i for v, i in zip(values, signed, strict=True)):
            head = f"(V >> {shift})"
            return head if b == 0 else f"{head}+{b}" if b > 0 else f"{head}-{-b}"
    return None


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
            values: tuple[int, ...], obj: str) -> sitebuild.SiteResult | None:
    """A verified site for ``change``, or None when it is not affine or not found in vmlinux."""
    text = expression(values, change.imms, change.mnemonic in ("shl", "sal", "shr", "sar"))
    if text is None or change.function not in obj_funcs or change.stack_frame:
        return None
    found = _vm_instruction(change, obj_funcs[change.function], image)
    if found is None:
        return None
    code, vm, ins = found
    func = image.function_at(ins.address)
    assert func is not None
    cand = Candidate(func, ins, text, _WIDTH.get(ins.imm_size, "u64"),
                     "found by the oracle: affine in V", f"{obj} (oracle)", False,
                     obj[:-2] + ".c", image.module)
    res = sitebuild.build(code, cand, vm, values[0])
    return res if res.site is not None else None
