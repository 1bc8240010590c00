"""Wire a study together: workload, target, knobs, executor, runner, and the summary.

This is the library entry point behind ``autotune run``; it owns clean-up, so every
process and kernel change is undone on success, error and Ctrl-C.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.console import Console
from rich.table import Table

from autotune.executors.factory import build_executor
from autotune.study.config import StudyConfig
from autotune.study.progress import StudyProgress
from autotune.study.runner import StudyRunner
from autotune.targets import choose_target
from workloads import make_workload

SHOW_LEFT_OUT = 5


def run_study(config: StudyConfig, console: Console | None = None) -> dict[str, Any]:
    """Run one study session end to end and print its verdict."""
    console = console or Console(stderr=True)
    config.validate()
    make_workload(config.workload, config.workload_options)  # bad name/options: fail before booting
    chosen, why = choose_target(config.target)
    if config.target == "auto":
        console.print(f"--target auto picked {chosen}: {why}")
    config = dataclasses.replace(config, target=chosen, study_name=config.name()
                                 if config.study_name else f"{config.workload}-{chosen}")
    executor, knobs, left_out = build_executor(config, say=console.print)
    for name, why in left_out[:SHOW_LEFT_OUT]:
        console.print(f"[dim]left out {name}: {why}[/dim]")
    if len(left_out) > SHOW_LEFT_OUT:  # every reason is stored, and 'autotune knob list' shows it
        more = [n for n, _ in left_out[SHOW_LEFT_OUT:]]
        console.print(f"[dim]left out {len(more)} more: {', '.join(more)}[/dim]")
    what = "candidate" if config.select else "searching"
    console.print(f"{what} {len(knobs)} knob(s): {', '.join(k.name for k in knobs)}")
    try:
        with StudyProgress(total=config.trials, console=console) as progress:
            runner = StudyRunner(config=config, executor=executor, knobs=knobs, left_out=left_out,
                                 progress=progress)
            decision = runner.run()
    finally:
        executor.close()
    _print_verdict(console, config, runner, decision)
    return decision


def _print_verdict(console: Console, config: StudyConfig, runner: StudyRunner,
                   decision: dict[str, Any]) -> None:
    validations = runner.study.user_attrs.get("autotune.validation", [])
    table = Table(title=f"validation of the top {len(validations)} candidate(s) on fresh pairs")
    table.add_column("trial")
    table.add_column("values", overflow="fold")
    for col in ("throughput effect [95% CI]", "p99 effect [95% CI]"):
        table.add_column(col)
    for v in validations:
        e = v["effects"]
        table.add_row(str(v["trial"]), "\n".join(f"{k}={x}" for k, x in v["params"].items()),
                      _fmt(e["throughput"]), _fmt(e["p99_ms"]))
    console.print(table)
    console.print(f"[bold]{decision['verdict']}[/bold]: {decision['summary']}")
    console.print(f"export: autotune policy export {config.name()} -o {config.workload}.toml")


def _fmt(e: dict[str, float]) -> str:
    return f"{e['effect']:+.1%} [{e['ci_low']:+.1%}, {e['ci_high']:+.1%}]"
