"""One candidate instruction -> one catalog Site (or the reason it cannot be one).

Decides the synthesis type from the seed's shape, asks ``symstep`` where IV flows, and
derives the critical span, the equivalent probe offsets (the jump-optimizable one first)
and the safe span. Runs in worker processes, one function per task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

from analysis import disasm, flagrules, operands, symstep
from analysis.candidates import Candidate
from analysis.escape import escape_constraint
from autotune.core import expr as exprs
from autotune.core.catalog import MemoryLocation, MemoryOperand, SafeSpan, Site

# seed mnemonic -> recompute_op of a save-recompute site (input OP f(V))
_RECOMPUTE = {"add": "add", "sub": "add", "and": "and", "or": "or", "imul": "mul",
              "shl": "shl", "sal": "shl", "shr": "shr", "sar": "sar", "xor": "xor", "lea": "add"}
_COMPARE = ("cmp", "test")


@dataclass
class SiteResult:
    """A site, or why a candidate cannot become one; plus what constrains V."""

    candidate: Candidate
    site: Site | None = None
    reason: str = ""
    unsafe: str = ""
    constraints: list[tuple[str, str]] = field(default_factory=list)  # (kind, reason)
    notes: list[str] = field(default_factory=list)


def _probe_offsets(insns: list[disasm.Insn], first: int, last: int, func_end: int,
                   base: int) -> list[int]:
    """Offsets of instructions in [first, last] (addresses) that only the seed's path reaches,
    jump-optimizable ones first. From a join on (``disasm.first_join``) another path brings
    other contents into the location (tcp_dec_quickack_mode's 'quick == 0' branch joins right
    after the store of TCP_ATO_MIN): empty when ``first`` itself is one."""
    if (join := disasm.first_join(insns, first, last)) is not None:
        last = join - 1
    idx = [i for i, ins in enumerate(insns) if first <= ins.address <= last]
    good = [insns[i].address - base for i in idx if disasm.jump_optimizable(insns, i, func_end)]
    rest = [insns[i].address - base for i in idx if insns[i].address - base not in good]
    return good + rest


def _flags_reader(insns: list[disasm.Insn], k: int) -> int | None:
    """Index of the instruction that reads the flags the compare at ``k`` set."""
    for j in range(k + 1, min(k + 16, len(insns))):
        if insns[j].reads_flags:
            return j
        if insns[j].writes_flags or insns[j].branch:
            return None
    return None


def _save_input(s: disasm.Insn, func_start: int | None) -> str | MemoryOperand | None:
    """What a save probe must read to recompute ``s``'s result: its own location
    (``add $i, %r``, ``lea d(%r), %r``), a 3-operand source (``lea d(%src), %dst``,
    ``imul $i, %src, %dst``) or memory source (``imul $i, mem, %dst``, read at the imul, before
    it may overwrite its own address register). Raises ValueError when there is none."""
    ops = [o.strip() for o in s.op_str.split(",")]
    if s.mnemonic == "lea":
        if s.mem is None or s.mem[0] in ("", "rip"):
            raise ValueError(f"'{s.mnemonic} {s.op_str}': an indexed or rip-relative address "
                             "is no single input register to save")
        return None if s.mem[0] == s.writes_reg else s.mem[0]
    if s.mnemonic == "imul" and len(ops) == 3 and ops[0] != ops[1]:
        return operands.memory_operand(s, func_start) if "[" in ops[1] else ops[1]
    return None


def signed_division(insns: list[disasm.Insn], k: int) -> tuple[int, str] | None:
    """(first index, dividend register) when ``sar r, n`` at ``k`` ends GCC's signed
    ``x / 2**n`` idiom, which biases a negative x by 2**n - 1 to round toward zero:
    ``shr r, 63; add r, x; sar r, 1`` or ``lea r, [x + 2**n - 1]`` and ``test x, x`` (either
    order), ``cmovns r, x``. The bias changes with n, so the site recomputes from x."""
    r, n = insns[k].writes_reg, insns[k].imms[-1] if insns[k].imms else 0
    if k < 3 or r is None:
        return None
    before = insns[k - 3:k]
    ops = [[o.strip() for o in i.op_str.split(",")] for i in before]
    names = [i.mnemonic for i in before]
    if n == 1 and names[1:] == ["shr", "add"] and ops[1][0] == ops[2][0] == r \
            and before[1].imms[-1:] in ((31,), (63,)):
        return k - 2, ops[2][1]
    if names[2] != "cmovns" or sorted(names[:2]) != ["lea", "test"] or ops[2][0] != r:
        return None
    lea = before[names.index("lea")]
    if lea.mem is None or lea.writes_reg != r or lea.mem[1] != (1 << n) - 1:
        return None
    x = lea.mem[0]
    test = ops[names.index("test")]
    if not (_same_register(ops[2][1], x) and _same_register(test[0], x) and test[0] == test[1]):
        return None
    return k - 3, ops[2][1]


def _same_register(a: str, b: str) -> bool:
    """Whether two x86 register names are views of one general-purpose register."""
    try:
        return symstep.full_register(a)[0] == symstep.full_register(b)[0]
    except (ValueError, KeyError):
        return False


def build(code: bytes, cand: Candidate, insns: list[disasm.Insn], v0: int) -> SiteResult:
    """Analyse one candidate in its function's code."""
    func, s = cand.function, cand.insn
    res = SiteResult(cand)
    k = insns.index(s)
    base = func.start
    expected = exprs.parse(cand.expr).evaluate(v0, cand.width)
    common: dict[str, Any] = dict(function=func.name, module=cand.module or None, cs_start=s.address - base, expr=cand.expr,
                  width=cand.width, expected_default=expected, source=cand.use)
    mn = s.mnemonic
    if mn in _COMPARE:
        if mn == "test" and (why := flagrules.operand_refusal(s, insns, base)):
            res.reason = f"{why} ({func.name}+{s.address - base:#x})"
            return res
        if mn == "test" and cand.expr == "V-1":
            res.constraints.append(("pow2", "V-1 is a mask: x & (V-1) == 0 means x mod V == 0"))
        j = _flags_reader(insns, k)
        if j is None:
            res.reason = f"{mn} at {func.name}+{s.address - base:#x}: no flags reader in its block"
            return res
        reader = insns[j]
        try:
            other = operands.compare_operand(s, None if cand.module else base)
        except ValueError as e:
            res.reason = f"{e} ({func.name}+{s.address - base:#x})"
            return res
        # the probe reads the operand again: only where it still holds what was compared
        last = operands.kept_until(insns, k, reader.address, other)
        probes = _probe_offsets(insns, s.next, last, func.end, base)
        if not probes:
            res.reason = (f"{mn} at {func.name}+{s.address - base:#x}: another path joins before "
                          f"its flags reader at +{reader.address - base:#x}, with other flags")
            return res
        res.site = Site(**common, cs_end=reader.address - base, probe_offset=probes[0],
                        probe_offsets=probes, location="flags", synthesis="flags",
                        flags_op="test" if mn == "test" else "cmp",
                        compare_operand=other,
                        safe_spans=[SafeSpan(function=func.name, start=s.address - base,
                                             end=reader.next - base)])
        return res
    if s.mem is not None and mn.startswith("mov") and s.writes_reg is None:
        base_reg, disp, size = s.mem
        if base_reg in ("rip", "") or size not in (1, 2, 4, 8):
            res.reason = f"store to a global at {func.name}+{s.address - base:#x}: tune the variable"
            return res
        res.site = Site(**common, cs_end=s.next - base, probe_offset=s.next - base,
                        probe_offsets=[s.next - base], guard_offset=_guard(insns, k, base),
                        location=MemoryLocation(base_reg=base_reg, disp=disp,
                                                size=cast(Literal[1, 2, 4, 8], size)),
                        synthesis="memory",
                        safe_spans=[SafeSpan(function=func.name, start=s.address - base,
                                             end=s.next - base)])
        escapes(res, v0, "stored to memory", s.address)
        return res
    if mn == "push" and s.imms:
        return _pushed(res, common, insns, k, v0)
    division = signed_division(insns, k) if mn == "sar" and cand.expr == "log2(V)" else None
    ends = [j for j in range(k + 1, min(k + 4, len(insns))) if insns[j].mnemonic == "sar"
            and (d := signed_division(insns, j)) is not None and d[0] <= k]
    if ends:  # its 2**n - 1 bias is V-1 too, but the division's own site recomputes it
        res.reason = (f"'{mn} {s.op_str}' at {func.name}+{s.address - base:#x} is the rounding "
                      f"bias of a signed division by V (sar at +{insns[ends[0]].address - base:#x})")
        return res
    zero = disasm.zero_idiom(s)  # 'xor %r, %r' loads V0 = 0: a register site like 'mov $V'
    if (mn in _RECOMPUTE or division or zero) and (why := flagrules.stale_flags(insns, k, base, func.end)):
        res.reason = f"{why} ({func.name}+{s.address - base:#x})"
        return res
    if s.mem is not None and s.writes_reg is None and mn in ("add", "sub"):
        return _memory_rmw(res, common, insns, k, v0)
    if s.writes_reg is None or (mn not in ("mov", "movabs") and mn not in _RECOMPUTE
                                and division is None and not zero):
        res.reason = f"immediate in '{mn} {s.op_str}' at {func.name}+{s.address - base:#x}"
        return res
    try:
        save_input = _save_input(s, None if cand.module else base) if mn in ("lea", "imul") else None
    except ValueError as e:
        res.reason = f"{e} ({func.name}+{s.address - base:#x})"
        return res
    save_at, op = s.address, _RECOMPUTE.get(mn)
    if division is not None:  # the save sits before the rounding bias: the whole idiom recomputes
        save_at, save_input = insns[division[0]].address, division[1]
        common["cs_start"] = save_at - base
        op = "sdiv_pow2"
    try:
        flow = symstep.step_after(code, base, s.next, s.writes_reg, func.end)
    except ValueError as e:
        res.reason = str(e)
        return res
    record_flow(res, flow)
    if mn in ("shl", "sal", "shr", "sar"):
        res.constraints.append(("shift", f"V is the shift amount of '{mn}'"))
    if "<< V" in cand.expr:
        res.constraints.append(("shift", f"'{mn} {s.op_str}' holds 1 << V: V is a shift count"))
    select = k > 0 and insns[k - 1].mnemonic == "sbb"  # 'sbb r,r; and $c': a select, not a mask
    if flow.mask_use or (mn == "and" and cand.expr == "V-1" and not select):
        res.constraints.append(("pow2", "V-1 is used as a mask (x & (V-1) means x mod V)"))
    if flow.leaves:
        escapes(res, v0, flow.leaves, flow.leaves_at if flow.leaves_at is not None else s.address)
    elif flow.escaped and escape_constraint(v0, cand.expr, res.constraints, "?") is not None:
        # the straight line did not see IV die: walk every path (both sides of branches)
        how, at = symstep.leaves(code, base, s.next, s.writes_reg, func.end)
        if how:  # "not followed": not proven to stay, as if it left
            escapes(res, v0, "" if how == "not followed" else how, at or s.address)
    reader_at = flow.first_reader if flow.first_reader is not None else s.next
    probes = _probe_offsets(insns, s.next, reader_at, func.end, base)
    if flow.escaped or flow.live_until is None:
        spans = [SafeSpan(function=func.name, start=0, end=func.size, conservative=True)]
    else:  # the stepped path, which a backward jump may take below the seed
        lo, hi = flow.span()
        end = next(i.next for i in insns if i.address == hi)
        spans = [SafeSpan(function=func.name, start=min(save_at, lo) - base, end=end - base)]
    recompute = mn not in ("mov", "movabs") and not zero
    if mn == "sub":
        _negate(common, v0, cand.width)
    flags_read = (recompute and mn in flagrules.REWRITTEN
                  and disasm.flags_reader(insns, k, base, func.end) is not None)
    guard = None
    if flags_read or not probes:  # a reader may consume them right after the sub: fix up there
        reader_at, probes = s.next, [s.next - base]
        # a save-recompute site acts only on a hit whose save probe ran: that guards it
        guard = None if recompute else _guard(insns, k, base)
    res.site = Site(**common, cs_end=reader_at - base, probe_offset=probes[0], probe_offsets=probes,
                    location=s.writes_reg,
                    synthesis="save-recompute" if recompute else "register",
                    save_offset=save_at - base if recompute else None,
                    recompute_op=op if recompute else None,  # type: ignore[arg-type]
                    save_input=save_input, recompute_flags=flags_read,
                    flags_op=flagrules.REWRITTEN[mn] if flags_read else None, guard_offset=guard,
                    safe_spans=spans)
    return res


def _guard(insns: list[disasm.Insn], k: int, base: int) -> int | None:
    """The seed's own offset when another path joins at the instruction after it, where the
    site's probe must sit (a store or load is read back right after): only a hit that
    passed the seed (its guard probe marks the task) is checked and rewritten."""
    s = insns[k]
    return s.address - base if disasm.first_join(insns, s.next, s.next) is not None else None


def record_flow(res: SiteResult, flow: symstep.Flow) -> None:
    """What the step after a site's result says of V: an address it forms makes the knob
    unsafe, a shift count it sets constrains it (chain sites share this with ``build``)."""
    func = res.candidate.function
    res.notes += flow.notes
    if flow.address_use is not None:
        res.unsafe = f"V flows into a memory address at {func.name}+{flow.address_use - func.start:#x}"
    if flow.shift_use is not None:
        res.constraints.append(("shift", f"V is a shift amount at "
                                         f"{func.name}+{flow.shift_use - func.start:#x}"))


def escapes(res: SiteResult, v0: int, how: str, at: int) -> None:
    """The pow2 constraint when V leaves the function (analysis/escape.py says why); ``how``
    "" means its path was not followed to its end, so it may leave."""
    func = res.candidate.function
    where = f"{func.name}+{at - func.start:#x}"
    text = (f"V leaves {func.name}: {how} at {where}" if how else
            f"V may leave {func.name}: its paths are not followed past {where} (too many, or "
            "code angr cannot lift)")
    if (c := escape_constraint(v0, res.candidate.expr, res.constraints, text)) is not None:
        res.constraints.append(c)


def _negate(common: dict[str, Any], v0: int, width: str) -> None:
    """``sub $IV`` is ``add $-IV``: the recompute adds."""
    common["expr"] = f"-({common['expr']})"
    common["expected_default"] = exprs.parse(common["expr"]).evaluate(v0, width)


def _pushed(res: SiteResult, common: dict[str, Any], insns: list[disasm.Insn], k: int,
            v0: int) -> SiteResult:
    """``push $IV``: a call's stack argument (the 7th and later), 8 bytes at 0(%rsp) once the
    push ran, sign-extended; overwritten there like a store, with rsp as the base."""
    s = insns[k]
    func, base = res.candidate.function, res.candidate.function.start
    common["width"] = "u64"
    common["expected_default"] = exprs.parse(common["expr"]).evaluate(v0, "u64")
    res.site = Site(**common, cs_end=s.next - base, probe_offset=s.next - base,
                    probe_offsets=[s.next - base], guard_offset=_guard(insns, k, base),
                    location=MemoryLocation(base_reg="rsp", disp=0, size=8), synthesis="memory",
                    safe_spans=[SafeSpan(function=func.name, start=s.address - base,
                                         end=s.next - base)])
    escapes(res, v0, "pushed as a call's argument", s.address)
    return res


def _memory_rmw(res: SiteResult, common: dict[str, Any], insns: list[disasm.Insn], k: int,
                v0: int) -> SiteResult:
    """``add/sub $IV, DISP(%base)``: save the cell before, rewrite it as saved + f(V) after.

    The probe sits on the next instruction, where the base register still names the cell
    (the instruction writes only memory and flags), so the module's memory slot holds.
    """
    s = insns[k]
    func, base = res.candidate.function, res.candidate.function.start
    assert s.mem is not None
    base_reg, disp, size = s.mem
    if base_reg in ("rip", "") or size not in (1, 2, 4, 8):
        res.reason = (f"'{s.mnemonic} {s.op_str}' at {func.name}+{s.address - base:#x}: a global "
                      "or indexed cell: tune the variable")
        return res
    if s.mnemonic == "sub":
        _negate(common, v0, res.candidate.width)
    res.site = Site(**common, cs_end=s.next - base, probe_offset=s.next - base,
                    probe_offsets=[s.next - base],
                    location=MemoryLocation(base_reg=base_reg, disp=disp,
                                            size=cast(Literal[1, 2, 4, 8], size)),
                    synthesis="save-recompute", save_offset=s.address - base, recompute_op="add",
                    safe_spans=[SafeSpan(function=func.name, start=s.address - base,
                                         end=s.next - base)])
    escapes(res, v0, "stored to memory", s.address)
    return res
