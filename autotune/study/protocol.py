"""The measurement protocol's decisions: noise preflight, trial scores, final verdict.

Pure functions over stored measurements, so a study's verdict can be recomputed from the
Optuna storage alone (and unit-tested without a kernel).
"""

from __future__ import annotations

import math
from typing import Any

from autotune.core.errors import NoiseTooHighError
from autotune.study.config import StudyConfig
from autotune.study.stats import (
    Effect,
    bootstrap_effect,
    cv,
    geometric_mean,
    outliers,
    pair_noise,
    repeats_needed,
)
from autotune.study.worker import Pair

BETTER_HIGHER = {"throughput": True, "p99_ms": False}
WIDEN_AT_MOST = 1.5  # a default minimum effect may grow to this multiple of itself


def preflight(runs: list[dict[str, Any]], config: StudyConfig) -> dict[str, Any]:
    """Judge baseline noise against the minimum effect; pick repeats or refuse with advice.

    With ``--repeats`` unset the study uses as many pairs per trial as the noise needs
    (at least 2, at most ``max_repeats``); an explicit ``--repeats`` is taken as a budget.
    When neither ``--repeats`` nor ``--min-effect`` was given and ``max_repeats`` cannot
    resolve the target's default effect, the study goes on at ``max_repeats`` with the
    smallest effect those resolve (``widened_from`` records the default), up to
    ``WIDEN_AT_MOST`` times the default; noisier than that, it refuses as before.
    """
    metric = config.primary()
    min_effect = config.effective_min_effect()
    values = [float(r[metric]) for r in runs]
    noise = pair_noise(values)
    needed = repeats_needed(noise, min_effect)
    repeats = config.repeats if config.repeats is not None else max(2, needed)
    report = {"metric": metric, "values": values, "cv": cv(values), "pair_noise": noise,
              "repeats_needed": needed, "repeats": repeats, "min_effect": min_effect,
              "outliers": outliers(values)}
    budget = config.repeats if config.repeats is not None else config.max_repeats
    widened = _effect_for(noise, budget)
    if needed > budget and config.repeats is None and config.min_effect is None \
            and widened <= WIDEN_AT_MOST * min_effect:
        # nobody asked for this resolution: the target's default is a prior, and a run that
        # stops after its set-up because an emulated lab was noisier than usual helps nobody
        report.update(repeats=budget, min_effect=widened, widened_from=min_effect)
        return report
    if needed > budget:
        what = f"--repeats is {config.repeats}" if config.repeats is not None else \
            f"automatic repeats stop at --max-repeats {config.max_repeats}"
        raise NoiseTooHighError(
            f"baseline {metric} noise {noise:.1%} (CV {report['cv']:.1%}) needs {needed} repeats to "
            f"resolve a {min_effect:.0%} effect, but {what}: rerun with --repeats {needed}, "
            f"or --min-effect {_effect_for(noise, budget):.2f}, "
            "or a longer --duration on a quieter machine")
    return report


def _effect_for(noise: float, repeats: int) -> float:
    """Smallest effect the given repeats can resolve at this noise."""
    return math.expm1(1.959964 * noise / math.sqrt(repeats)) + 0.005


def trial_values(pairs: list[Pair], config: StudyConfig) -> list[float]:
    """Objective values of a trial: geometric-mean ratios to adjacent baselines."""
    thr = geometric_mean([p.ratio("throughput") for p in pairs])
    p99 = geometric_mean([p.ratio("p99_ms") for p in pairs])
    return {"throughput": [thr], "p99": [p99], "both": [thr, p99]}[config.objective]


def constraint(pairs: list[Pair], config: StudyConfig) -> dict[str, float]:
    """Optuna constraints (feasible when <= 0): the secondary metric may not regress too far."""
    if config.objective == "throughput":
        return {"p99_regression": geometric_mean([p.ratio("p99_ms") for p in pairs])
                - (1 + config.max_regression)}
    if config.objective == "p99":
        return {"throughput_regression": (1 - config.max_regression)
                - geometric_mean([p.ratio("throughput") for p in pairs])}
    return {}


def effects(pairs: list[Pair], seed: int = 0) -> dict[str, Effect]:
    return {m: bootstrap_effect([p.ratio(m) for p in pairs], seed=seed) for m in BETTER_HIGHER}


def improves(effect: Effect, metric: str) -> bool:
    """The 95% CI lies wholly on the good side of no change."""
    return effect.low > 0 if BETTER_HIGHER[metric] else effect.high < 0


def regresses_beyond(effect: Effect, metric: str, limit: float) -> bool:
    """Point estimate worse than the allowed regression."""
    return -effect.effect > limit if BETTER_HIGHER[metric] else effect.effect > limit


def decide(validations: list[dict[str, Any]], config: StudyConfig) -> dict[str, Any]:
    """Pick the policy to ship: a validated candidate whose CI excludes no change, else default.

    Candidates are judged on fresh validation pairs only, never on the search's own samples
    (which are biased upward by selection: the winner's curse).
    """
    primary = config.primary()
    secondary = "p99_ms" if primary == "throughput" else "throughput"
    best: dict[str, Any] | None = None
    reasons = []
    for v in validations:
        eff = {m: Effect.from_dict(v["effects"][m]) for m in BETTER_HIGHER}
        if not improves(eff[primary], primary):
            reasons.append(f"trial {v['trial']}: {primary} CI [{eff[primary].low:+.1%}, "
                           f"{eff[primary].high:+.1%}] includes no change")
            continue
        if config.objective != "both" and regresses_beyond(eff[secondary], secondary, config.max_regression):
            reasons.append(f"trial {v['trial']}: {secondary} regresses {eff[secondary].effect:+.1%}")
            continue
        gain = eff[primary].effect if BETTER_HIGHER[primary] else -eff[primary].effect
        if best is None or gain > best["gain"]:
            best = {"gain": gain, "validation": v}
    if best is None:
        return {"verdict": "no-change", "params": {}, "trial": None, "reasons": reasons,
                "summary": "no candidate beat the defaults with 95% confidence: the policy is the default"}
    v = best["validation"]
    return {"verdict": "improved", "params": v["params"], "trial": v["trial"], "reasons": reasons,
            "effects": v["effects"],
            "summary": f"trial {v['trial']} improves {primary} by {best['gain']:+.1%} "
                       f"(95% CI in validation: {v['effects'][primary]['ci_low']:+.1%} .. "
                       f"{v['effects'][primary]['ci_high']:+.1%})"}
