"""Trials per hour with 1 and 2 Ray workers (one lab VM each), and a projection for N workers.

This machine is shared (other QEMU labs, angr), so its load changes by the minute; two
separate runs would mostly measure that. Instead one Ray executor with two private labs runs
*interleaved blocks*: a solo block (one trial's job, the other lab idle) then a pair block
(two trials' jobs at once, one per lab), alternating. Each trial is a real Optuna ask (TPE,
constant liar, SQLite storage), a real pairs job (interleaved baseline/candidate redis runs
on the lab kernel) and a real tell, exactly the runner's loop. Printed:

- start-up: Ray + two lab boots + workload set-up (once per session, labs in parallel);
- trials/hour with 1 worker (3600 / median solo block) and with 2 (7200 / median pair block);
- per-trial cost t and its spread sigma (solo blocks), ask/tell cost c per trial.

Model: a batch of N trials ends with its slowest trial; for roughly normal trial times
E[max of N] ~ t + sigma * sqrt(2 ln N), so with one isolated kernel per worker (cluster
nodes, no shared CPUs)

    trials/hour(N) = 3600 * N / (t + sigma * sqrt(2 ln N) + N * c)

(the driver asks and tells the N trials one after the other, hence N * c). On this 2-core
machine the two labs also share CPUs: the measured pair block includes that, and labs
beyond two cannot help here.

Usage: .venv/bin/python bench/ray_bench.py [--blocks 4] [--duration 1.5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time

import optuna

from autotune.executors.base import Job
from autotune.executors.factory import build_executor
from autotune.executors.ray_executor import RayExecutor
from autotune.study.config import StudyConfig
from autotune.study.runner import open_study
from autotune.study.space import suggest

KNOBS = ("net.core.netdev_budget", "net.core.dev_weight")


def timed_batch(executor: RayExecutor, study: optuna.Study, knobs: list, n: int, repeats: int,
                ask_tell: list[float]) -> float:
    """Ask n trials, run their jobs at once, tell each result: the runner's batch, timed."""
    start = time.monotonic()
    asked = {}
    for _ in range(n):
        t0 = time.monotonic()
        trial = study.ask()
        asked[trial.number] = (trial, suggest(trial, knobs))
        ask_tell.append(time.monotonic() - t0)
    jobs = [Job(kind="pairs", tag=num, params=p, repeats=repeats) for num, (_, p) in asked.items()]
    for result in executor.run(jobs):
        trial, _ = asked.pop(result.job.tag)
        t0 = time.monotonic()
        if result.error:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, statistics.geometric_mean(p.ratio("throughput")
                                                        for p in result.pairs))
        ask_tell[-1] += time.monotonic() - t0
    return time.monotonic() - start


def projection(n: int, t: float, sigma: float, c: float) -> float:
    return 3600 * n / (t + sigma * math.sqrt(2 * math.log(n)) + n * c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=4, help="Solo and pair blocks, each.")
    ap.add_argument("--duration", type=float, default=1.5)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="autotune-ray-bench-")
    os.environ.setdefault("AUTOTUNE_DATA_DIR", data)
    config = StudyConfig(study_name="ray-bench", storage=f"sqlite:///{data}/studies.db",
                         target="lab", workload_options={"clients": 20}, trials=1,
                         repeats=args.repeats, duration=args.duration, knobs=KNOBS, seed=11,
                         workers=2)
    t0 = time.monotonic()
    executor, knobs, _ = build_executor(config, say=print)
    assert isinstance(executor, RayExecutor)
    solo: list[float] = []
    pair: list[float] = []
    ask_tell: list[float] = []
    try:
        executor.start()
        startup = time.monotonic() - t0
        study = open_study(config)
        for b in range(args.blocks):
            solo.append(timed_batch(executor, study, knobs, 1, args.repeats, ask_tell))
            pair.append(timed_batch(executor, study, knobs, 2, args.repeats, ask_tell))
            print(f"block {b}: solo {solo[-1]:.1f} s, pair {pair[-1]:.1f} s")
    finally:
        executor.close()
    t1, t2 = statistics.median(solo), statistics.median(pair)
    sigma = statistics.stdev(solo) if len(solo) > 1 else 0.0
    c = statistics.median(ask_tell)
    print(f"\nstart-up (Ray + 2 lab boots + redis set-up, in parallel): {startup:.0f} s")
    print(f"1 worker : {3600 / t1:6.0f} trials/hour (median trial {t1:.1f} s, "
          f"{args.repeats} pairs of {args.duration:g} s runs)")
    print(f"2 workers: {7200 / t2:6.0f} trials/hour (median pair block {t2:.1f} s)")
    print(f"speed-up on this 2-core machine: {t1 * 2 / t2:.2f}x; a trial takes "
          f"{t2 / t1:.2f}x as long when both labs run (shared CPUs)")
    print(f"model: trials/hour(N) = 3600 N / (t + sigma sqrt(2 ln N) + N c) with t={t1:.1f} s, "
          f"sigma={sigma:.1f} s, c={c * 1000:.0f} ms (one isolated kernel per worker)")
    for n in (1, 2, 4, 8, 16, 32, 64):
        print(f"  N={n:>2}: {projection(n, t1, sigma, c):>7.0f} trials/hour")


if __name__ == "__main__":
    main()
