"""``autotune policy export``, ``autotune apply`` and ``autotune revert``."""

from __future__ import annotations

from pathlib import Path

import click

from autotune.cli.knob_cmd import catalog_options

EXPORT_EPILOG = """\b
Examples:
  autotune policy export redis-host -o redis.toml
  autotune policy export nightly-redis --storage postgresql://u:p@db/autotune -o redis.toml
"""
APPLY_EPILOG = """\b
Examples:
  autotune apply redis.toml --dry-run   # show the writes, change nothing
  autotune apply redis.toml
  autotune apply redis.toml --catalog mycatalog.json   # its SIE knobs from another catalog
"""
REVERT_EPILOG = """\b
Examples:
  autotune revert        # restore every value an applied policy or a dead run changed
"""


@click.group(epilog=EXPORT_EPILOG)
def policy() -> None:
    """Turn a finished study's verdict into a policy file."""


@policy.command(epilog=EXPORT_EPILOG)
@click.argument("study")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Policy file to write (TOML).")
@click.option("--storage", default=None, help="SQLAlchemy URL of the study storage.")
def export(study: str, output: Path, storage: str | None) -> None:
    """Write STUDY's validated verdict as a policy file (the default if nothing won)."""
    from autotune.policy.export import policy_from_study
    from autotune.policy.schema import write_policy
    from autotune.study.storage import load_study

    pol = policy_from_study(load_study(study, storage), storage)
    write_policy(pol, output)
    click.echo(f"wrote {output}: {pol.evidence.verdict}, {len(pol.knobs)} knob(s); "
               f"{pol.evidence.summary}")


@click.command(epilog=APPLY_EPILOG)
@click.argument("policy_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the planned writes and change nothing.")
@catalog_options
def apply(policy_file: Path, dry_run: bool, catalog: str | None, allow_unverified: bool) -> None:
    """Enact POLICY_FILE on this machine's kernel (journaled; undo with 'autotune revert')."""
    from autotune.policy.apply import apply_policy
    from autotune.policy.schema import load_policy
    from kernel_runtime.sie.knobset import CatalogChoice

    writes = apply_policy(load_policy(policy_file), dry_run=dry_run,
                          catalog=CatalogChoice(catalog, allow_unverified))
    verb = "would write" if dry_run else "applied"
    if not writes:
        click.echo("policy keeps every knob at its default: nothing to write")
    for w in writes:
        click.echo(f"{verb} {w.describe()}")


@click.command(epilog=REVERT_EPILOG)
@catalog_options
def revert(catalog: str | None, allow_unverified: bool) -> None:
    """Restore every value changed by applied policies or by runs that died."""
    from autotune.policy.apply import revert_all
    from kernel_runtime.sie.knobset import CatalogChoice

    restored = revert_all(CatalogChoice(catalog, allow_unverified))
    click.echo(f"restored {len(restored)} knob(s)" + (f": {', '.join(restored)}" if restored else ""))
