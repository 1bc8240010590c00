"""The report's figures (matplotlib, Agg backend: no display needed), one PNG each.

Every figure is always written, with a note in place of data when the study has too little
to show (one trial, one objective), so the page never carries a broken image.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
from matplotlib.axes import Axes

from studies.report.tables import StudyTables

PRIMARY_LABEL = {"throughput": "throughput effect vs default", "p99_ms": "p99 effect vs default"}


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11,
            color="0.4", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _complete(t: pd.DataFrame, metric: str) -> pd.DataFrame:
    if t.empty:
        return t
    return t[(t["state"] == "COMPLETE") & t[f"{metric}_effect"].notna()].sort_values("trial")


def history(tables: StudyTables, metric: str, path: Path) -> Path:
    """Each trial's effect with its bootstrap CI, and the best-so-far with its CI band."""
    fig, ax = plt.subplots(figsize=(8, 4))
    done = _complete(tables.trials, metric)
    if done.empty:
        _note(ax, "no completed trial yet")
        return _save(fig, path)
    x = done["trial"].to_numpy()
    eff = done[f"{metric}_effect"].to_numpy()
    lo = np.nan_to_num(done[f"{metric}_ci_low"].to_numpy(), nan=0.0, posinf=1.0, neginf=-1.0)
    hi = np.nan_to_num(done[f"{metric}_ci_high"].to_numpy(), nan=0.0, posinf=1.0, neginf=-1.0)
    ax.errorbar(x, eff, yerr=[np.clip(eff - lo, 0, None), np.clip(hi - eff, 0, None)], fmt="o",
                color="tab:blue", ecolor="0.6", capsize=3, label="trial effect (95% CI)")
    better = np.maximum.accumulate if metric == "throughput" else np.minimum.accumulate
    best = better(eff)
    idx = [int(np.flatnonzero(eff == b)[0]) for b in best]
    ax.step(x, best, where="post", color="tab:green", label="best so far")
    ax.fill_between(x, lo[idx], hi[idx], step="post", color="tab:green", alpha=0.15,
                    label="best so far: 95% CI band")
    ax.axhline(0, color="0.3", lw=0.8, ls="--")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(PRIMARY_LABEL[metric])
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(loc="best", fontsize=8)
    ax.set_title("optimization history (search effects are unvalidated)")
    return _save(fig, path)


def importance(study: optuna.Study, path: Path) -> Path:
    """PED-ANOVA parameter importance of the first objective (Optuna's evaluator; unlike
    fANOVA it needs no scikit-learn)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    try:
        if len(done) < 2:
            raise ValueError("needs at least 2 completed trials")
        # PED-ANOVA ranks what it takes to reach *low* values: flip maximized objectives.
        sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
        with warnings.catch_warnings():  # it warns about the sign on every call; handled above
            warnings.simplefilter("ignore", UserWarning)
            scores = optuna.importance.get_param_importances(
                study, target=lambda t: sign * t.values[0],
                evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except (ValueError, RuntimeError) as e:
        _note(ax, f"parameter importance unavailable: {e}")
        return _save(fig, path)
    names = list(scores)[::-1]
    ax.barh(names, [scores[n] for n in names], color="tab:purple")
    ax.set_xlabel("importance (PED-ANOVA, normalized)")
    ax.set_title("parameter importance")
    return _save(fig, path)


def _non_dominated(thr: np.ndarray, p99: np.ndarray) -> np.ndarray:
    """Trials no other trial beats on both throughput (higher) and p99 (lower)."""
    keep = np.ones(len(thr), dtype=bool)
    for i in range(len(thr)):
        dominated = (thr >= thr[i]) & (p99 <= p99[i]) & ((thr > thr[i]) | (p99 < p99[i]))
        keep[i] = not dominated.any()
    return keep


def pareto(tables: StudyTables, path: Path) -> Path:
    """Throughput effect against p99 effect per trial, the non-dominated front joined up."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    done = _complete(_complete(tables.trials, "throughput"), "p99_ms")
    if done.empty:
        _note(ax, "no completed trial yet")
        return _save(fig, path)
    thr = done["throughput_effect"].to_numpy()
    p99 = done["p99_ms_effect"].to_numpy()
    front = _non_dominated(thr, p99)
    ax.scatter(p99[~front], thr[~front], color="0.6", label="dominated")
    order = np.argsort(p99[front])
    ax.plot(p99[front][order], thr[front][order], "o-", color="tab:red", label="Pareto front")
    for t, x, y in zip(done["trial"], p99, thr, strict=True):
        ax.annotate(str(t), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(0, color="0.3", lw=0.8, ls="--")
    ax.axvline(0, color="0.3", lw=0.8, ls="--")
    pct = matplotlib.ticker.PercentFormatter(1.0)
    ax.xaxis.set_major_formatter(pct)
    ax.yaxis.set_major_formatter(pct)
    ax.set_xlabel("p99 latency effect (lower is better)")
    ax.set_ylabel("throughput effect (higher is better)")
    ax.legend(fontsize=8)
    ax.set_title("Pareto front: throughput vs p99")
    return _save(fig, path)


def knob_effects(tables: StudyTables, metric: str, log_knobs: set[str], path: Path) -> Path:
    """For each knob: the value tried against the trial's effect, with its CI."""
    done = _complete(tables.trials, metric)
    params = [c for c in tables.trials.columns if c.startswith("param.")]
    n = max(1, len(params))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    flat = list(axes.flat)
    if done.empty or not params:
        _note(flat[0], "no completed trial yet")
    for ax, col in zip(flat, params, strict=False):
        knob = col.removeprefix("param.")
        sub = done[done[col].notna()]
        eff = sub[f"{metric}_effect"].to_numpy()
        lo = np.nan_to_num(sub[f"{metric}_ci_low"].to_numpy(), nan=0.0, neginf=-1.0)
        hi = np.nan_to_num(sub[f"{metric}_ci_high"].to_numpy(), nan=0.0, posinf=1.0)
        ax.errorbar(sub[col].to_numpy(dtype=float), eff,
                    yerr=[np.clip(eff - lo, 0, None), np.clip(hi - eff, 0, None)], fmt="o",
                    capsize=3, color="tab:orange", ecolor="0.6")
        if knob in log_knobs:
            ax.set_xscale("log")
        ax.axhline(0, color="0.3", lw=0.8, ls="--")
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_title(knob, fontsize=9)
        ax.set_xlabel("value")
        ax.set_ylabel(PRIMARY_LABEL[metric], fontsize=8)
    for ax in flat[len(params):]:
        ax.set_visible(False)
    return _save(fig, path)


def noise(tables: StudyTables, preflight_noise: float | None, path: Path) -> Path:
    """Per-trial spread of log ratios: trials far above the preflight's noise deserve doubt."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    t = tables.trials
    col = "throughput_noise"
    done = t[t[col].notna()] if not t.empty else t
    if done.empty:
        _note(ax, "noise needs trials with at least 2 pairs each (--repeats >= 2)")
    else:
        ax.bar(done["trial"], done[col], color="tab:gray", label="trial: stdev of log ratios")
        ax.set_xlabel("trial")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel("noise (stdev of log ratio)")
    if preflight_noise is not None:
        ax.axhline(preflight_noise, color="tab:red", ls="--", label="preflight pair noise")
    if not done.empty or preflight_noise is not None:
        ax.legend(fontsize=8)
    ax.set_title("measurement noise per trial (throughput)")
    return _save(fig, path)

