"""The oracle's view of a function holding multiply chains: each chain as one operation.

At another value GCC computes ``x * f(V')`` with other instructions (``lea (,x,8); sub`` at
V=8, ``mov; shl $4; sub`` at V=16), so the plain diff calls the function reshaped. Here, in
every build, each chain proven (by the symbolic step, on the object's own bytes) to compute
``x * f(v)`` at that build's value becomes one pseudo instruction ``chain f`` and the builds
are diffed again: the function is accepted only if everything else still aligns, and a
chain site is confirmed only where its chain aligns with a chain of the same f in every
build. When the collapsed builds still differ, the plain diff stands (the chain sites are
then refuted, the rest judged as before).

GCC's signed ``x / 2**n`` is the same kind of reshape: its rounding bias is ``shr $63; add``
for n = 1 and ``test; lea 2**n-1; cmovns`` above, before the same ``sar $n``. A function
holding such a site (``recompute_op: sdiv_pow2``, which recomputes the whole idiom) has each
bias collapsed to one ``sdiv-bias`` in every build; its ``sar`` stays and is matched as before.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from analysis import chains, disasm, objdiff, promote, sitebuild, symstep
from analysis.elfimage import Image
from analysis.objdiff import Change

Builds = list[dict[str, list[disasm.Insn]]]


def apply(paths: list[Path], builds: Builds, values: tuple[int, ...], results: list,
          image: Image, changes: list[Change], reshaped: list[str]
          ) -> tuple[list[Change], list[str], set[tuple[str, int]]]:
    """(changes, reshaped, confirmed chains as (function, default-build index)) once every
    function holding a chain site of ``results`` is diffed with its chains collapsed."""
    by_fn: dict[str, list] = {}
    for r in results:
        if r.site is not None and (r.candidate.why == chains.WHY
                                   or r.site.recompute_op == "sdiv_pow2"):
            by_fn.setdefault(r.candidate.function.name, []).append(r)
    if not by_fn:
        return changes, reshaped, set()
    codes = [objdiff.function_code(p) for p in paths]
    confirmed: set[tuple[str, int]] = set()
    for fn, rs in by_fn.items():
        if any(fn not in b for b in builds):
            continue
        func = rs[0].candidate.function
        vm = disasm.disassemble(image.code(func), func.start)
        starts = {k: r.candidate.expr for r in rs if r.candidate.why == chains.WHY
                  and (k := promote.obj_index(builds[0][fn], vm, r.candidate.insn.address))
                  is not None}
        collapsed = [_collapsed(b[fn], c[fn], v, starts, k == 0)
                     for k, (b, c, v) in enumerate(zip(builds, codes, values, strict=True))]
        sub_changes, sub_reshaped = objdiff.diff([{fn: c[0]} for c in collapsed])
        if sub_reshaped:
            continue
        insns, origin = collapsed[0]
        confirmed |= {(fn, origin[k]) for k, i in enumerate(insns) if i.mnemonic.startswith("chain")}
        changes = [c for c in changes if c.function != fn] + [
            replace(c, index=origin[c.index]) for c in sub_changes]
        reshaped = [f for f in reshaped if f != fn]
    return changes, reshaped, confirmed


def _collapsed(insns: list[disasm.Insn], code: bytes, v: int, starts: dict[int, str],
               default: bool) -> tuple[list[disasm.Insn], list[int]]:
    """One build's function with its proven chains of the sites' expressions collapsed: in
    the default build only the sites' own chains, in the others any chain of f(v)."""
    found: list[tuple[chains.Chain, str]] = []
    for text in sorted(set(starts.values())):
        for bits in (32, 64):
            factor = chains.factor_of(text, v, bits)
            for c in chains.find(insns, {factor}):
                if c.bits != bits or (default and starts.get(c.start) != text):
                    continue
                if symstep.prove_product(code, 0, insns[c.start].address, c.end - c.start + 1,
                                         c.dest, c.source, c.factor, c.bits):
                    found.append((c, f"chain{bits} {text}"))
    for k in range(len(insns)):
        if insns[k].mnemonic == "sar" and (d := sitebuild.signed_division(insns, k)):
            first = d[0]
            if first and _copies(insns[first - 1], insns[k].writes_reg, d[1]):
                first -= 1  # 'mov %rbx, %rax; shr $63, %rax': the n = 1 bias works on a copy
            bias = tuple(range(first, k))
            found.append((chains.Chain(first, k - 1, bias, "", d[1], 0, 64, (first, k - 1)),
                          "sdiv-bias"))
    taken: set[int] = set()
    kept = []
    for c, label in sorted(found, key=lambda cl: cl[0].start):
        if not taken & set(c.members):
            kept.append((c, label))
            taken |= set(c.members)
    return chains.collapse(insns, kept)


def _copies(ins: disasm.Insn, dest: str | None, source: str) -> bool:
    """Whether ``ins`` is ``mov source, dest`` (Intel order: dest first)."""
    ops = [o.strip() for o in ins.op_str.split(",")]
    return ins.mnemonic == "mov" and ops == [dest, source]
