"""``autotune nightly``: run the study definitions that are due, and schedule that."""

from __future__ import annotations

import json
from pathlib import Path

import click

from autotune.cli.options import interrupt_on_sigterm

RUN_EPILOG = """\b
Examples:
  autotune nightly run                          # every due definition in studies/definitions
  autotune nightly run --force --only nightly-redis
  autotune nightly run --definitions /etc/autotune/studies --json
  autotune nightly status
"""
INSTALL_EPILOG = """\b
Examples:
  autotune nightly install --dry-run            # print the systemd units (or cron line)
  autotune nightly install                      # write and enable them
  autotune nightly install --on-calendar '*-*-* 02:00:00' --definitions /etc/autotune/studies
"""


def _definitions_dir(path: Path | None) -> Path:
    from studies.definition import DEFINITIONS_DIR

    return path or DEFINITIONS_DIR


DEFS = click.option("--definitions", type=click.Path(file_okay=False, path_type=Path),
                    default=None, help="Folder of study definition TOML files "
                                       "(default: studies/definitions in the package).")


@click.group(epilog=RUN_EPILOG)
def nightly() -> None:
    """Scheduled studies: re-validate yesterday's policy, tune again, export, report."""


@nightly.command(epilog=RUN_EPILOG)
@DEFS
@click.option("--force", is_flag=True, help="Run even definitions that are not due yet.")
@click.option("--only", multiple=True, help="Only this definition name (repeatable).")
@click.option("--no-report", is_flag=True, help="Skip the HTML report.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
def run(definitions: Path | None, force: bool, only: tuple[str, ...], no_report: bool,
        as_json: bool) -> None:
    """Run each due definition: drift check of the best policy, fresh study, export, report.

    Exits 6 when a re-validation flagged a regression or drift, 1 when a study failed.
    """
    from rich.console import Console

    from studies.definition import load_definitions
    from studies.nightly import run_due

    interrupt_on_sigterm()
    defs = load_definitions(_definitions_dir(definitions))
    results = run_due(defs, Console(stderr=True), force=force, only=only, report=not no_report)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in results], indent=2))
    for r in results:
        click.echo(f"{r.name}: drift check {r.drift.status}; study {r.study}: {r.verdict}"
                   + (f"; policy {r.policy_path}" if r.policy_path else "")
                   + (f"; report {r.report}" if r.report else ""), err=True)
    if any(r.error for r in results):
        raise SystemExit(1)
    if any(r.drift.flagged for r in results):
        raise SystemExit(6)


@nightly.command()
@DEFS
def status(definitions: Path | None) -> None:
    """Show each definition's schedule, last run and next due time."""
    from studies import schedule
    from studies.definition import load_definitions

    state = schedule.load_state()
    for d in load_definitions(_definitions_dir(definitions)):
        s = state.get(d.name, {})
        click.echo(f"{d.name}: every {d.schedule.every_hours:g} h; last {s.get('last_started', 'never')}"
                   f" ({s.get('last_verdict', '-')}, drift {s.get('last_drift', '-')}); "
                   f"next {schedule.next_due(d, state)}")


@nightly.command(epilog=INSTALL_EPILOG)
@DEFS
@click.option("--on-calendar", default="hourly", show_default=True,
              help="systemd OnCalendar of the wake-up (each definition decides if it is due).")
@click.option("--cron", "force_cron", is_flag=True, help="Write a cron line even under systemd.")
@click.option("--dry-run", is_flag=True, help="Print the files and commands, change nothing.")
def install(definitions: Path | None, on_calendar: str, force_cron: bool, dry_run: bool) -> None:
    """Write a systemd timer (or a cron line where systemd is absent) for 'nightly run'."""
    from studies.definition import load_definitions
    from studies.install import install as do_install
    from studies.install import plan

    defs_dir = _definitions_dir(definitions)
    load_definitions(defs_dir)
    p = plan(defs_dir, on_calendar=on_calendar, force_cron=force_cron)
    for path, text in p.files.items():
        click.echo(f"# {path}\n{text}")
    for argv in p.commands:
        click.echo("$ " + " ".join(argv))
    if dry_run:
        click.echo(f"dry run: {p.kind} files not written", err=True)
        return
    do_install(p)
    click.echo(f"installed the {p.kind} schedule", err=True)
