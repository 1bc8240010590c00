"""``autotune lab start|status|shell|logs|stop`` on a real lab, in a private state dir."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from autotune.cli.main import cli
from kernel_runtime.lab.vm import Lab

pytestmark = pytest.mark.lab


def test_lab_lifecycle_through_the_cli() -> None:
    runner = CliRunner()
    assert "lab not running" in runner.invoke(cli, ["lab", "status"]).output
    started = runner.invoke(cli, ["lab", "start"])
    try:
        assert started.exit_code == 0, started.output
        assert "lab running: 6.12." in started.output
        status = runner.invoke(cli, ["lab", "status"])
        assert status.exit_code == 0 and "kernel    6.12." in status.output
        shell = runner.invoke(cli, ["lab", "shell", "--", "cat", "/proc/sys/kernel/osrelease"])
        assert shell.exit_code == 0
        assert shell.output.strip().endswith("-cloud-amd64")
        failing = runner.invoke(cli, ["lab", "shell", "--", "sh", "-c", "exit 7"])
        assert failing.exit_code == 7
        logs = runner.invoke(cli, ["lab", "logs"])
        assert logs.exit_code == 0 and "autotune-agent: listening" in logs.output
    finally:
        stopped = runner.invoke(cli, ["lab", "stop"])
    assert stopped.exit_code == 0 and "lab stopped" in stopped.output
    assert Lab.default().state() is None
