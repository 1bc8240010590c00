"""Wire a study together: workload, target, knobs, executor, runner, and the summary.

This is the library entry point behind ``autotune run``; it owns clean-up, so every
process and kernel change is undone on success, error and Ctrl-C.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.console import Console
from rich.table import Table

from autotune.core.catalog import Knob
from autotune.core.errors import BadInputError
from autotune.executors.local import LocalExecutor
from autotune.study.config import StudyConfig
from autotune.study.progress import StudyProgress
from autotune.study.runner import StudyRunner
from autotune.study.worker import TrialWorker
from autotune.targets import choose_target, open_target
from kernel_runtime.target import Target
from workloads import make_workload


def select_knobs(target: Target, names: tuple[str, ...]) -> tuple[list[Knob], list[tuple[str, str]]]:
    """Usable knobs (optionally only the named ones) and the reasons others were left out."""
    knobs = target.knobs()
    if names:
        known = {k.name for k in knobs}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise BadInputError(f"unknown knob(s) {unknown}; see 'autotune knob list'")
        knobs = [k for k in knobs if k.name in names]
    return target.control.usable(knobs)


def run_study(config: StudyConfig, console: Console | None = None) -> dict[str, Any]:
    """Run one study session end to end and print its verdict."""
    console = console or Console(stderr=True)
    config.validate()
    chosen, _ = choose_target(config.target)
    config = dataclasses.replace(config, target=chosen, study_name=config.name()
                                 if config.study_name else f"{config.workload}-{chosen}")
    workload = make_workload(config.workload, config.workload_options)
    target = open_target(chosen, say=console.print)
    try:
        restored = target.control.recover()
        if restored:
            console.print(f"restored {len(restored)} knob(s) a previous run left changed: "
                          f"{', '.join(restored)}")
        knobs, left_out = select_knobs(target, config.knobs)
        for name, why in left_out:
            console.print(f"[dim]left out {name}: {why}[/dim]")
        console.print(f"searching {len(knobs)} knob(s): {', '.join(k.name for k in knobs)}")
        worker = TrialWorker(target=target, workload=workload, knobs=knobs, duration=config.duration)
    except BaseException:
        target.close()
        raise
    executor = LocalExecutor(worker=worker)
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
    for col in ("trial", "params", "throughput effect [95% CI]", "p99 effect [95% CI]"):
        table.add_column(col)
    for v in validations:
        e = v["effects"]
        table.add_row(str(v["trial"]), ", ".join(f"{k}={x}" for k, x in v["params"].items()),
                      _fmt(e["throughput"]), _fmt(e["p99_ms"]))
    console.print(table)
    console.print(f"[bold]{decision['verdict']}[/bold]: {decision['summary']}")
    console.print(f"export: autotune policy export {config.name()} -o {config.workload}.toml")


def _fmt(e: dict[str, float]) -> str:
    return f"{e['effect']:+.1%} [{e['ci_low']:+.1%}, {e['ci_high']:+.1%}]"
