"""A strength-reduced multiply chain -> a save-recompute site (or why it cannot be one).

The save probe on the chain's first instruction reads the input register; the site probe
on the instruction after the chain writes ``input * f(V)`` into the output register. That
is exact only when nothing else the chain computed survives it, so a chain is refused when
a jump enters it past its first instruction (the save would be skipped), when a register
it wrote besides the output is read afterwards, or when the flags its last flag-setting
instruction left are read (both would still hold values of V0).
"""

from __future__ import annotations

from analysis import chains, disasm, sitebuild, symstep
from analysis.candidates import Candidate
from analysis.sitebuild import SiteResult
from autotune.core import expr as exprs
from autotune.core.catalog import SafeSpan, Site

_WIDTH = {32: "u32", 64: "u64"}
_KILLS = ("mov", "lea", "movzx", "movsx", "movsxd")  # write their first operand, read no other
# instructions that touch no register but those they name (cdqe, mul, push... read others)
_EXPLICIT = frozenset({"mov", "movzx", "movsx", "movsxd", "lea", "add", "sub", "and", "or",
                       "xor", "cmp", "test", "shl", "sal", "shr", "sar", "inc", "dec", "neg",
                       "not", "bt", "nop", "endbr64"})


def build(code: bytes, cand: Candidate, insns: list[disasm.Insn], v0: int) -> SiteResult:
    """Analyse the chain that starts at ``cand.insn`` and multiplies by ``cand.expr`` at V0."""
    func, base = cand.function, cand.function.start
    res = SiteResult(cand)
    k = insns.index(cand.insn)
    factor = exprs.parse(cand.expr).evaluate(v0, "s64")
    chain = next((c for c in chains.find(insns, {factor}, range(k, k + chains.WINDOW))
                  if c.start == k), None)
    where = f"{func.name}+{cand.insn.address - base:#x}"
    if chain is None:
        res.reason = f"no x*{factor} chain starts at {where}"
        return res
    last = insns[chain.end]
    why = _refusal(insns, chain, base, func.end)
    if not why and not symstep.prove_product(code, base, cand.insn.address,
                                             chain.end - chain.start + 1, chain.dest,
                                             chain.source, chain.factor, chain.bits):
        why = "the symbolic step does not prove it a multiply of one input"
    if why:
        res.reason = f"x*{cand.expr} chain at {where}: {why}"
        return res
    flow = symstep.step_after(code, base, last.next, chain.dest, func.end)
    sitebuild.record_flow(res, flow)
    if flow.leaves:
        sitebuild.escapes(res, v0, flow.leaves, flow.leaves_at or last.address)
    if flow.escaped or flow.live_until is None:
        spans = [SafeSpan(function=func.name, start=0, end=func.size, conservative=True)]
    else:
        hi = max(flow.span()[1], last.address)
        end = next(i.next for i in insns if i.address == hi)
        spans = [SafeSpan(function=func.name, start=cand.insn.address - base, end=end - base)]
    width = _WIDTH[chain.bits]
    res.site = Site(function=func.name, module=cand.module or None,
                    cs_start=cand.insn.address - base, cs_end=last.next - base,
                    probe_offset=last.next - base, probe_offsets=[last.next - base],
                    location=chain.dest, width=width, expr=cand.expr,  # type: ignore[arg-type]
                    synthesis="save-recompute",
                    expected_default=exprs.parse(cand.expr).evaluate(v0, width),
                    save_offset=cand.insn.address - base, recompute_op="mul",
                    save_input=chain.source, safe_spans=spans, source=cand.use)
    return res


def _refusal(insns: list[disasm.Insn], chain: chains.Chain, base: int, end: int) -> str:
    """Why recomputing only the chain's output would leave the code inconsistent ("": it
    would not)."""
    inside = {insns[k].address for k in range(chain.start + 1, chain.end + 1)}
    for ins in insns:
        if ins.branch and ins.imms and (to := disasm.jump_target(ins)) in inside:
            return (f"'{ins.mnemonic}' at +{ins.address - base:#x} enters it at "
                    f"+{to - base:#x}, past the save probe: not a single block")
    dest = chains.full_name(chain.dest)
    for reg in sorted({chains.full_name(insns[m].op_str.split(",")[0].strip())
                       for m in chain.members} - {dest}):
        if (reader := _read_before_written(insns, chain.end + 1, reg)) is not None:
            return (f"it also leaves {reg}, which '{reader.mnemonic} {reader.op_str}' at "
                    f"+{reader.address - base:#x} may read")
    flagged = [m for m in chain.members if insns[m].writes_flags]
    if flagged and (reader := disasm.flags_reader(insns, flagged[-1], base, end)) is not None:
        return (f"'{insns[flagged[-1]].mnemonic} {insns[flagged[-1]].op_str}' sets flags that "
                f"'{reader.mnemonic} {reader.op_str}' at +{reader.address - base:#x} may read")
    return ""


def _read_before_written(insns: list[disasm.Insn], k: int, reg: str) -> disasm.Insn | None:
    """The instruction that may read ``reg`` from ``insns[k]`` on, or None when a
    straight-line write kills it first; a branch, a call, a return or an instruction with
    implicit operands is a possible reader."""
    for ins in insns[k:]:
        ops = [o.strip() for o in ins.op_str.split(",")]
        named = [chains.full_name(o) for o in chains.registers_in(ins.op_str)]
        if ins.branch or not (ins.mnemonic in _EXPLICIT or ins.mnemonic.startswith(("cmov", "set"))
                              or (ins.mnemonic == "imul" and len(ops) > 1)):
            return ins
        first = chains.full_name(ops[0]) if ops and ops[0] in chains.FULL else ""
        if first == reg and ins.mnemonic in _KILLS and reg not in map(
                chains.full_name, chains.registers_in(",".join(ops[1:]))):
            return None
        if reg in named:
            return ins
    return None
