"""A study's stored evidence as pandas tables: trials, raw pairs, validation, preflight.

Everything is rebuilt from the Optuna storage (trial params, values and the raw pairs in
``autotune.pairs``), so a report never depends on the process that ran the study. Effects
are recomputed from the pairs with the protocol's own bootstrap, not copied from values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from autotune.study.stats import bootstrap_effect, pair_noise
from autotune.study.worker import METRICS

ATTR = "autotune."


@dataclass
class StudyTables:
    trials: pd.DataFrame
    pairs: pd.DataFrame
    validation: pd.DataFrame
    preflight: pd.DataFrame

    def items(self) -> list[tuple[str, pd.DataFrame]]:
        return [("trials", self.trials), ("pairs", self.pairs),
                ("validation", self.validation), ("preflight", self.preflight)]

    def write(self, out_dir: Path) -> list[Path]:
        """Each table as parquet (typed, for notebooks) and CSV (for everything else)."""
        written = []
        for name, frame in self.items():
            for suffix in ("parquet", "csv"):
                path = out_dir / f"{name}.{suffix}"
                if suffix == "parquet":
                    frame.to_parquet(path, index=False)
                else:
                    frame.to_csv(path, index=False)
                written.append(path)
        return written


def _noise(ratios: list[float]) -> float:
    """Spread of one trial's log ratios: how much its pairs disagree."""
    if len(ratios) < 2:
        return math.nan
    logs = [math.log(r) for r in ratios]
    mean = sum(logs) / len(logs)
    return math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))


def _effect_columns(prefix: str, ratios: list[float], seed: int) -> dict[str, float]:
    if not ratios:
        return {f"{prefix}_effect": math.nan, f"{prefix}_ci_low": math.nan,
                f"{prefix}_ci_high": math.nan}
    e = bootstrap_effect(ratios, seed=seed)
    return {f"{prefix}_effect": e.effect, f"{prefix}_ci_low": e.low, f"{prefix}_ci_high": e.high}


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for t in study.trials:
        pairs = t.user_attrs.get(ATTR + "pairs", [])
        row: dict[str, Any] = {
            "trial": t.number, "state": t.state.name, "worker": t.user_attrs.get(ATTR + "worker", ""),
            "fail_reason": t.user_attrs.get(ATTR + "fail_reason", ""), "pairs": len(pairs),
            "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start else math.nan,
            "feasible": all(c <= 0 for c in t.constraints.values()) if t.constraints else True}
        row |= {f"param.{k}": v for k, v in t.params.items()}
        for metric in METRICS:
            ratios = [float(p["ratios"][metric]) for p in pairs]
            row |= _effect_columns(metric, ratios, seed=t.number)
            row[f"{metric}_noise"] = _noise(ratios)
        rows.append(row)
    return pd.DataFrame(rows)


def pairs_frame(study: optuna.Study) -> pd.DataFrame:
    rows = []
    for t in study.trials:
        for i, p in enumerate(t.user_attrs.get(ATTR + "pairs", [])):
            row: dict[str, Any] = {"trial": t.number, "pair": i, "order": p["order"]}
            for side in ("baseline", "candidate"):
                row |= {f"{side}_{m}": p[side].get(m) for m in ("throughput", "p50_ms", "p95_ms",
                                                                  "p99_ms", "server_cpu_s")}
            row |= {f"ratio_{m}": p["ratios"][m] for m in METRICS}
            rows.append(row)
    return pd.DataFrame(rows)


def validation_frame(study: optuna.Study) -> pd.DataFrame:
    rows = []
    for v in study.user_attrs.get(ATTR + "validation", []) or []:
        row: dict[str, Any] = {"trial": v["trial"],
                               "params": ", ".join(f"{k}={x}" for k, x in v["params"].items())}
        for metric, e in v["effects"].items():
            row |= {f"{metric}_effect": e["effect"], f"{metric}_ci_low": e["ci_low"],
                    f"{metric}_ci_high": e["ci_high"], f"{metric}_n": e["n"]}
        rows.append(row)
    return pd.DataFrame(rows)


def preflight_frame(study: optuna.Study) -> pd.DataFrame:
    rows = []
    for session, pre in enumerate(study.user_attrs.get(ATTR + "preflight", []) or []):
        for i, run in enumerate(pre.get("runs", [])):
            rows.append({"session": session, "run": i, "throughput": run.get("throughput"),
                         "p99_ms": run.get("p99_ms"), "outlier": i in pre.get("outliers", [])})
    return pd.DataFrame(rows)


def preflight_noise(study: optuna.Study) -> float | None:
    """The noise of the latest preflight's baseline runs (what the protocol planned for)."""
    pres = study.user_attrs.get(ATTR + "preflight") or []
    if not pres:
        return None
    values = [float(v) for v in pres[-1].get("values", [])]
    return pair_noise(values) if len(values) >= 3 else None


def study_tables(study: optuna.Study) -> StudyTables:
    return StudyTables(trials=trials_frame(study), pairs=pairs_frame(study),
                       validation=validation_frame(study), preflight=preflight_frame(study))
