"""What counting knob hits costs in the lab: arming N sites, one counted step, removal.

Run: .venv/bin/python bench/hitcount_bench.py [--rounds 3]
Boots a private lab VM with the default catalogs (hand + the cached oracle catalog), takes
every usable SIE knob, and per round arms a counter on all their sites, runs one short step
(200 pipes), reads the hits and removes the events. Prints the median seconds of arming and
of reading + removing, the number of sites, and how many knobs the step hit.
"""

from __future__ import annotations

import argparse
import statistics
import time

from kernel_runtime.lab.target import LabTarget
from kernel_runtime.lab.vm import Lab

STEP = "import os\nfor _ in range(200):\n    r, w = os.pipe(); os.close(r); os.close(w)\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    lab = LabTarget(lab=Lab.private())
    try:
        started = time.monotonic()
        knobs, _ = lab.control.usable([k for k in lab.knobs() if k.backend == "sie"])
        print(f"usable(): {len(knobs)} SIE knobs in {time.monotonic() - started:.1f} s")
        python = lab.which("python3.11") or "python3.11"
        arm, stop, sites, hit = [], [], 0, 0
        for _ in range(args.rounds):
            t0 = time.monotonic()
            token = lab.start_counting(knobs)
            t1 = time.monotonic()
            lab.run([python, "-c", STEP], timeout=60)
            t2 = time.monotonic()
            counts = lab.stop_counting(token)
            arm.append(t1 - t0)
            stop.append(time.monotonic() - t2)
            sites, hit = counts.sites, sum(1 for h in counts.hits.values() if h)
        print(f"{sites} sites of {len(knobs)} knobs: arm median {statistics.median(arm):.2f} s "
              f"({statistics.median(arm) / max(sites, 1) * 1000:.0f} ms/site), read+remove "
              f"median {statistics.median(stop):.2f} s; {hit} knobs hit by the step")
    finally:
        lab.close()


if __name__ == "__main__":
    main()
