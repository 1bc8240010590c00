"""Trials per hour with 1 and 2 Ray workers (one lab VM each), and a projection for N workers.

For each worker count W it runs a real study (StudyRunner over the Ray executor: preflight,
search, validation) and reads the timings back from the Optuna storage:

- start-up: Ray + W lab boots + workload set-up (paid once per session, in parallel);
- per-trial time t (ask to tell of each search trial) and its spread;
- search throughput: search trials / span of the search phase, as trials per hour;
- per-batch overhead c: the runner asks W trials at a time and waits for the batch, so the
  gap between a batch's last tell and the next batch's ask is the driver's cost.

Model (stated, then fitted to the measurements): a batch of N trials lasts as long as its
slowest trial, E[max of N] ~ t + sigma * sqrt(2 ln N) for roughly normal trial times, so

    trials/hour(N) = 3600 * N / (t_N + sigma * sqrt(2 ln N) + c)

where t_N is the per-trial time with N workers. On a cluster (one kernel per node) t_N = t_1.
On this 2-core machine the labs share CPUs, so t_2 > t_1 and more labs cannot help: the
projection for N > 2 assumes one isolated kernel per worker (cluster nodes).

Usage: .venv/bin/python bench/ray_bench.py [--trials 6] [--duration 1.5] [--repeats 3]
                                           [--save-study tests/studies/data/lab-study.db]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime

import optuna

from autotune.executors.factory import build_executor
from autotune.study.config import StudyConfig
from autotune.study.runner import StudyRunner

KNOBS = ("net.core.netdev_budget", "net.core.dev_weight")


@dataclass
class Measured:
    workers: int
    startup_s: float
    trial_s: list[float]
    per_hour: float
    batch_overhead_s: float


def measure(workers: int, args: argparse.Namespace, storage: str) -> Measured:
    config = StudyConfig(study_name=f"ray-bench-{workers}", storage=storage, target="lab",
                         workload_options={"clients": 20}, trials=args.trials,
                         repeats=args.repeats, duration=args.duration, min_effect=0.95,
                         preflight_runs=5, top_k=1, validate_blocks=2, knobs=KNOBS, seed=11,
                         workers=workers, ray_address="local")
    t0 = time.monotonic()
    executor, knobs, left_out = build_executor(config, say=print)
    try:
        executor.start()
        startup = time.monotonic() - t0
        runner = StudyRunner(config=config, executor=executor, knobs=knobs, left_out=left_out)
        decision = runner.run()
        print(f"W={workers}: {decision['verdict']}: {decision['summary']}")
    finally:
        executor.close()
    spans = [(t.datetime_start, t.datetime_complete) for t in runner.study.trials
             if t.state == optuna.trial.TrialState.COMPLETE and t.datetime_start
             and t.datetime_complete]
    times: list[tuple[datetime, datetime]] = [(a, b) for a, b in spans if a and b]
    durations = [(end - start).total_seconds() for start, end in times]
    span = (max(end for _, end in times) - min(start for start, _ in times)).total_seconds()
    batches = [times[i:i + workers] for i in range(0, len(times), workers)]
    gaps = [(b[0][0] - max(end for _, end in a)).total_seconds()
            for a, b in zip(batches, batches[1:], strict=False)]
    return Measured(workers=workers, startup_s=startup, trial_s=durations,
                    per_hour=3600 * len(times) / span,
                    batch_overhead_s=statistics.median(gaps) if gaps else 0.0)


def projection(n: int, t: float, sigma: float, c: float) -> float:
    return 3600 * n / (t + sigma * math.sqrt(2 * math.log(n)) + c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--duration", type=float, default=1.5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--save-study", default=None,
                    help="Copy the 2-worker study to this SQLite file (report test data).")
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="autotune-ray-bench-")
    os.environ.setdefault("AUTOTUNE_DATA_DIR", data)
    storage = f"sqlite:///{data}/studies.db"
    results = [measure(w, args, storage) for w in (1, 2)]
    print(f"\n{'workers':>7} {'start-up s':>10} {'median trial s':>14} {'trials/hour':>11} "
          f"{'batch overhead s':>16}")
    for m in results:
        print(f"{m.workers:>7} {m.startup_s:>10.1f} {statistics.median(m.trial_s):>14.1f} "
              f"{m.per_hour:>11.0f} {m.batch_overhead_s:>16.2f}")
    one, two = results
    print(f"speed-up with 2 workers on this machine: {two.per_hour / one.per_hour:.2f}x "
          f"(per-trial time x{statistics.median(two.trial_s) / statistics.median(one.trial_s):.2f}"
          " from sharing 2 cores)")
    t1 = statistics.median(one.trial_s)
    sigma = statistics.stdev(one.trial_s) if len(one.trial_s) > 1 else 0.0
    c = max(one.batch_overhead_s, two.batch_overhead_s)
    print(f"model: trials/hour(N) = 3600 N / (t + sigma sqrt(2 ln N) + c), t={t1:.1f} s, "
          f"sigma={sigma:.1f} s, c={c:.2f} s (one isolated kernel per worker)")
    for n in (1, 2, 4, 8, 16, 32):
        print(f"  N={n:>2}: {projection(n, t1, sigma, c):>7.0f} trials/hour")
    if args.save_study:
        if os.path.exists(args.save_study):
            os.remove(args.save_study)
        optuna.copy_study(from_study_name="ray-bench-2", from_storage=storage,
                          to_storage=f"sqlite:///{os.path.abspath(args.save_study)}",
                          to_study_name="lab-ray2")
        print(f"saved the 2-worker study to {args.save_study} as 'lab-ray2'")


if __name__ == "__main__":
    main()
