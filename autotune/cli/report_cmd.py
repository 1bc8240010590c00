"""``autotune report``: tables, figures and one HTML page for a study."""

from __future__ import annotations

from pathlib import Path

import click

EPILOG = """\b
Examples:
  autotune report redis-lab                      # -> ~/.local/share/autotune/reports/redis-lab/
  autotune report redis-lab -o /tmp/redis-report && chromium /tmp/redis-report/index.html
  autotune report nightly-redis-20261129-020700 --storage postgresql://u:p@db/autotune
"""


@click.command(epilog=EPILOG)
@click.argument("study")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder (default: reports/STUDY in the data dir).")
@click.option("--storage", default=None, help="SQLAlchemy URL of the study storage.")
def report(study: str, output: Path | None, storage: str | None) -> None:
    """Write STUDY's report: parquet/CSV tables, PNG figures and index.html.

    Figures: optimization history with CI bands, parameter importance, Pareto front,
    value vs effect per knob, and noise per trial; all rebuilt from the study storage.
    """
    from autotune.study.storage import load_study
    from kernel_runtime.paths import data_dir
    from studies.report import build_report

    loaded = load_study(study, storage)
    page = build_report(loaded, output or data_dir() / "reports" / study)
    click.echo(f"wrote {page}")
