"""Re-validate yesterday's best policy against the default on fresh interleaved pairs.

A policy's evidence was measured once; kernels, firmware, load and the workload drift. Each
night the policy is measured again, the same way a study validates (candidate next to its
own baseline, order alternating), and compared with what its file claims:

- ``regression``: with 95% confidence the policy is now *worse* than the default;
- ``drift``: its effect moved by more than the tolerance and the recorded effect lies outside
  the fresh 95% CI (the claim no longer holds, though it may still help);
- ``ok``: the fresh CI still covers the recorded effect (or it moved less than the tolerance).
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
    """Judge a fresh effect of the policy against the one its file records."""
    ci = f"{fresh.effect:+.1%} [95% CI {fresh.low:+.1%} .. {fresh.high:+.1%}, n={fresh.n}]"
    higher = protocol.BETTER_HIGHER[metric]
    worse = fresh.high < 0 if higher else fresh.low > 0
    if worse:
        return "regression", f"policy now hurts {metric}: {ci} against the default"
    if recorded is not None and not fresh.low <= recorded <= fresh.high \
            and abs(fresh.effect - recorded) > tolerance:
        return "drift", f"{metric} effect drifted from {recorded:+.1%} to {ci}"
    was = f" (recorded {recorded:+.1%})" if recorded is not None else ""
    return "ok", f"{metric} effect holds: {ci}{was}"


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
