"""Re-validate yesterday's best policy against the default on fresh interleaved pairs.

A policy's evidence was measured once; kernels, firmware, load and the workload drift. Each
night the policy is measured again, the same way a study validates (candidate next to its
own baseline, order alternating), and compared with what its file claims:

- ``regression``: with 95% confidence the policy delivers less than its file promises (by
  more than the tolerance), or is now worse than the default;
- ``drift``: with 95% confidence it now does better than promised (the system changed: a
  fresh study may find more);
- ``ok``: the fresh CI reaches the recorded effect, give or take the tolerance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from autotune.core.errors import AutotuneError
from autotune.executors.base import Job
from autotune.executors.factory import build_executor
from autotune.policy.schema import Policy
from autotune.study import protocol
from autotune.study.config import StudyConfig
from autotune.study.stats import Effect

Status = Literal["ok", "drift", "regression", "no-policy", "kernel-changed", "failed"]


@dataclass
class DriftCheck:
    """Outcome of one re-validation, stored on the night's study and in the history file."""

    status: Status
    summary: str
    metric: str = "throughput"
    recorded: float | None = None
    fresh: dict[str, float | int] = field(default_factory=dict)
    policy: dict[str, int] = field(default_factory=dict)
    pairs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def flagged(self) -> bool:
        return self.status in ("drift", "regression", "kernel-changed")


def classify(fresh: Effect, recorded: float | None, metric: str, tolerance: float
             ) -> tuple[Status, str]:
    """Judge a fresh effect of the policy against the one its file records.

    Effects are turned into gains (positive = better) so one rule serves throughput and p99.
    """
    ci = f"{fresh.effect:+.1%} [95% CI {fresh.low:+.1%} .. {fresh.high:+.1%}, n={fresh.n}]"
    sign = 1.0 if protocol.BETTER_HIGHER[metric] else -1.0
    low, high = sorted((sign * fresh.low, sign * fresh.high))
    if high < 0:
        return "regression", f"policy now hurts {metric}: {ci} against the default"
    if recorded is None:
        return "ok", f"{metric} effect {ci} (no recorded effect to compare)"
    claim = sign * recorded
    if high < claim - tolerance:
        return "regression", (f"policy lost its {metric} gain: recorded {recorded:+.1%}, "
                              f"now {ci}")
    if low > claim + tolerance:
        return "drift", f"{metric} effect grew from {recorded:+.1%} to {ci}: worth re-tuning"
    return "ok", f"{metric} effect holds: {ci} (recorded {recorded:+.1%})"


def revalidate(policy: Policy | None, config: StudyConfig, *, pairs: int, tolerance: float,
               say: Callable[[str], None]) -> DriftCheck:
    """Measure ``policy`` against the default on the target ``config`` names."""
    metric = config.primary()
    if policy is None or not policy.knobs:
        return DriftCheck(status="no-policy", metric=metric,
                          summary="no previous policy with knobs: nothing to re-validate")
    values = {k.name: k.value for k in policy.knobs}
    recorded_ev = policy.evidence.metrics.get(metric)
    recorded = recorded_ev.effect if recorded_ev else None
    check_config = dataclasses.replace(config, knobs=tuple(values), workers=1)
    try:
        executor, _, _ = build_executor(check_config, say)
    except AutotuneError as e:
        return DriftCheck(status="failed", metric=metric, policy=values,
                          summary=f"could not open the target: {e}")
    try:
        builds = {t["kernel_build_id"] for t in executor.describe()["targets"]}
        if builds != {policy.kernel.build_id}:
            return DriftCheck(status="kernel-changed", metric=metric, policy=values,
                              summary=f"policy is for build {policy.kernel.build_id[:12]}, the "
                                      f"target runs {sorted(b[:12] for b in builds)}: re-tuned")
        executor.start()
        result = next(iter(executor.run([Job(kind="pairs", tag=0, params=values,
                                             repeats=pairs)])))
    finally:
        executor.close()
    if result.error:
        return DriftCheck(status="failed", metric=metric, policy=values,
                          summary=f"re-validation failed: {result.error}")
    fresh = protocol.effects(result.pairs)[metric]
    status, summary = classify(fresh, recorded, metric, tolerance)
    return DriftCheck(status=status, summary=summary, metric=metric, recorded=recorded,
                      fresh=fresh.as_dict(), policy=values,
                      pairs=[p.to_json() for p in result.pairs])
