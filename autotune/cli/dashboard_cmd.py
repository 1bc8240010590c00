"""``autotune dashboard``: optuna-dashboard on the study storage (loopback only)."""

from __future__ import annotations

import click

from autotune.cli.options import interrupt_on_sigterm

EPILOG = """\b
Examples:
  autotune dashboard                      # http://127.0.0.1:8080/dashboard/ ; Ctrl-C stops
  autotune dashboard --port 9000 --storage postgresql://u:p@db/autotune
  ssh -L 8080:127.0.0.1:8080 tuner-host   # view a remote machine's dashboard
"""


@click.command(epilog=EPILOG)
@click.option("--port", default=8080, show_default=True, help="Loopback port (0: any free one).")
@click.option("--storage", default=None, help="SQLAlchemy URL (default: SQLite in the data dir).")
def dashboard(port: int, storage: str | None) -> None:
    """Serve optuna-dashboard for every study in the storage until Ctrl-C."""
    from studies.dashboard import make_dashboard, serve

    interrupt_on_sigterm()
    server = make_dashboard(storage, port)
    try:
        serve(server, lambda url: click.echo(f"dashboard: {url} (Ctrl-C stops)", err=True))
    except KeyboardInterrupt:
        click.echo("dashboard stopped", err=True)
