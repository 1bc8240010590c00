"""Trial overhead and baseline noise of a real host study (redis + sysctl knobs).

Prints, from the study's own storage:
- overhead: the share of each trial's wall time not spent inside workload runs
  (knob writes, journal fsyncs, reverts, Optuna ask/tell, storage), median over trials;
- the preflight's baseline CV and adjacent-pair noise on this machine.

Usage: .venv/bin/python bench/trial_overhead.py [--trials 5] [--duration 3] [--target host]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import optuna

from autotune.study.config import StudyConfig
from autotune.study.session import run_study
from autotune.study.storage import load_study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--target", default="host")
    args = ap.parse_args()
    os.environ.setdefault("AUTOTUNE_DATA_DIR", tempfile.mkdtemp(prefix="autotune-bench-"))
    config = StudyConfig(study_name="bench-overhead", target=args.target, trials=args.trials,
                         repeats=args.repeats, duration=args.duration, min_effect=0.99,
                         preflight_runs=5, validate_blocks=2, top_k=1,
                         knobs=("net.core.netdev_budget", "net.core.dev_weight", "net.core.somaxconn"))
    run_study(config)
    study = load_study("bench-overhead", None)
    shares, trial_secs = [], []
    for t in study.trials:
        if t.state != optuna.trial.TrialState.COMPLETE or not t.datetime_start or not t.datetime_complete:
            continue
        total = (t.datetime_complete - t.datetime_start).total_seconds()
        measured = sum(p[side]["wall_s"] for p in t.user_attrs["autotune.pairs"]
                       for side in ("baseline", "candidate"))
        shares.append(1 - measured / total)
        trial_secs.append(total)
    pre = study.user_attrs["autotune.preflight"][-1]
    print(f"trials measured: {len(shares)}; median trial time {statistics.median(trial_secs):.2f} s")
    print(f"trial overhead (time not measuring): median {statistics.median(shares):.1%}, "
          f"max {max(shares):.1%}")
    print(f"baseline throughput CV {pre['cv']:.1%}, adjacent-pair noise {pre['pair_noise']:.1%} "
          f"over {len(pre['values'])} runs of {args.duration:g} s")


if __name__ == "__main__":
    main()
