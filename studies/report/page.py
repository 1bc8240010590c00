"""The report's one static HTML page: verdict, drift check, figures and tables.

Plain HTML with relative image links and inline CSS, so the folder can be copied, attached
or served from anywhere; no scripts, no network.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from studies.report.tables import StudyTables

CSS = """body{font-family:sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0}td,th{border:1px solid #ddd;
padding:2px 6px;text-align:right}th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}
.verdict{font-size:1.1em;padding:.6em;background:#f6f8fa;border-left:4px solid #2a7}
.flag{border-left-color:#c33}.figs{display:grid;grid-template-columns:1fr 1fr;gap:1em}
figure{margin:0}figcaption{font-size:.85em;color:#555}code{font-size:.9em}"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(frame: pd.DataFrame, limit: int = 60) -> str:
    if frame.empty:
        return "<p><em>none</em></p>"
    shown = frame.head(limit)
    more = f"<p><em>{len(frame) - limit} more rows in the CSV</em></p>" if len(frame) > limit else ""
    return shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="",
                         border=0) + more


def _pct(e: dict[str, Any] | None, metric: str) -> str:
    if not e or metric not in e:
        return "n/a"
    m = e[metric]
    return f"{m['effect']:+.1%} [95% CI {m['ci_low']:+.1%} .. {m['ci_high']:+.1%}]"


def render(study: optuna.Study, tables: StudyTables, figures: list[tuple[str, str]],
           downloads: list[str]) -> str:
    """The page's HTML; ``figures`` are (file name, caption) in the same folder."""
    attrs = study.user_attrs
    config = attrs.get("autotune.config", {})
    decision = attrs.get("autotune.decision") or {}
    drift = attrs.get("autotune.drift")
    executor = attrs.get("autotune.executor", {})
    targets = ", ".join(f"{t.get('name')} {t.get('kernel_release')}"
                        for t in executor.get("targets", []))
    verdict = decision.get("verdict", "unfinished")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>autotune report: "
             f"{_esc(study.study_name)}</title><style>{CSS}</style></head><body>",
             f"<h1>Study <code>{_esc(study.study_name)}</code></h1>",
             f"<p>workload <b>{_esc(config.get('workload', '?'))}</b>, objective "
             f"<b>{_esc(config.get('objective', '?'))}</b>, {len(tables.trials)} trial(s) on "
             f"{_esc(targets or 'unknown target')}; executor "
             f"{_esc(executor.get('kind', 'local'))}.</p>",
             f"<div class='verdict'><b>{_esc(verdict)}</b>: "
             f"{_esc(decision.get('summary', 'the study has not decided yet'))}<br>"
             f"throughput {_esc(_pct(decision.get('effects'), 'throughput'))}, "
             f"p99 {_esc(_pct(decision.get('effects'), 'p99_ms'))}</div>"]
    if drift:
        flagged = drift["status"] in ("drift", "regression", "kernel-changed")
        parts.append(f"<h2>Re-validation of the previous best policy</h2><div class='verdict"
                     f"{' flag' if flagged else ''}'><b>{_esc(drift['status'])}</b>: "
                     f"{_esc(drift['summary'])}<br>policy: "
                     f"{_esc(json.dumps(drift.get('policy', {})))}</div>")
    parts.append("<h2>Figures</h2><div class='figs'>")
    for name, caption in figures:
        parts.append(f"<figure><img src='{_esc(name)}' alt='{_esc(caption)}'>"
                     f"<figcaption>{_esc(caption)}</figcaption></figure>")
    parts.append("</div>")
    parts.append("<h2>Validation on fresh pairs (what the verdict rests on)</h2>"
                 + _table(tables.validation))
    cols = [c for c in tables.trials.columns if c not in ("fail_reason",)]
    parts.append("<h2>Trials</h2>" + _table(tables.trials[cols] if cols else tables.trials))
    failed = tables.trials[tables.trials["state"] == "FAIL"] if not tables.trials.empty else \
        tables.trials
    if not failed.empty:
        parts.append("<h2>Failed trials</h2>" + _table(failed[["trial", "worker", "fail_reason"]]))
    parts.append("<h2>Data</h2><ul>" + "".join(f"<li><a href='{_esc(d)}'>{_esc(d)}</a></li>"
                                               for d in downloads) + "</ul>")
    parts.append(f"<p><small>config: <code>{_esc(json.dumps(config, sort_keys=True))}</code>"
                 "</small></p></body></html>")
    return "\n".join(parts)


def write_page(out_dir: Path, text: str) -> Path:
    path = out_dir / "index.html"
    tmp = out_dir / ".index.html.tmp"
    tmp.write_text(text)
    tmp.replace(path)
    return path
