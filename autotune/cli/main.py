"""Entry point: a click group whose subcommands are imported only when invoked.

Lazy loading keeps ``autotune --help`` fast and free of optuna, ray, angr and bcc; errors
from the library become one line and an exit code (``--debug`` shows the traceback).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from autotune.core.errors import AutotuneError

# command name -> "module:attribute"; each module holds one click command or group.
COMMANDS: dict[str, str] = {
    "run": "autotune.cli.run_cmd:run",
    "policy": "autotune.cli.policy_cmd:policy",
    "apply": "autotune.cli.policy_cmd:apply",
    "revert": "autotune.cli.policy_cmd:revert",
    "knob": "autotune.cli.knob_cmd:knob",
    "lab": "autotune.cli.lab_cmd:lab",
    "nightly": "autotune.cli.nightly_cmd:nightly",
    "report": "autotune.cli.report_cmd:report",
    "dashboard": "autotune.cli.dashboard_cmd:dashboard",
    "analyze": "autotune.cli.analyze_cmd:analyze",
}
SHORT_HELP: dict[str, str] = {
    "run": "Run a tuning study for a workload.",
    "policy": "Export policies from finished studies.",
    "apply": "Enact a policy file on this machine's kernel.",
    "revert": "Undo every applied policy and any write a dead run left behind.",
    "knob": "List, set and inspect individual knobs.",
    "lab": "Build, start and enter the lab VM (a real 6.12 kernel under QEMU).",
    "nightly": "Run due scheduled studies with drift checks; install their timer.",
    "report": "Write a study's tables, figures and HTML report.",
    "dashboard": "Serve optuna-dashboard on the study storage (loopback only).",
    "analyze": "Catalog a kernel build's perf-consts from its DWARF binary.",
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


EPILOG = """\b
Examples:
  autotune run --workload redis                 # tune with embedded defaults
  autotune run --workload redis --trials 20 --objective both
  autotune policy export redis-host -o redis.toml
  autotune apply redis.toml --dry-run
  autotune revert
"""


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="kernel-autotune")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """kernel autotune: tune the kernel's compiled-in constants for your workload."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI, mapping AutotuneError to a one-line message and its exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        return cli.main(args=argv, prog_name="autotune", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(2)
    except AutotuneError as e:
        if debug:
            raise
        click.echo(f"autotune: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted: every change was reverted", err=True)
        sys.exit(130)
