"""The study loop over a FakeExecutor (a fake of the layer below, named as such).

The fake turns params into known effects, so the loop's ask/tell, storage, resume,
validation and verdict can be checked against answers known in advance.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import optuna
import pytest

from autotune.core.catalog import Domain, Knob
from autotune.core.errors import BadInputError
from autotune.executors.base import Executor, Job, JobResult
from autotune.policy.export import policy_from_study
from autotune.study.config import StudyConfig
from autotune.study.runner import ATTR, StudyRunner
from autotune.study.worker import Pair

KNOBS = [Knob(name="batch", subsystem="t", category="batch", backend="sysctl", path="b",
              domain=Domain(min=1, max=64, log=True)),
         Knob(name="flag", subsystem="t", category="flag", backend="sysctl", path="f",
              domain=Domain(min=0, max=1))]


class FakeExecutor(Executor):
    """Throughput gain = effect(params); noise 0.5%; fails on request."""

    def __init__(self, effect: Callable[[dict[str, int]], float], fail_tags: frozenset[int] = frozenset()
                 ) -> None:
        self.effect = effect
        self.fail_tags = fail_tags
        self.rng = random.Random(1)
        self.jobs: list[Job] = []
        self.closed = False

    @property
    def concurrency(self) -> int:
        return 1

    def start(self) -> None:
        pass

    def _run(self, gain: float) -> dict[str, Any]:
        n = self.rng.gauss(1.0, 0.005)
        return {"throughput": 1000 * gain * n, "p99_ms": 1.0 / gain * n}

    def run(self, jobs: list[Job], on_progress: Any = None) -> Iterator[JobResult]:
        for job in jobs:
            self.jobs.append(job)
            if job.kind == "baseline":
                yield JobResult(job=job, runs=[self._run(1.0) for _ in range(job.repeats)])
            elif job.tag in self.fail_tags:
                yield JobResult(job=job, error="server died")
            else:
                gain = 1.0 + self.effect(job.params)
                yield JobResult(job=job, pairs=[Pair("AB", self._run(1.0), self._run(gain))
                                                for _ in range(job.repeats)], worker="fake")

    def describe(self) -> dict[str, Any]:
        return {"targets": [{"name": "fake", "kernel_release": "6.12-test",
                             "kernel_build_id": "cd" * 20}]}

    def close(self) -> None:
        self.closed = True


def config(**kw: Any) -> StudyConfig:
    base = dict(study_name="t", trials=8, repeats=2, preflight_runs=4, validate_blocks=4, seed=3)
    return StudyConfig(**{**base, **kw})


def test_finds_a_real_effect_and_ships_it() -> None:
    ex = FakeExecutor(lambda p: 0.2 if p["batch"] >= 16 else 0.0)
    decision = StudyRunner(config=config(), executor=ex, knobs=KNOBS, left_out=[]).run()
    assert decision["verdict"] == "improved"
    assert decision["params"]["batch"] >= 16
    assert decision["effects"]["throughput"]["ci_low"] > 0.1
    kinds = [j.kind for j in ex.jobs]
    assert kinds[0] == "baseline" and kinds.count("pairs") == 8 + 2


def test_no_effect_ships_the_default_and_exports_it() -> None:
    ex = FakeExecutor(lambda p: 0.0)
    runner = StudyRunner(config=config(), executor=ex, knobs=KNOBS, left_out=[("x", "missing")])
    assert runner.run()["verdict"] == "no-change"
    policy = policy_from_study(runner.study, None)
    assert policy.knobs == [] and policy.evidence.verdict == "no-change"
    assert policy.kernel.build_id == "cd" * 20
    assert policy.evidence.provenance["left_out"] == [["x", "missing"]]


def test_failed_trials_are_recorded_and_the_study_goes_on() -> None:
    ex = FakeExecutor(lambda p: 0.0, fail_tags=frozenset({1}))
    runner = StudyRunner(config=config(trials=4), executor=ex, knobs=KNOBS, left_out=[])
    runner.run()
    states = [t.state for t in runner.study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    failed = next(t for t in runner.study.trials if t.state == optuna.trial.TrialState.FAIL)
    assert failed.user_attrs[ATTR + "fail_reason"] == "server died"


def test_resume_by_name_keeps_history() -> None:
    StudyRunner(config=config(trials=3), executor=FakeExecutor(lambda p: 0.0), knobs=KNOBS,
                left_out=[]).run()
    again = StudyRunner(config=config(trials=2), executor=FakeExecutor(lambda p: 0.0), knobs=KNOBS,
                        left_out=[])
    again.run()
    assert len(again.study.trials) == 5
    assert len(again.study.user_attrs[ATTR + "preflight"]) == 2


def test_resumed_study_validates_only_trials_of_its_own_knob_set() -> None:
    """The first session's best trials set 'flag' (and 'batch' up to 64); the second searches
    only 'batch' within [1, 8], so none of the first session's trials may be re-validated."""
    StudyRunner(config=config(trials=6), executor=FakeExecutor(lambda p: 0.3 * p["flag"]),
                knobs=KNOBS, left_out=[]).run()
    narrow = [KNOBS[0].model_copy(update={"domain": Domain(min=1, max=8, log=True)})]
    again = StudyRunner(config=config(trials=3), executor=FakeExecutor(lambda p: 0.0), knobs=narrow,
                        left_out=[])
    again.run()
    validated = again.study.user_attrs[ATTR + "validation"]
    assert validated and all(set(v["params"]) == {"batch"} and v["params"]["batch"] <= 8
                             for v in validated)
    assert all(v["trial"] >= 6 for v in validated)


def test_resuming_with_other_objectives_is_refused() -> None:
    StudyRunner(config=config(trials=1), executor=FakeExecutor(lambda p: 0.0), knobs=KNOBS,
                left_out=[]).run()
    with pytest.raises(BadInputError, match="objective"):
        StudyRunner(config=config(objective="both"), executor=FakeExecutor(lambda p: 0.0),
                    knobs=KNOBS, left_out=[])


def test_pareto_study_validates_front_members() -> None:
    ex = FakeExecutor(lambda p: 0.1 * p["flag"])
    runner = StudyRunner(config=config(objective="both", trials=6), executor=ex, knobs=KNOBS,
                         left_out=[])
    decision = runner.run()
    assert decision["verdict"] == "improved" and decision["params"]["flag"] == 1


def test_no_usable_knobs_says_why() -> None:
    with pytest.raises(BadInputError, match="not writable"):
        StudyRunner(config=config(), executor=FakeExecutor(lambda p: 0.0), knobs=[],
                    left_out=[("net.core.somaxconn", "/proc/sys/net/core/somaxconn not writable (run as root)")])
