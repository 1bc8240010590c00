"""Reports of a study: pandas tables (parquet + CSV), matplotlib figures, one HTML page.

``build_report`` reads only the Optuna storage, so any study, finished or running, local or
from a nightly run, can be reported from any machine that reaches its storage.
"""

from __future__ import annotations

from pathlib import Path

import optuna

from studies.report import plots
from studies.report.page import render, write_page
from studies.report.tables import preflight_noise, study_tables

__all__ = ["build_report"]


def build_report(study: optuna.Study, out_dir: Path) -> Path:
    """Write the report folder for ``study``; returns the path of its ``index.html``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = study_tables(study)
    written = tables.write(out_dir)
    config = study.user_attrs.get("autotune.config", {})
    metric = "p99_ms" if config.get("objective") == "p99" else "throughput"
    log_knobs = {k["name"] for k in study.user_attrs.get("autotune.knobs", [])
                 if k.get("domain", {}).get("log")}
    figures = [
        (plots.history(tables, metric, out_dir / "history.png"),
         "Optimization history: each trial's effect against the default (bootstrap 95% CI) "
         "and the best so far with its CI band"),
        (plots.importance(study, out_dir / "importance.png"),
         "Parameter importance (PED-ANOVA on the first objective)"),
        (plots.pareto(tables, out_dir / "pareto.png"),
         "Throughput vs p99 effect per trial; the Pareto front joined"),
        (plots.knob_effects(tables, metric, log_knobs, out_dir / "knobs.png"),
         "Value tried vs effect, per knob"),
        (plots.noise(tables, preflight_noise(study), out_dir / "noise.png"),
         "Noise per trial (stdev of its pairs' log ratios) against the preflight's"),
    ]
    return write_page(out_dir, render(study, tables, [(p.name, c) for p, c in figures],
                                      [p.name for p in written]))
