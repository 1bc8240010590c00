"""Knob selection by hit counts: the ranking rule, and the study step over a fake executor.

``FakeCountingExecutor`` is a fake of the layer below (named as such): it answers a "count"
job with hit counts fixed in advance, and measures pairs with a known effect, so which knobs
the study searches can be checked against an answer known in advance.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from autotune.core.catalog import Domain, Knob
from autotune.core.errors import BadInputError
from autotune.executors.base import Executor, Job, JobResult
from autotune.policy.export import policy_from_study
from autotune.study.config import StudyConfig
from autotune.study.runner import ATTR, StudyRunner
from autotune.study.selection import select, table
from autotune.study.worker import Pair
from kernel_runtime.hitcount import Counts

SYSCTL = Knob(name="net.core.busy_poll", subsystem="net", category="flag", backend="sysctl",
              path="net/core/busy_poll", domain=Domain(min=0, max=100))


def sie(name: str) -> Knob:
    return Knob.model_validate({
        "name": name, "subsystem": "t", "category": "threshold", "default": 16,
        "domain": {"min": 1, "max": 64}, "backend": "sie",
        "sites": [{"function": "f", "cs_start": 0, "cs_end": 4, "probe_offset": 4,
                   "location": "rax", "expr": "V", "synthesis": "register",
                   "expected_default": 16}]})


KNOBS = [SYSCTL, sie("A"), sie("B"), sie("C"), sie("D"), sie("E")]


def counts(**hits: int) -> Counts:
    return Counts(hits=hits, unattached={"E": "f: module m not loaded"}, sites=5)


def test_keeps_hit_knobs_most_hits_first_up_to_the_cap() -> None:
    chosen = select(KNOBS, counts(A=3, B=50, C=0, D=7), named=set(), max_knobs=2)
    assert [k.name for k in chosen.kept] == ["net.core.busy_poll", "B", "D"]
    why = dict(chosen.left_out)
    assert why["A"] == "3 hits, rank 3 > --max-knobs 2"
    assert why["C"] == "the workload never ran its sites (0 hits)"
    assert why["E"] == "not counted: f: module m not loaded"
    assert chosen.hits == {"A": 3, "B": 50, "C": 0, "D": 7, "E": 0}


def test_ties_rank_by_name_and_named_knobs_always_stay() -> None:
    chosen = select(KNOBS, counts(A=5, B=5, D=5), named={"C"}, max_knobs=2)
    assert [k.name for k in chosen.kept] == ["net.core.busy_poll", "A", "B", "C"]
    assert "C" not in chosen.hits  # named: not decided by counts
    assert dict(chosen.left_out)["D"].startswith("5 hits, rank 3")


def test_the_table_lists_hit_knobs_and_sums_up_the_rest() -> None:
    console = Console(width=200, record=True)
    console.print(table(select(KNOBS, counts(A=3, B=50), named=set(), max_knobs=1), 1))
    lines = console.export_text().splitlines()
    assert [line.split()[1] for line in lines if line.startswith("│")] == ["B", "A"]
    assert "not searched, 0 hits or not countable (3): C, D, E" in lines[-1]


class FakeCountingExecutor(Executor):
    """Answers "count" with fixed hits and "verify" with fixed rejections; throughput gain
    20% when knob B is set above 32."""

    def __init__(self, hits: dict[str, int], rejected: frozenset[str] = frozenset()) -> None:
        self.hits = hits
        self.rejected = rejected
        self.jobs: list[Job] = []
        self.rng = random.Random(2)

    @property
    def concurrency(self) -> int:
        return 1

    def start(self) -> None:
        pass

    def _run(self, gain: float) -> dict[str, Any]:
        n = self.rng.gauss(1.0, 0.005)
        return {"throughput": 1000 * gain * n, "p99_ms": n / gain}

    def run(self, jobs: list[Job], on_progress: Any = None) -> Iterator[JobResult]:
        for job in jobs:
            self.jobs.append(job)
            if job.kind == "count":
                yield JobResult(job=job, counts=Counts(hits=dict(self.hits), sites=5))
            elif job.kind == "verify":
                yield JobResult(job=job, rejected={n: "mismatch" for n in job.params
                                                   if n in self.rejected})
            elif job.kind == "baseline":
                yield JobResult(job=job, runs=[self._run(1.0) for _ in range(job.repeats)])
            else:
                gain = 1.2 if job.params.get("B", 0) > 32 else 1.0
                yield JobResult(job=job, pairs=[Pair("AB", self._run(1.0), self._run(gain))
                                                for _ in range(job.repeats)])

    def describe(self) -> dict[str, Any]:
        return {"targets": [{"name": "fake", "kernel_release": "6.12-test",
                             "kernel_build_id": "cd" * 20}]}

    def close(self) -> None:
        pass


def config(**kw: Any) -> StudyConfig:
    base = dict(study_name="sel", trials=4, repeats=2, preflight_runs=3, validate_blocks=3,
                seed=3, max_knobs=1)
    return StudyConfig(**{**base, **kw})


def test_the_study_counts_before_the_preflight_and_searches_only_what_was_hit() -> None:
    ex = FakeCountingExecutor({"A": 2, "B": 40})
    runner = StudyRunner(config=config(), executor=ex, knobs=KNOBS, left_out=[])
    runner.run()
    assert [j.kind for j in ex.jobs][:3] == ["count", "verify", "baseline"]
    assert ex.jobs[1].params == {"B": 16}  # the kept counted knob, at its default
    searched = {p for t in runner.study.trials for p in t.params}
    assert searched == {"net.core.busy_poll", "B"}
    stored = runner.study.user_attrs[ATTR + "selection"]
    assert stored["kept"] == ["net.core.busy_poll", "B"] and stored["hits"]["A"] == 2
    evidence = policy_from_study(runner.study, None).evidence.provenance
    assert evidence["selection"]["hits"]["B"] == 40
    assert ["A", "2 hits, rank 2 > --max-knobs 1"] in evidence["left_out"]


def test_a_knob_failing_its_default_check_is_not_searched() -> None:
    ex = FakeCountingExecutor({"A": 2, "B": 40}, rejected=frozenset({"B"}))
    runner = StudyRunner(config=config(max_knobs=2, trials=2), executor=ex, knobs=KNOBS,
                         left_out=[])
    runner.run()
    assert [k.name for k in runner.knobs] == ["net.core.busy_poll", "A"]
    assert ("B", "failed its check at the default value: mismatch") in runner.left_out


def test_a_resumed_study_keeps_its_selection_without_counting_again() -> None:
    StudyRunner(config=config(trials=1), executor=FakeCountingExecutor({"B": 4}), knobs=KNOBS,
                left_out=[]).run()
    ex = FakeCountingExecutor({"A": 9})
    again = StudyRunner(config=config(trials=1), executor=ex, knobs=KNOBS, left_out=[])
    again.run()
    assert "count" not in [j.kind for j in ex.jobs]
    assert [k.name for k in again.knobs] == ["net.core.busy_poll", "B"]


def test_a_resumed_study_counts_again_when_its_candidates_changed() -> None:
    """A re-analysed catalog moved B's probe: the stored counts and checks were of other sites."""
    StudyRunner(config=config(trials=1), executor=FakeCountingExecutor({"B": 4}), knobs=KNOBS,
                left_out=[]).run()
    moved = [k.model_copy(update={"sites": [k.sites[0].model_copy(update={"probe_offset": 24})]})
             if k.name == "B" else k for k in KNOBS]
    ex = FakeCountingExecutor({"A": 9})
    again = StudyRunner(config=config(trials=1), executor=ex, knobs=moved, left_out=[])
    again.run()
    assert [j.kind for j in ex.jobs][:2] == ["count", "verify"]
    assert [k.name for k in again.knobs] == ["net.core.busy_poll", "A"]


def test_no_select_searches_every_candidate_without_counting() -> None:
    ex = FakeCountingExecutor({})
    runner = StudyRunner(config=config(select=False, trials=1), executor=ex, knobs=KNOBS,
                         left_out=[])
    runner.run()
    assert "count" not in [j.kind for j in ex.jobs] and len(runner.knobs) == len(KNOBS)


def test_nothing_hit_and_nothing_else_to_tune_says_what_to_do() -> None:
    with pytest.raises(BadInputError, match="no candidate knob was hit by the workload"):
        StudyRunner(config=config(), executor=FakeCountingExecutor({}), knobs=KNOBS[1:],
                    left_out=[]).run()
