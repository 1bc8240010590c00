"""Save-recompute sites on the real lab kernel (RC_EXPIRE confirmed by the recompile oracle).

RC_EXPIRE (120*HZ) is subtracted by ``lea -0x7530(%r15), %rax`` in nfsd (a module), and
``p->node_stamp += 2 * TICK_NSEC`` is ``add $0x7a1200, 0xed0(%rbp)`` in task_numa_work:
neither result can be rewritten from itself, both are saved before and fixed up after.
"""

from __future__ import annotations

import pytest

from analysis import analyze
from autotune.core.catalog import Catalog, MemoryLocation

STAMP = "p->node_stamp += 2 * TICK_NSEC"


@pytest.fixture(scope="module")
def catalog(lab_files) -> Catalog:  # type: ignore[no-untyped-def]
    return analyze.analyze(lab_files, names=["RC_EXPIRE"], oracle=True, jobs=2, force=True).catalog


@pytest.fixture(scope="module")
def stamp(lab_files) -> Catalog:  # type: ignore[no-untyped-def]
    """Without the oracle: recompiling kernel/sched/fair.o three times costs a minute of CI;
    ``autotune analyze --const '<STAMP>' --oracle`` confirms it (docs/decisions.md)."""
    return analyze.analyze(lab_files, names=[STAMP], oracle=False, jobs=2, force=True).catalog


def test_lea_subtracting_a_jiffies_constant(catalog: Catalog) -> None:
    (s,) = catalog.knob("RC_EXPIRE").sites
    assert (s.function, s.module, s.location, s.save_input) == ("nfsd_prune_bucket_locked", "nfsd",
                                                                "rax", "r15")
    assert (s.expr, s.recompute_op, s.verified) == ("-V", "add", "oracle")
    assert s.expected_default == (-30000) % (1 << 64)


def test_memory_add_of_a_tick_multiple(stamp: Catalog) -> None:
    knob = stamp.knob(STAMP)
    (s,) = knob.sites
    assert knob.default == 2 and s.function == "task_numa_work"
    assert s.location == MemoryLocation(base_reg="rbp", disp=0xED0, size=8)
    assert (s.expr, s.expected_default, s.synthesis) == ("V*4000000", 8_000_000, "save-recompute")
    assert s.save_offset == s.cs_start and s.probe_offset == s.cs_end == s.cs_start + 11
