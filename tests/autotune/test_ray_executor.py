"""The Ray executor on real lab VMs: two workers, two kernels, and a worker killed mid-trial.

One module-scoped executor (two private labs) serves both tests so the VMs boot once.
Settings are small (2 trials, 4 pairs, 1.5 s runs, loose --min-effect): lab redis under TCG
is slow and noisy (the preflight must pass), and these tests check scheduling and survival,
not tuning results.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import optuna
import psutil
import pytest

from autotune.core.catalog import Knob
from autotune.executors.base import Job
from autotune.executors.factory import build_executor
from autotune.executors.ray_executor import RayExecutor
from autotune.study.config import StudyConfig
from autotune.study.runner import StudyRunner

pytestmark = pytest.mark.lab

BASE = StudyConfig(workload="redis", workload_options={"clients": 20}, target="lab", trials=2,
                   repeats=4, duration=1.5, min_effect=0.95, preflight_runs=5, top_k=1,
                   validate_blocks=2, knobs=("net.core.netdev_budget",), seed=5, workers=2)
Pool = tuple[RayExecutor, list[Knob], str]


@pytest.fixture(scope="module")
def lab_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    base = tmp_path_factory.mktemp("ray")
    storage = f"sqlite:///{base / 'studies.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTOTUNE_STATE_DIR", str(base / "state"))
        mp.setenv("AUTOTUNE_DATA_DIR", str(base / "data"))
        executor, knobs, _ = build_executor(replace(BASE, storage=storage), say=print)
        assert isinstance(executor, RayExecutor)
        try:
            yield executor, knobs, storage
        finally:
            executor.close()
    import ray

    assert not ray.is_initialized()


def run_study(pool: Pool, name: str) -> optuna.Study:
    executor, knobs, storage = pool
    config = replace(BASE, storage=storage, study_name=name)
    runner = StudyRunner(config=config, executor=executor, knobs=knobs, left_out=[])
    decision = runner.run()
    assert decision["verdict"] in ("improved", "no-change")
    return runner.study


def test_two_lab_workers_finish_a_study_on_two_kernels(lab_pool: Pool) -> None:
    executor = lab_pool[0]
    assert executor.concurrency == 2
    targets = executor.describe()["targets"]
    assert [t["name"] for t in targets] == ["lab", "lab"]
    assert len({t["pid"] for t in targets}) == 2
    study = run_study(lab_pool, "ray-two")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2
    assert all(len(t.user_attrs["autotune.pairs"]) == 4 for t in done)
    # one batch of two trials went to the two workers, one each
    assert len({t.user_attrs["autotune.worker"] for t in done}) == 2
    assert study.user_attrs["autotune.executor"]["kind"] == "ray"
    assert executor.deaths == []


def test_a_worker_killed_mid_trial_is_survived(lab_pool: Pool) -> None:
    """Two trials' jobs on two workers; one worker is SIGKILLed mid-measurement. Its job is
    retried on the survivor, both trials complete, and later jobs still run."""
    executor = lab_pool[0]
    victim_label, victim_pid = sorted(executor.worker_pids().items())[-1]
    private = next(a.facts["private_dir"] for a in executor._actors if a.label == victim_label)
    jobs = [Job(kind="pairs", tag=n, params={"net.core.netdev_budget": v}, repeats=3)
            for n, v in ((10, 100), (11, 1000))]
    killer = threading.Timer(4.0, os.kill, args=(victim_pid, signal.SIGKILL))
    killer.start()
    try:
        results = {r.job.tag: r for r in executor.run(jobs)}
    finally:
        killer.cancel()
    assert sorted(results) == [10, 11]
    assert all(r.error is None and len(r.pairs) == 3 for r in results.values())
    retried = [r for r in results.values() if "retried after" in r.worker]
    assert len(retried) == 1 and victim_label in retried[0].worker
    assert len(executor.deaths) == 1 and victim_label in executor.deaths[0]
    assert executor.concurrency == 1 and victim_label not in executor.worker_pids()
    later = list(executor.run([Job(kind="pairs", tag=12, params={"net.core.netdev_budget": 50},
                                   repeats=1)]))
    assert later[0].error is None and len(later[0].pairs) == 1
    time.sleep(1.0)  # the VM got its parent-death signal when the actor died
    vms = [p for p in psutil.process_iter(["cmdline"])
           if private in " ".join(p.info["cmdline"] or [])]
    assert vms == [] and not Path(private).exists()
