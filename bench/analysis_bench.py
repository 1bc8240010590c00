"""Benchmark ``autotune analyze`` on the lab kernel: whole seed list, then the oracle.

Prints (no asserts): wall time and peak memory (this process and its workers) of the whole
paper seed list without the oracle, with a cold line-table cache and a warm one; then the
oracle's wall time per constant for a few constants (median and each).

    .venv/bin/python bench/analysis_bench.py [--jobs 2] [--oracle-consts A,B,C]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time

DEFAULT_ORACLE = "MAX_SOFTIRQ_RESTART,SBQ_WAKE_BATCH,PIPE_DEF_BUFFERS,TCP_INIT_CWND,EP_MAX_NESTS"


def _peak_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--oracle-consts", default=DEFAULT_ORACLE)
    args = ap.parse_args()

    from analysis import analyze, kernel_files, kernel_tree

    kernel = kernel_files.lab_kernel()
    with tempfile.TemporaryDirectory() as cold:
        os.environ["AUTOTUNE_CACHE_DIR"] = cold
        t0 = time.monotonic()
        result = analyze.analyze(kernel, names=[], oracle=False, jobs=args.jobs, force=True)
        cold_s = time.monotonic() - t0
        del os.environ["AUTOTUNE_CACHE_DIR"]
    kernel_tree.analysis_cache()
    t0 = time.monotonic()
    analyze.analyze(kernel, names=[], oracle=False, jobs=args.jobs, force=True)
    warm_s = time.monotonic() - t0
    own, kids = _peak_mb()
    with_sites = sum(c.status in ("found", "oracle-verified") for c in result.coverage)
    present = sum(c.status != "absent" for c in result.coverage)
    print(f"whole seed list ({len(result.coverage)} seeds, {present} present, {with_sites} with "
          f"sites), jobs={args.jobs}, no oracle:")
    print(f"  cold line-table cache: {cold_s:6.1f} s")
    print(f"  warm line-table cache: {warm_s:6.1f} s")
    print(f"  peak RSS: main {own:.0f} MB, largest worker/child {kids:.0f} MB")

    times: list[float] = []
    for name in args.oracle_consts.split(","):
        t0 = time.monotonic()
        res = analyze.analyze(kernel, names=[name], oracle=True, jobs=args.jobs, force=True)
        dt = time.monotonic() - t0
        times.append(dt)
        cov = res.coverage[0]
        print(f"  oracle {name:28s} {dt:6.1f} s  {cov.status}: {cov.detail[:90]}")
    print(f"oracle per constant (analysis included): median {statistics.median(times):.1f} s, "
          f"max {max(times):.1f} s over {len(times)} constants")


if __name__ == "__main__":
    main()
