"""Measurements on one target: preflight runs and interleaved baseline/candidate pairs.

A worker owns one target and one workload instance. Baseline means the kernel's own
values (every knob reverted); each candidate run sits next to its own baseline run, and the
order alternates (AB, BA, ...) so warm-up and drift do not favour either side.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autotune.core.catalog import Knob
from autotune.core.errors import AutotuneError, LeaseLapsed, TargetCrashed
from kernel_runtime.hitcount import Counts
from kernel_runtime.target import Target
from workloads.base import Measurement, Workload

METRICS = ("throughput", "p99_ms")


def summary(m: Measurement) -> dict[str, Any]:
    """The part of a Measurement stored on a trial (metrics, per-test samples, raw output)."""
    return {"throughput": m.throughput, "p50_ms": m.p50_ms, "p95_ms": m.p95_ms,
            "p99_ms": m.p99_ms, "server_cpu_s": m.server_cpu_s, "wall_s": m.wall_s,
            "samples": [s.model_dump() for s in m.samples], "raw": m.raw}


@dataclass
class Pair:
    """One candidate run and its adjacent baseline run."""

    order: str
    baseline: dict[str, Any]
    candidate: dict[str, Any]

    def ratio(self, metric: str) -> float:
        return float(self.candidate[metric]) / float(self.baseline[metric])

    def to_json(self) -> dict[str, Any]:
        return {"order": self.order, "baseline": self.baseline, "candidate": self.candidate,
                "ratios": {m: self.ratio(m) for m in METRICS}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pair:
        return cls(order=data["order"], baseline=data["baseline"], candidate=data["candidate"])


class TrialWorker:
    """Runs the measurement protocol's steps on one target."""

    def __init__(self, *, target: Target, workload: Workload, knobs: list[Knob],
                 duration: float) -> None:
        self.target = target
        self.workload = workload
        self.knobs = {k.name: k for k in knobs}
        self.duration = duration
        self._ready = False

    def setup(self) -> None:
        """Start the workload at default kernel values (calibration happens here)."""
        self.target.control.revert()
        self.workload.setup(self.target)
        self._ready = True

    def ensure_ready(self) -> None:
        """Set up again after a crash (the target restarts clean on its next use)."""
        if not self._ready:
            self.setup()

    def mark_crashed(self) -> None:
        """Forget the workload's processes: they died with the target's kernel."""
        self._ready = False
        with contextlib.suppress(AutotuneError):  # the processes died with the kernel
            self.workload.teardown()

    def baseline_runs(self, n: int) -> list[dict[str, Any]]:
        """n runs at defaults, after one discarded warm-up run."""
        self.target.control.revert()
        self.workload.run(self.target, self.duration)
        return [summary(self.workload.run(self.target, self.duration)) for _ in range(n)]

    def count_hits(self) -> Counts:
        """Hits per SIE knob during one run at defaults; the counters are gone on return."""
        self.target.control.revert()
        token = self.target.start_counting([k for k in self.knobs.values() if k.backend == "sie"])
        try:
            self.workload.run(self.target, self.duration)
        except BaseException:
            with contextlib.suppress(AutotuneError):
                self.target.stop_counting(token)
            raise
        return self.target.stop_counting(token)

    def verify_defaults(self, defaults: Mapping[str, int]) -> dict[str, str]:
        """Load each knob at its default value, run the workload once, and say which knobs
        cannot be searched: those that fail to load, and those a site of which did not hold
        the default while the workload ran (the runtime's self-check disables such a knob at
        its first mismatch, so every later trial setting it would fail).

        At the default value every site computes what the kernel's constant does; the kernel
        is back at defaults when this returns (the knobs stay loaded, as after a trial).
        """
        rejected: dict[str, str] = {}
        self.target.control.revert()
        try:
            for name, value in defaults.items():
                try:
                    self.target.control.apply({name: value}, self.knobs)
                except (TargetCrashed, LeaseLapsed):
                    raise
                except AutotuneError as e:
                    rejected[name] = f"cannot be loaded: {e}"
            self.workload.run(self.target, self.duration)
            for state in self.target.control.status():
                bad = sum(v for k, v in state.counters.items() if k.endswith(".mismatches"))
                if state.name in defaults and bad:
                    rejected[state.name] = (f"{bad} site hit(s) did not hold the default value "
                                            f"during the workload: {state.alert}")
        finally:
            self.target.control.revert()
        return rejected

    def pairs(self, params: Mapping[str, int], repeats: int, *, first: int = 0) -> list[Pair]:
        """``repeats`` interleaved pairs; the kernel is back at defaults when this returns."""
        out: list[Pair] = []
        try:
            for r in range(first, first + repeats):
                order = "AB" if r % 2 == 0 else "BA"
                runs: dict[str, dict[str, Any]] = {}
                for side in order:
                    if side == "A":
                        self.target.control.revert()
                    else:
                        self.target.control.apply(params, self.knobs)
                    runs[side] = summary(self.workload.run(self.target, self.duration))
                out.append(Pair(order=order, baseline=runs["A"], candidate=runs["B"]))
        finally:
            self.target.control.revert()
        return out

    def close(self) -> None:
        """Revert, stop the workload, release the target: on success, error and Ctrl-C."""
        try:
            if self._ready:
                self.workload.teardown()
        finally:
            self.target.close()
