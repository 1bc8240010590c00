"""A guest kernel panic in the middle of a study: the trial fails with the reason, the lab
comes back clean, the workload is set up again and the study finishes.

The panic is real (sysrq-trigger inside the guest, sent on a second RPC while a trial is
measuring); nothing in the study loop is faked.
"""

from __future__ import annotations

import contextlib
import threading
import time

import optuna
import pytest

from autotune.core.errors import AutotuneError
from autotune.executors.local import LocalExecutor
from autotune.study.config import StudyConfig
from autotune.study.runner import ATTR, StudyRunner
from autotune.study.worker import TrialWorker
from kernel_runtime.lab.target import LabTarget
from kernel_runtime.lab.vm import Lab
from workloads.redis import RedisOptions, RedisWorkload

pytestmark = pytest.mark.lab


def panic_when_trial_runs(runner: StudyRunner, lab: LabTarget, done: threading.Event) -> None:
    """Wait for trial 0 to start measuring, then crash the guest kernel."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not done.is_set():
        running = runner.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if running:
            time.sleep(1.0)
            with contextlib.suppress(AutotuneError):  # this call dies with the kernel too
                lab.run(["sh", "-c", "echo c > /proc/sysrq-trigger"], timeout=30)
            return
        time.sleep(0.2)


def test_panic_mid_trial_fails_that_trial_and_the_study_goes_on() -> None:
    lab = LabTarget(lab=Lab.private())
    knobs = [k for k in lab.knobs() if k.name == "net.core.somaxconn"]
    workload = RedisWorkload(options=RedisOptions(clients=10, keyspace=2000, tests="set,get"))
    worker = TrialWorker(target=lab, workload=workload, knobs=knobs, duration=1.0)
    executor = LocalExecutor(worker=worker)
    config = StudyConfig(study_name="lab-crash", target="lab", trials=3, min_effect=0.95,
                         max_repeats=8, preflight_runs=3, validate_blocks=2, top_k=1, seed=1)
    runner = StudyRunner(config=config, executor=executor, knobs=knobs, left_out=[])
    done = threading.Event()
    crasher = threading.Thread(target=panic_when_trial_runs, args=(runner, lab, done), daemon=True)
    boots = lab.boots
    try:
        crasher.start()
        decision = runner.run()
    finally:
        done.set()
        executor.close()
    trials = runner.study.trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert [t.number for t in failed] == [0]
    reason = failed[0].user_attrs[ATTR + "fail_reason"]
    assert "crashed" in reason and ("panic" in reason or "sysrq" in reason), reason
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 2
    assert lab.boots == boots + 1
    assert decision["verdict"] in ("improved", "no-change")
