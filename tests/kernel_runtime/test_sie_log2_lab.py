"""A log2(V) knob in the lab: RCU_JIFFIES_FQS_DIV, where ``nr_cpu_ids / V`` is 'shr $8'.

The oracle catalog is made here (about 40 s once the kernel tree is prepared), the site's
object compiled on the host and shipped. The kernel recomputes jiffies_to_sched_qs as
max(first_fqs + 2*next_fqs, HZ/10 + nr_cpu_ids/V) whenever an fqs parameter is written: at
the built-in V=256 that is 25 jiffies, at V=1 it is 25 + nr_cpu_ids, at V=2 half that more.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_sie_lab import guest_python

from autotune.core.catalog import Knob
from autotune.core.errors import BadInputError
from kernel_runtime.lab.target import LabTarget
from kernel_runtime.lab.vm import Lab
from kernel_runtime.sie.knobset import CatalogChoice

pytestmark = pytest.mark.lab

NAME = "RCU_JIFFIES_FQS_DIV"
# rewriting the fqs parameters with their own values makes the kernel recompute the delay
PROBE = ("p = '/sys/module/rcutree/parameters/'\n"
         "for n in ('jiffies_till_first_fqs', 'jiffies_till_next_fqs'):\n"
         "    v = open(p + n).read(); open(p + n, 'w').write(v)\n"
         "possible = open('/sys/devices/system/cpu/possible').read().strip()\n"
         "print(open(p + 'jiffies_to_sched_qs').read().strip(), int(possible.split('-')[-1]) + 1)\n")


@pytest.fixture(scope="module")
def lab() -> Iterator[LabTarget]:
    from analysis import analyze, kernel_files

    result = analyze.analyze(kernel_files.lab_kernel(), names=[NAME], oracle=True, jobs=2)
    assert result.path is not None
    target = LabTarget(lab=Lab.private(), catalog=CatalogChoice(str(result.path)))
    try:
        yield target
    finally:
        target.close()


def test_log2_knob_divides_by_the_new_power_of_two(lab: LabTarget) -> None:
    knobs = {k.name: k for k in lab.knobs() if k.backend == "sie"}
    knob: Knob = knobs[NAME]
    assert {s.expr for s in knob.sites} == {"log2(V)"}
    assert all(s.verified == "oracle" for s in knob.sites)
    ok, left = lab.control.usable([knob])
    assert ok, left
    builtin, cpus = guest_python(lab, PROBE).split()  # cpus: nr_cpu_ids (possible CPUs)
    assert builtin == "25"  # HZ/10 + nr_cpu_ids/256 at HZ=250 with a few CPUs
    try:
        for v in (1, 2):
            lab.control.apply({NAME: v}, knobs)
            assert guest_python(lab, PROBE).split()[0] == str(25 + int(cpus) // v)
        state = next(s for s in lab.control.status() if s.name == NAME)
        assert state.alert is None
        assert sum(n for k, n in state.counters.items() if k.endswith(".mismatches")) == 0
        assert sum(n for k, n in state.counters.items() if k.endswith(".applied")) >= 2
        with pytest.raises(BadInputError, match="pow2"):
            lab.control.apply({NAME: 3}, knobs)
    finally:
        lab.control.revert()
    assert guest_python(lab, PROBE).split()[0] == "25"
