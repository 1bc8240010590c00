"""Per-seed findings -> catalog knobs (or unsupported entries with the reason).

A knob is offered only as a whole: if any of its sites is unsafe (V reaches an address) the
knob is unsupported, because tuning some copies of a constant and not others leaves the
kernel inconsistent. Domains are priors around the default, tightened by what the code
imposes (pow2 for masks, a bit-width bound for shift amounts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analysis import find_sites
from analysis.find_sites import SeedSites
from autotune.core import expr as exprs
from autotune.core.catalog import Category, Constraint, Domain, Knob, Site, UnsupportedKnob
from autotune.core.errors import BadInputError

_WIDTH_MAX = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0x7FFF_FFFF, "u64": 0x7FFF_FFFF, "s32": 0x7FFF_FFFF}
_BITS = {"u8": 8, "u16": 16, "u32": 32, "u64": 64, "s32": 32, "s64": 64}


NOT_BUILT = "not built in this config"


@dataclass
class Coverage:
    """One row of the final table."""

    name: str
    status: str  # "found" | "oracle-verified" | "unsupported" | "absent"
    sites: int
    detail: str

    @property
    def compiled(self) -> bool:
        """Whether this build has code for it at all: a constant whose every use is compiled
        out by the config is in the source but can never be a knob of this kernel."""
        return self.status != "absent" and not self.detail.endswith(NOT_BUILT)


def subsystem(path: str) -> str:
    parts = path.split("/")
    if parts[0] == "include" and len(parts) > 2:
        return parts[1] if parts[1] not in ("linux", "uapi") else parts[2].split(".")[0]
    return parts[0] if len(parts) < 3 else parts[1]


def category(name: str, body: str) -> Category:
    if "HZ" in body or re.search(r"TIME|DELAY|JIFFIES|INTERVAL|PERIOD|_NSEC|TIMEOUT", name):
        return "interval"
    if re.search(r"BATCH|BUDGET|COUNT|NR_|MAX|SIZE|ENTRIES|DEPTH", name):
        return "batch"
    if re.search(r"SCALE|FACTOR|WEIGHT|DIV|MULT|SHIFT", name):
        return "scale"
    return "threshold"


def domain(v0: int, sites: list[Site], constraints: list[tuple[str, str]]) -> Domain:
    cons: list[Constraint] = []
    hi = max(4 * v0, v0 + 16)
    lo = 1 if v0 > 0 else 0
    for kind, reason in constraints:
        if kind == "pow2" and all(c.kind != "pow2" for c in cons):
            cons.append(Constraint(kind="pow2", reason=reason))
        if kind == "shift":
            hi = min(hi, 31)
            lo = 0
        if kind.startswith("max:"):  # a promoted 1 << V: C's int turns negative above it
            hi = min(hi, int(kind.split(":", 1)[1]))
        if kind.startswith("multiple_of:"):  # a promoted V*p/q site, exact on a lattice
            step = int(kind.split(":", 1)[1])
            if all(c.value != step for c in cons if c.kind == "multiple_of"):
                cons.append(Constraint(kind="multiple_of", value=step, reason=reason))
    width_max = min(_WIDTH_MAX.get(s.width, 0x7FFF_FFFF) for s in sites) if sites else hi
    hi = min(hi, width_max)
    for s in sites:
        if "log2" in s.expr:  # the shift count log2(V) stays below the shifted register's width
            hi = min(hi, 1 << (_BITS[s.width] - 1))
    if any(s.expr.startswith("(V") and "<< 32" in s.expr for s in sites):
        hi = min(hi, 0x7FFF_FFFF)
    lo = max([lo] + [_nonnegative_from(s.expr, lo, v0) for s in sites])
    return Domain(min=min(lo, v0), max=max(hi, v0), log=v0 >= 16 and lo > 0, constraints=cons)


def _nonnegative_from(text: str, lo: int, v0: int) -> int:
    """The least V >= ``lo`` where an offset encoding (``push $(V-3)``: a retry count) is not
    negative, when it is not at the default: below it the count would turn negative."""
    e = exprs.parse(text)

    def negative(v: int) -> bool:
        try:
            return e.evaluate(v, "s64") < 0
        except BadInputError:  # log2(0) and the like: not a value this site takes
            return False
    if negative(v0):
        return lo
    while lo < v0 and negative(lo):
        lo += 1
    return lo


def _refused_there(found: SeedSites, uncovered: str) -> str:
    """Why the analysis refused a candidate in the function of an uncovered change (a
    'test $imm' whose flags the synthesis cannot model), so the reason names the cause."""
    for r in found.results:
        if r.site is None and r.reason and f":{r.candidate.function.name} " in uncovered:
            return f"; refused there: {r.reason}"
    return ""


def assemble(found: SeedSites) -> tuple[Knob | None, UnsupportedKnob | None, Coverage]:
    seed = found.seed
    src = seed.source or None
    if seed.kind == "absent":
        return None, None, Coverage(seed.name, "absent", 0, seed.problem)

    def unsupported(reason: str, n: int = 0) -> tuple[None, UnsupportedKnob, Coverage]:
        return (None, UnsupportedKnob(name=seed.name, reason=reason, source=src),
                Coverage(seed.name, "unsupported", n, reason))

    if seed.problem:
        return unsupported(seed.problem)
    if not seed.uses:
        return unsupported("defined but never used in compiled code")
    sites = [r.site for r in found.results if r.site is not None]
    unsafe = [r.unsafe for r in found.results if r.unsafe and r.site is not None]
    if unsafe:
        return unsupported(unsafe[0], len(sites))
    notrace = sorted({r.candidate.function.name for r in found.results
                      if r.site is not None and not r.candidate.function.traced})
    if notrace:  # those copies can never be probed, and tuning only the others is unsafe
        return unsupported(f"sites in notrace functions ({', '.join(notrace[:3])}): the kernel's "
                           "kprobe events refuse every address in a function without an ftrace "
                           "entry", len(sites))
    report = found.oracle
    if report is not None and report.problem:
        return unsupported(f"oracle failed: {report.problem}", len(sites))
    if report is not None and report.uncovered:
        return unsupported(f"oracle: {len(report.uncovered)} changed immediates no site covers "
                           f"({report.uncovered[0]}): tuning only some copies is unsafe"
                           + _refused_there(found, report.uncovered[0]), len(sites))
    if not sites:
        if report is not None and report.refuted:
            return unsupported(f"oracle refuted all {len(report.refuted)} candidate sites "
                               f"({report.refuted[0]} ...)")
        if found.missing and not found.results:
            return unsupported(f"no code for its uses in vmlinux or its modules ({found.missing[0]} ...): "
                               + NOT_BUILT, 0)
        why = "; ".join(sorted({r.reason for r in found.results if r.reason})[:2])
        return unsupported(f"no site: {why or 'no immediate on the uses lines encodes V0'}")
    assert seed.default is not None
    # promoted sites (log2 ones included) come from the oracle, after find_sites
    constraints = [c for r in found.results if r.site is not None
                   for c in find_sites.log2_constraints(r).constraints]
    dom = domain(seed.default, sites, constraints)
    if report is not None and report.bound is not None:  # the oracle verified only below it
        dom = dom.model_copy(update={"max": min(dom.max, report.bound[0])})
    knob = Knob(name=seed.name, subsystem=subsystem(seed.file),
                category=category(seed.name, seed.body), default=seed.default,
                description=f"{seed.file}:{seed.line}: {seed.body}"[:200],
                domain=dom, backend="sie", source=src, sites=sites)
    verified = sum(s.verified == "oracle" for s in sites)
    status = "oracle-verified" if verified == len(sites) else "found"
    detail = f"{len(sites)} sites" + (f", {verified} oracle-verified" if verified else "")
    if report is not None:
        detail += f"; oracle V={report.values[0]},{report.values[1]} {report.seconds:.0f}s"
        if report.refuted:
            detail += f", {len(report.refuted)} refuted and dropped"
        if report.bound is not None:
            detail += f"; domain max {report.bound[0]}: {report.bound[1]}"
    if found.missing:
        detail += f"; {len(found.missing)} uses without code in vmlinux"
    return knob, None, Coverage(seed.name, status, len(sites), detail)

