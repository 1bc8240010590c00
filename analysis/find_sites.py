"""Seeds -> candidate instructions -> sites, one function per worker task.

The line table maps each source use to address ranges (inlined copies included); capstone
finds immediates there that encode V0; angr steps each span in a worker process. A use
whose own line has no rows (GCC attributed the instruction to an inlined header line) is
retried on the neighbouring lines of the same function and marked as a fallback.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from analysis import candidates, chains, chainsite, disasm, sitebuild
from analysis.elfimage import Function, Image
from analysis.linetable import LineTable, Row
from analysis.seeds import Seed
from autotune.core import expr as exprs

if TYPE_CHECKING:
    from analysis.oracle import OracleReport

FALLBACK_LINES = 3
# below this, an exact immediate anywhere in a function is too likely a coincidence
WHOLE_FUNCTION_MIN = 8
AFTER_ROWS = 6  # instructions past a use's rows still tried when its own rows hold no match


@dataclass
class SeedSites:
    """Everything found for one seed."""

    seed: Seed
    results: list[sitebuild.SiteResult] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # uses with no code in this image
    oracle: OracleReport | None = None
    # compile unit (.c) of every use's code -> its image's module ("" for vmlinux): the
    # oracle recompiles all of them, sites or not, so no copy of V goes unseen
    objects: dict[str, str] = field(default_factory=dict)


def scale_of(seed: Seed, macros: dict[str, int]) -> int:
    """A literal seed written as ``N * UNIT`` (``2 * TICK_NSEC``) compiles to N*UNIT."""
    if seed.kind != "literal":
        return 1
    for unit, value in macros.items():
        if f"{seed.default} * {unit}" in seed.body or f"{seed.default}*{unit}" in seed.body:
            return value
    return 1


def ranges_of(table: LineTable, file: str, line: int) -> tuple[list[Row], bool]:
    rows = table.rows(file, line)
    if rows:
        return rows, False
    near = [r for d in range(1, FALLBACK_LINES + 1) for ln in (line - d, line + d)
            for r in table.rows(file, ln)]
    return near, True


def _cu_of(rows: list[Row], addr: int, func: Function) -> str:
    """The compile unit (-> the object the oracle recompiles) holding ``addr``."""
    for r in rows:
        if r.start <= addr < max(r.end, r.start + 1):
            return r.cu
    return next((r.cu for r in rows if func.start <= r.start < func.end), "")


FuncKey = tuple[int, Function]  # (image index, function): modules share addresses


def collect(seeds: list[Seed], images: list[tuple[Image, LineTable]], scales: dict[str, int]
            ) -> tuple[dict[str, SeedSites], dict[FuncKey, list]]:
    """Candidates per function (for the workers) and the per-seed bookkeeping."""
    out = {s.name: SeedSites(s) for s in seeds}
    per_func: dict[FuncKey, list[tuple[str, candidates.Candidate]]] = defaultdict(list)
    insns_cache: dict[FuncKey, list[disasm.Insn]] = {}
    for seed in seeds:
        if seed.default is None or not seed.uses:
            continue
        v0, scale = seed.default, scales[seed.name]
        seen: set[tuple[int, int, str]] = set()
        for use in seed.uses:
            where = f"{use.file}:{use.line}"
            any_rows = False
            for k, (image, table) in enumerate(images):
                rows, fallback = ranges_of(table, use.file, use.line)
                out[seed.name].objects.update({r.cu: image.module for r in rows})
                ranges = [(r.start, r.end) for r in rows]
                any_rows = any_rows or bool(ranges)
                keys = {(k, f) for a, _ in ranges if (f := image.function_at(a)) is not None}
                for key in keys - insns_cache.keys():
                    insns_cache[key] = disasm.disassemble(image.code(key[1]), key[1].start)

                def add(key: FuncKey, ins: disasm.Insn, text: str, width: str, why: str,
                        fallback: bool, rows: list[Row] = rows, image: Image = image,
                        seen: set = seen, name: str = seed.name, where: str = where) -> bool:
                    if (key[0], ins.address, text) in seen:
                        return False
                    seen.add((key[0], ins.address, text))
                    per_func[key].append((name, candidates.Candidate(
                        key[1], ins, text, width, why, where, fallback,
                        _cu_of(rows, ins.address, key[1]), image.module)))
                    return True

                hits = 0
                for key in keys:
                    for ins in candidates.in_ranges(insns_cache[key], ranges):
                        for text, width, why in candidates.match(ins, v0, scale, use.unit):
                            hits += add(key, ins, text, width, why, fallback)
                if not hits:
                    for key, ins in _after_rows(insns_cache, keys, ranges):
                        for text, width, why in candidates.match(ins, v0, scale, use.unit):
                            hits += add(key, ins, text, width, f"{why}; just after the use's rows",
                                        True)
                for key in keys:  # x * f(V) as lea/shl/sub chains: no immediate to match
                    for chain, text in _chains(insns_cache[key], ranges, v0, scale, use.unit):
                        add(key, insns_cache[key][chain.start], text, f"u{chain.bits}",
                            chains.WHY, fallback)
                if hits or v0 < WHOLE_FUNCTION_MIN:
                    continue
                # GCC moved the immediate to a line of an inlined header (or hoisted it): take
                # exact matches anywhere in the function, as fallbacks the oracle must confirm.
                exact = exprs.parse(use.unit).evaluate(v0) * scale
                text = use.unit if use.unit == "V" else f"({use.unit})"
                for key in keys:
                    for ins in insns_cache[key]:
                        if ins.mnemonic in ("mov", "cmp") and exact in ins.imms:
                            add(key, ins, text if scale == 1 else f"{text}*{scale}",
                                "u32" if ins.imm_size <= 4 else "u64",
                                "exact value hoisted out of the use's line", True)
            if not any_rows:
                out[seed.name].missing.append(where)
    return out, per_func


def _chains(insns: list[disasm.Insn], ranges: list[tuple[int, int]], v0: int, scale: int,
            unit: str) -> list[tuple[chains.Chain, str]]:
    """Multiply chains on a use's rows by a factor that encodes V0 (``x*1280`` as
    ``lea (x,x,4); shl $8`` in fits_capacity), with their expression."""
    if scale != 1 or unit != "V":
        return []
    factors = chains.seed_factors(v0)
    on = {k for k, i in enumerate(insns) if any(a <= i.address < b for a, b in ranges)}
    ends = {k + d for k in on for d in range(chains.WINDOW)}  # GCC gives the last step the next line
    return [(c, factors[c.factor]) for c in chains.find(insns, set(factors), ends)
            if chains.worth_a_site(c, insns) and on & set(c.members)]


def _after_rows(insns: dict[FuncKey, list[disasm.Insn]], keys: set[FuncKey],
                ranges: list[tuple[int, int]]) -> list[tuple[FuncKey, disasm.Insn]]:
    """The few instructions right after each of a use's row ranges, in address order.

    GCC often gives the compare or the argument load of a statement the next statement's
    line, or the line of an inlined callee that consumes the value (``time`` of an inlined
    ``get_curr_sync_buff``), so the immediate sits just past the use's own rows.
    """
    out: dict[tuple[FuncKey, int], disasm.Insn] = {}
    for key in keys:
        code = insns[key]
        for _, end in ranges:
            first = next((k for k, ins in enumerate(code) if ins.address >= end), len(code))
            if first == 0 or not code[first - 1].address < end:
                continue
            for ins in code[first:first + AFTER_ROWS]:
                if not any(a <= ins.address < b for a, b in ranges):
                    out.setdefault((key, ins.address), ins)
    return [(key, ins) for (key, _), ins in sorted(out.items(), key=lambda kv: kv[0][1])]


def _work(args: tuple[bytes, list[tuple[str, candidates.Candidate]], dict[str, int]]
          ) -> list[tuple[str, sitebuild.SiteResult]]:
    code, cands, defaults = args
    func = cands[0][1].function
    insns = disasm.disassemble(code, func.start)
    return [(name, log2_constraints((chainsite if c.why == chains.WHY else sitebuild).build(
        code, c, insns, defaults[name]))) for name, c in cands]


def log2_constraints(res: sitebuild.SiteResult) -> sitebuild.SiteResult:
    """At a shift by log2(V), V is no shift amount (the domain's width bound keeps log2(V) a
    valid count) and only powers of two are exact. Said here, before the oracle picks its
    values from the constraints (powers of two, not V0+1)."""
    if res.site is None or "log2" not in res.site.expr:
        return res
    where = f"{res.site.function}+{res.site.cs_start:#x}"
    res.constraints = [c for c in res.constraints if c[0] not in ("shift", "pow2")] + [
        ("pow2", f"V enters the code as a shift by ilog2(V) at {where}: only powers of two are exact")]
    return res


def _init_worker() -> None:
    from analysis.symstep import import_angr

    import_angr()  # once per worker, not per task


def find(seeds: list[Seed], images: list[tuple[Image, LineTable]], scales: dict[str, int], *,
         jobs: int, on_function: Callable[[int, int], None] | None = None) -> dict[str, SeedSites]:
    """Run the whole pipeline; ``on_function(done, total)`` reports progress."""
    out, per_func = collect(seeds, images, scales)
    defaults = {s.name: s.default for s in seeds if s.default is not None}
    tasks = [(images[k][0].code(f), cands, defaults) for (k, f), cands in per_func.items()]
    done = 0
    with ProcessPoolExecutor(max_workers=max(1, jobs), initializer=_init_worker) as pool:
        for results in pool.map(_work, tasks, chunksize=4):
            for name, res in results:
                out[name].results.append(res)
            done += 1
            if on_function:
                on_function(done, len(tasks))
    return out
