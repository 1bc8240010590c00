"""Where a constant's value goes after its seed: kernel/escape.c, answers fixed by construction.

A value that leaves its function (stored, passed to a call, returned, tail-called) may be a
ring size some other function masks with ``size - 1``: a power-of-two default then keeps
the ``pow2`` constraint. A value that dies inside its function does not. Stepping never
runs past the function's bounds (a tail jump to a lower address once did).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from analysis import assemble, disasm, sitebuild, symstep
from analysis.candidates import Candidate
from analysis.elfimage import Image
from analysis.escape import escape_constraint
from analysis.find_sites import SeedSites
from analysis.oracle import OracleReport
from analysis.seeds import Seed, Use
from autotune.core.catalog import Catalog

NAMES = ["RING_MIN_BUFS", "LOCAL_SPIN", "LOCAL_CAP", "TAIL_BUDGET", "RET_QUOTA", "FLAGGED_BATCH"]


@pytest.fixture(scope="module")
def catalog(corpus_catalog: Callable[[list[str]], Catalog]) -> Catalog:
    return corpus_catalog(NAMES)


def pow2_reasons(catalog: Catalog, name: str) -> list[str]:
    return [c.reason for c in catalog.knob(name).domain.constraints if c.kind == "pow2"]


def test_stored_ring_size_keeps_powers_of_two(catalog: Catalog) -> None:
    knob = catalog.knob("RING_MIN_BUFS")  # r->ring_size = max(want, 4); ring_slot masks it
    (s,) = knob.sites
    assert (s.function, s.expr, s.expected_default) == ("ring_init", "V", 4)
    (why,) = pow2_reasons(catalog, "RING_MIN_BUFS")
    assert "leaves ring_init" in why and "stored to memory" in why and "mask" in why
    allowed = knob.domain.allowed_values()
    assert allowed is not None and 4 in allowed and 3 not in allowed
    assert all(v & (v - 1) == 0 for v in allowed)


def test_local_only_use_stays_unconstrained(catalog: Catalog) -> None:
    knob = catalog.knob("LOCAL_SPIN")  # only 'cmp $16' in spin_local: the value never leaves
    assert {s.function for s in knob.sites} == {"spin_local"}
    assert knob.domain.constraints == [] and knob.domain.allowed_values() is None


def test_register_kept_across_calls_and_branches_stays_local(catalog: Catalog) -> None:
    # 'mov $32, %r12d' bounds drain_local's loop around calls: the straight-line step stops at
    # the first branch, the walk over every path sees it die in the callee-saved register
    knob = catalog.knob("LOCAL_CAP")
    (s,) = knob.sites
    assert (s.function, s.location, s.synthesis) == ("drain_local", "r12d", "register")
    assert s.safe_spans[0].conservative  # the safe span still stops at the branch
    assert knob.domain.constraints == []


@pytest.mark.parametrize(("name", "how"), [("TAIL_BUDGET", "tail call"), ("RET_QUOTA", "returned")])
def test_passed_on_or_returned_keeps_powers_of_two(catalog: Catalog, name: str, how: str) -> None:
    (why,) = pow2_reasons(catalog, name)
    assert how in why
    (s,) = catalog.knob(name).sites
    assert s.safe_spans[0].conservative  # its readers are beyond the function


def test_tail_jump_to_a_lower_address_ends_the_span(corpus_elf: Path) -> None:
    image = Image(corpus_elf)
    (func,) = image.by_name("tail_budget")
    assert image.by_name("take_budget")[0].start < func.start  # the jump goes down
    code = image.code(func)
    insns = disasm.disassemble(code, func.start)
    seed = next(i for i in insns if i.mnemonic == "mov" and i.imms == (64,))
    flow = symstep.step_after(code, func.start, seed.next, "esi", func.end)
    assert all(func.start <= a < func.end for a in flow.path)  # never stepped outside
    assert flow.address_use is None and flow.escaped
    assert insns[insns.index(seed) + 1].mnemonic == "jmp"  # 'mov $64, %esi; jmp take_budget'
    assert flow.leaves.endswith("(a tail call)") and flow.leaves_at == seed.next


def test_test_instruction_is_a_flags_site_and_its_value_stays_inside(catalog: Catalog) -> None:
    # 'test $0x3ff' sets an AND's flags, which the flags template now rewrites; the mask never
    # leaves next_id, so no escape constraint is added for it
    knob = catalog.knob("FLAGGED_BATCH")
    s = next(s for s in knob.sites if s.synthesis == "flags")
    assert (s.function, s.flags_op, s.expr) == ("next_id", "test", "V-1")


@pytest.mark.parametrize(("v0", "expr", "constraints", "how", "kept"), [
    (8, "V", [], "V leaves f: stored to memory at f+0x4", True),
    (8, "V*2", [], "V leaves f: returned at f+0x9", True),      # 16 leaves: still a size
    (12, "V", [], "V leaves f: returned at f+0x9", False),      # no power-of-two design
    (1, "V", [], "V leaves f: returned at f+0x9", False),       # 1 says nothing
    (2, "V*4000000", [], "V leaves f: stored to memory at f+0x4", False),  # a time, not a size
    (8, "1 << V", [], "V leaves f: stored to memory at f+0x4", False),     # a power of two anyway
    (8, "V", [("shift", "V is a shift amount")], "V leaves f: returned", False),
    (8, "V", [], "", False),                                    # it never left
])
def test_escape_rule(v0: int, expr: str, constraints: list[tuple[str, str]], how: str,
                     kept: bool) -> None:
    got = escape_constraint(v0, expr, constraints, how)
    assert (got is not None) == kept
    assert got is None or (got[0] == "pow2" and got[1].startswith(how) and f"default {v0}" in got[1])


def test_oracle_uncovered_reason_names_the_refused_instruction(corpus_elf: Path) -> None:
    # the oracle sees 'sar $3' change with V but no site covers it: the knob's reason says
    # why the analysis refused it there (a shift whose flags a jump reads)
    image = Image(corpus_elf)
    (func,) = image.by_name("shifted_zero")
    code = image.code(func)
    insns = disasm.disassemble(code, func.start)
    ins = next(i for i in insns if i.mnemonic == "sar" and i.imms == (3,))
    cand = Candidate(func, ins, "V", "u32", "shift", "kernel/flags.c:54", False, "kernel/flags.c")
    res = sitebuild.build(code, cand, insns, 3)
    assert res.site is None and "sets flags that" in res.reason
    found = SeedSites(Seed("SHIFT_READ", "macro", "include/flags.h", 8, "3", 3,
                           uses=[Use("kernel/flags.c", 54, "")]), results=[res])
    found.oracle = OracleReport(uncovered=["kernel/flags.o:shifted_zero #2 sar (3, 4, 5)"])
    knob, unsupported, _ = assemble.assemble(found)
    assert knob is None and unsupported is not None
    assert "no site covers" in unsupported.reason and "refused there: 'sar" in unsupported.reason
