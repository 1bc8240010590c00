"""The oracle: recompile only the affected objects at two other values and diff.

For each object holding a site, ``recompile`` builds it at the default and at two values
whose encodings differ (another pair when GCC reshapes a function at the first). A site is
confirmed when the instruction it names changes exactly as its IV = f(V) predicts at both
values; otherwise it is refuted and dropped. Immediates that change where no site points
are promoted to sites when ``promote`` explains them, else reported as uncovered.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis import chaindiff, chains, disasm, kernel_tree, objdiff, promote, recompile
from analysis.elfimage import Image
from analysis.find_sites import SeedSites
from analysis.kernel_files import KernelFiles
from autotune.core import expr as exprs
from autotune.core.errors import EnvironmentProblem

_MASK = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0xFFFF_FFFF, "u64": (1 << 64) - 1}


@dataclass
class OracleReport:
    """What the recompiles said about one seed."""

    values: tuple[int, int] = (0, 0)
    objects: list[str] = field(default_factory=list)
    confirmed: int = 0
    discovered: int = 0
    refuted: list[str] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    seconds: float = 0.0
    problem: str = ""
    # (max, why): GCC reshaped the code above V0, so only values up to max were verified
    bound: tuple[int, str] | None = None


def verify_seed(kernel: KernelFiles, images: dict[str, Image], found: SeedSites, *,
                jobs: int) -> OracleReport:
    """Confirm or refute every site of one seed; refuted sites are dropped from ``found``."""
    import time

    t0 = time.monotonic()
    seed = found.seed
    report = OracleReport()
    live = [r for r in found.results if r.site is not None]
    if not live or seed.default is None:
        return report
    kinds = {k for r in live for k, _ in r.constraints}
    pairs = recompile.value_pairs(seed.default, pow2="pow2" in kinds, shift="shift" in kinds)
    tree = kernel_tree.prepared_tree(kernel.source, kernel.config, jobs=jobs)
    by_obj: dict[str, list] = {}
    for r in live:
        cu = r.candidate.cu
        if not cu.endswith(".c"):
            r.site = None
            r.reason = f"its compile unit {cu or '?'} is not a C file: cannot recompile"
            continue
        by_obj.setdefault(cu[:-2] + ".o", []).append(r)
    modules = {obj: results[0].candidate.module for obj, results in by_obj.items()}
    for cu, module in found.objects.items():  # uses whose code holds no site (yet)
        if cu.endswith(".c") and by_obj.setdefault(cu[:-2] + ".o", []) == []:
            modules[cu[:-2] + ".o"] = module
    with tempfile.TemporaryDirectory(prefix="oracle-", dir=kernel_tree.analysis_cache()) as tmp:
        for obj, results in sorted(by_obj.items()):
            report.objects.append(obj)
            variants = recompile.Variants(tree, seed, obj, Path(tmp) / obj.replace("/", "_"),
                                          jobs)
            image = images[modules[obj]]
            trial = _choose(variants, seed.default, pairs, obj, report, (results, image))
            if report.values == (0, 0):
                report.values = trial.values[1:]  # type: ignore[assignment]
            left = _match(results, trial, report, image)
            for change in left:
                promoted = promote.promote(change, trial.builds[0], image, trial.values, obj,
                                           _held_out_check(variants, trial, change))
                if promoted is None:
                    report.uncovered.append(f"{obj}:{change.describe()}")
                    continue
                promoted.site.verified = "oracle"  # type: ignore[union-attr]
                found.results.append(promoted)
                report.discovered += 1
    report.seconds = time.monotonic() - t0
    return report


@dataclass
class _Trial:
    """The builds of one object at (V0, a, b) and their diff."""

    values: tuple[int, int, int]
    builds: list[dict[str, list[disasm.Insn]]]
    changes: list[objdiff.Change]
    reshaped: list[str]
    chained: set[tuple[str, int]]  # (function, index) of multiply chains aligned in every build

    def changed(self) -> set[tuple[str, int]]:
        """(function, V0 index) of every changed immediate outside reshaped functions."""
        return {(c.function, c.index) for c in self.changes if c.function not in self.reshaped}


def _choose(variants: recompile.Variants, v0: int, pairs: list[tuple[int, int]], obj: str,
            report: OracleReport, sites: tuple[list, Image]) -> _Trial:
    """The first value pair at which no function is reshaped (else the least reshaping one).

    A later pair only stands in for an earlier one if it moves every immediate the earlier
    pair moved: small steps (V0+1) can leave a derived value such as V/1000 unchanged, and an
    unseen use is an untuned copy. What an earlier pair moved and the chosen one did not is
    reported as uncovered; so is every function the chosen pair reshapes.
    """
    trials: list[_Trial] = []
    for a, b in pairs:
        values = (v0, a, b)
        paths = variants.build(list(values))
        builds = [objdiff.functions(o) for o in paths]
        changes, reshaped = objdiff.diff(builds)
        # multiply chains are other instructions at each value: diffed as one operation
        changes, reshaped, chained = chaindiff.apply(paths, builds, values, *sites, changes,
                                                     reshaped)
        trials.append(_Trial(values, builds, changes, reshaped, chained))
        if not reshaped:
            break
    best = min(trials, key=lambda t: len(t.reshaped))
    if max(best.values[1:]) < v0 and trials[0].reshaped:
        report.bound = (v0, f"GCC reshapes {trials[0].reshaped[0]} at V={trials[0].values[1]}: "
                            f"verified at V={best.values[1]},{best.values[2]} <= {v0} only")
    for t in trials:
        for fn, idx in sorted(t.changed() - best.changed()):
            report.uncovered.append(f"{obj}:{fn} #{idx} changes at V={t.values[1]},"
                                    f"{t.values[2]} but not at V={best.values[1]},"
                                    f"{best.values[2]}")
    # a function whose instructions (not only immediates) differ computes something with V
    # that no site rewrites: 'x *= V-1' as 'lea (,%r,8); sub' at V=8, as 'shl $4; sub' at
    # V=16 (BLK_MQ_DISPATCH_BUSY_EWMA_WEIGHT)
    report.uncovered += [f"{obj}:{name} reshaped (V changes its instructions, not only "
                         "immediates)" for name in best.reshaped]
    return best


def _held_out_check(variants: recompile.Variants, trial: _Trial, change: objdiff.Change
                    ) -> Callable[[str, str], bool]:
    """Whether a divided expression also predicts ``change``'s instruction at its held-out
    values (two more builds), in a function GCC does not reshape there."""

    def check(expr_text: str, width: str) -> bool:
        extra = promote.held_out(trial.values[0], expr_text)
        if extra is None:  # a divided form promote cannot place held-out values for
            return False
        builds = [trial.builds[0], *(objdiff.functions(o) for o in variants.build(list(extra)))]
        changes, reshaped = objdiff.diff(builds)
        if change.function in reshaped:
            return False
        values = (trial.values[0], *extra)
        hit = next((c for c in changes if (c.function, c.index) == (change.function,
                                                                    change.index)), None)
        imms = hit.imms if hit is not None else (change.imms[0],) * 3
        return _predicts(expr_text, width, values, imms)

    return check


def _predicts(expr_text: str, width: str, values: tuple[int, ...], imms: tuple[int, ...]) -> bool:
    e = exprs.parse(expr_text)
    mask = _MASK.get(width, (1 << 64) - 1)
    return all(e.evaluate(v, width) & mask == imm & mask for v, imm in zip(values, imms,
                                                                          strict=True))


def _match(results: list, trial: _Trial, report: OracleReport, image: Image
           ) -> list[objdiff.Change]:
    """Confirm or refute each result; return the changes no site accounts for.

    Each site is held to the object instruction aligned with its own (two ``mov $16`` in one
    function must not confirm each other's site); only when alignment fails does any
    matching change of the function count.
    """
    changes, values, obj_funcs = trial.changes, trial.values, trial.builds[0]
    used: set[int] = set()
    for r in sorted(results, key=lambda r: r.candidate.insn.address):
        cand = r.candidate
        want = None
        if cand.function.name in obj_funcs:
            vm = disasm.disassemble(image.code(cand.function), cand.function.start)
            want = promote.obj_index(obj_funcs[cand.function.name], vm, cand.insn.address)
        if cand.why == chains.WHY:  # no immediate: its chain must align in every build
            _judge_chain(r, (cand.function.name, want) in trial.chained, values, report)
            continue
        hit = next((k for k, c in enumerate(changes) if k not in used
                    and c.function == cand.function.name and c.mnemonic == cand.insn.mnemonic
                    and (want is None or c.index == want)
                    and _predicts(cand.expr, cand.width, values, c.imms)), None)
        if hit is None:
            report.refuted.append(f"{cand.function.name}+{cand.insn.address - cand.function.start:#x}")
            r.reason = (f"refuted by the oracle: V={values[1]},{values[2]} does not "
                        f"change '{cand.insn.mnemonic} {cand.insn.op_str}' as {cand.expr}")
            r.site = None
            continue
        used.add(hit)
        assert r.site is not None
        r.site.verified = "oracle"
        report.confirmed += 1
    return [c for k, c in enumerate(changes) if k not in used]


def _judge_chain(r: Any, aligned: bool, values: tuple[int, int, int], report: OracleReport
                 ) -> None:
    cand = r.candidate
    if aligned:
        r.site.verified = "oracle"
        report.confirmed += 1
        return
    report.refuted.append(f"{cand.function.name}+{cand.insn.address - cand.function.start:#x}")
    r.reason = (f"refuted by the oracle: at V={values[1]},{values[2]} no chain computing "
                f"x*({cand.expr}) aligns with the one at {cand.function.name}+"
                f"{cand.insn.address - cand.function.start:#x}")
    r.site = None


def verify_all(kernel: KernelFiles, images: dict[str, Image], found: dict[str, SeedSites], *,
               jobs: int,
               progress: Callable[[int, int], None] | None = None) -> dict[str, OracleReport]:
    """Run the oracle for every seed that has sites."""
    names = [n for n, f in found.items() if any(r.site is not None for r in f.results)]
    reports: dict[str, OracleReport] = {}
    for k, name in enumerate(names):
        try:
            reports[name] = verify_seed(kernel, images, found[name], jobs=jobs)
        except EnvironmentProblem as e:
            reports[name] = OracleReport(problem=str(e))
        found[name].oracle = reports[name]
        if progress:
            progress(k + 1, len(names))
    return reports
