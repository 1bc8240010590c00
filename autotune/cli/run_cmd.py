"""``autotune run``: one tuning study for a workload on a target."""

from __future__ import annotations

import click

from autotune.cli.knob_cmd import catalog_options
from autotune.cli.options import interrupt_on_sigterm, parse_kv

EPILOG = """\b
Examples:
  autotune run --workload redis
  autotune run --workload redis --target host --trials 20 --repeats 4
  autotune run --workload redis --objective both -o clients=100 -o pipeline=8
  autotune run --workload redis --knob net.core.busy_read --knob net.core.busy_poll
  autotune run --workload redis --target lab --knob TCP_MAX_QUICKACKS --knob BUSY_POLL_BUDGET
  autotune run --workload redis --catalog mycatalog.json   # another analysis catalog
  autotune run --workload redis --max-knobs 4      # search the 4 most-hit SIE knobs
  autotune run --workload redis --no-select        # skip hit counting (analysis knobs by --knob)
  autotune run --workload redis --study nightly-redis --storage postgresql://u:p@db/autotune
  autotune run --workload redis --target lab --workers 2      # two lab VMs, two trials at once
  autotune run --workload redis --ray-address ray-head:6379 --workers 8
"""


@click.command(epilog=EPILOG)
@click.option("--workload", "-w", default="redis", show_default=True, help="Workload to tune.")
@click.option("--workload-option", "-o", "wopts", multiple=True, metavar="KEY=VALUE",
              help="Workload setting, e.g. clients=50, pipeline=1, value_size=64, tests=set,get.")
@click.option("--target", default="auto", show_default=True,
              help="Kernel to tune: host, lab, or auto (host if it can do SIE, else lab).")
@click.option("--trials", default=6, show_default=True, help="New trials in this session.")
@click.option("--timeout", type=float, default=None, help="Stop searching after this many seconds.")
@click.option("--objective", type=click.Choice(["throughput", "p99", "both"]), default="throughput",
              show_default=True, help="What to improve; 'both' searches the Pareto front.")
@click.option("--repeats", type=int, default=None,
              help="Baseline/candidate pairs per trial [default: as many as the preflight noise needs].")
@click.option("--max-repeats", default=8, show_default=True,
              help="Ceiling for automatic repeats; noisier than that and the study refuses.")
@click.option("--duration", default=4.0, show_default=True, help="Seconds per workload run.")
@click.option("--min-effect", type=float, default=None,
              help="Smallest relative effect worth detecting [default: 0.05 on host, 0.20 on lab].")
@click.option("--max-regression", default=0.05, show_default=True,
              help="Allowed regression of the other metric (p99 or throughput).")
@click.option("--preflight-runs", default=5, show_default=True, help="Baseline runs to judge noise.")
@click.option("--top-k", default=2, show_default=True, help="Candidates re-validated at the end.")
@click.option("--validate-blocks", default=4, show_default=True,
              help="Fresh pairs per validated candidate (the CI comes from these only).")
@click.option("--knob", "knob_names", multiple=True, help="Tune only these knobs (repeatable).")
@click.option("--select/--no-select", default=True, show_default=True,
              help="Count knob hits during one workload run and search only SIE knobs it hits.")
@click.option("--max-knobs", default=8, show_default=True,
              help="SIE knobs kept by selection, most hits first.")
@click.option("--study", "study_name", default=None, help="Study name; an existing one resumes.")
@click.option("--storage", default=None, help="SQLAlchemy URL (default: SQLite in the data dir).")
@click.option("--seed", type=int, default=None, help="Sampler seed, for reproducible searches.")
@click.option("--workers", default=1, show_default=True,
              help="Trials at once, one isolated kernel each (Ray; with a lab: N private VMs).")
@click.option("--ray-address", default=None,
              help="Join this Ray cluster; its nodes offer the 'autotune_kernel' resource.")
@catalog_options
def run(workload: str, wopts: tuple[str, ...], target: str, trials: int, timeout: float | None,
        objective: str, repeats: int | None, max_repeats: int, duration: float,
        min_effect: float | None, max_regression: float,
        preflight_runs: int, top_k: int, validate_blocks: int,
        knob_names: tuple[str, ...], select: bool, max_knobs: int, study_name: str | None, storage: str | None,
        seed: int | None, workers: int, ray_address: str | None, catalog: str | None,
        allow_unverified: bool) -> None:
    """Tune kernel knobs for WORKLOAD with Bayesian optimization and an honest protocol.

    Every trial runs interleaved baseline/candidate pairs; the top candidates are
    re-validated on fresh runs, and a policy ships only if its 95% CI excludes no change.
    """
    from autotune.study.config import StudyConfig
    from autotune.study.session import run_study

    interrupt_on_sigterm()
    config = StudyConfig(workload=workload, workload_options=parse_kv(wopts), target=target,
                         study_name=study_name, storage=storage, trials=trials, timeout=timeout,
                         objective=objective, repeats=repeats, max_repeats=max_repeats, duration=duration,  # type: ignore[arg-type]
                         min_effect=min_effect, max_regression=max_regression, knobs=knob_names,
                         seed=seed, preflight_runs=preflight_runs, top_k=top_k,
                         validate_blocks=validate_blocks, workers=workers,
                         ray_address=ray_address, catalog=catalog,
                         allow_unverified_sites=allow_unverified, select=select,
                         max_knobs=max_knobs)
    run_study(config)
