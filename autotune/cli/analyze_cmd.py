"""``autotune analyze``: catalog a kernel build's perf-consts (thin: the work is in analysis/)."""

from __future__ import annotations

import os
from pathlib import Path

import click

EPILOG = """\b
Examples:
  autotune analyze                                   # the lab kernel, the paper's seed list
  autotune analyze --const TCP_INIT_CWND --oracle    # one constant, verified by recompiles
  autotune analyze --const mm/shrinker.c:406         # a literal on a source line
  autotune analyze --kernel /path/vmlinux --source ~/linux --jobs 2 -o catalog.json
"""


@click.command(epilog=EPILOG)
@click.option("--kernel", "kernel_spec", default="lab", show_default=True,
              help="lab, host, or the path of a vmlinux with DWARF.")
@click.option("--source", type=click.Path(file_okay=False, path_type=Path),
              help="Kernel source tree (needed with a vmlinux PATH or --kernel host).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The build's .config (default: SOURCE/.config).")
@click.option("--const", "names", multiple=True, metavar="NAME|FILE:LINE",
              help="Analyse only these constants (repeatable); default: the paper's list.")
@click.option("--oracle", is_flag=True,
              help="Recompile affected objects at two other values and keep only confirmed sites.")
@click.option("--jobs", default=os.cpu_count() or 1, show_default=True, type=click.IntRange(1),
              help="Worker processes for the symbolic step and the recompiles.")
@click.option("--force", is_flag=True, help="Ignore a cached catalog for this build-id.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the catalog here.")
def analyze(kernel_spec: str, source: Path | None, config_path: Path | None,
            names: tuple[str, ...], oracle: bool, jobs: int, force: bool,
            output: Path | None) -> None:
    """Find each constant's sites in the binary and write the knob catalog (cached by build-id)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from analysis import analyze as run
    from analysis import kernel_files
    from autotune.cli.coverage_table import coverage_table

    console = Console(stderr=True)
    if kernel_spec == "lab":
        with console.status("fetching the lab kernel's -dbg and source packages (cached)"):
            kernel = kernel_files.lab_kernel()
    elif kernel_spec == "host":
        kernel = kernel_files.host_kernel(source)
    else:
        kernel = kernel_files.path_kernel(Path(kernel_spec), source, config_path)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total}"), TimeElapsedColumn(), console=console, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or None)
            bar.update(tasks[stage], completed=done, total=total or None)

        result = run.analyze(kernel, names=list(names), oracle=oracle, jobs=jobs,
                             progress=progress, force=force)
    Console().print(coverage_table(result.coverage))
    where = f"{result.path} (cached)" if result.cached else str(result.path)
    if output is not None:
        output.write_text(result.catalog.model_dump_json(indent=1))
        where += f", {output}"
    n_sites = sum(len(k.sites) for k in result.catalog.knobs)
    console.print(f"catalog: {len(result.catalog.knobs)} knobs, {n_sites} sites, "
                  f"{len(result.catalog.unsupported)} unsupported -> {where}")
