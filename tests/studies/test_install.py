"""``autotune nightly install``: systemd units or a cron line, printed with --dry-run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from studies.definition import DEFINITIONS_DIR
from studies.install import CRON_FILE, cron_plan, install, plan, systemd_plan, systemd_running


def test_dry_run_prints_the_schedule_and_writes_nothing(tmp_path: Path) -> None:
    before = CRON_FILE.exists()
    res = subprocess.run([sys.executable, "-m", "autotune.cli", "nightly", "install", "--dry-run"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    if systemd_running():
        assert "OnCalendar=hourly" in res.stdout and "[Service]" in res.stdout
    else:
        assert "/etc/cron.d/autotune-nightly" in res.stdout
    assert "nightly run --definitions" in res.stdout
    assert "dry run" in res.stderr
    assert CRON_FILE.exists() == before


def test_systemd_units_run_nightly_with_our_directories(tmp_path: Path) -> None:
    p = systemd_plan(DEFINITIONS_DIR, "*-*-* 02:00:00", tmp_path)
    service = p.files[tmp_path / "autotune-nightly.service"]
    timer = p.files[tmp_path / "autotune-nightly.timer"]
    assert "OnCalendar=*-*-* 02:00:00" in timer and "Persistent=true" in timer
    assert f"-m autotune.cli nightly run --definitions {DEFINITIONS_DIR}" in service
    assert "Environment=AUTOTUNE_DATA_DIR=" in service  # the conftest's private data dir
    assert ["systemctl", "enable", "--now", "autotune-nightly.timer"] in p.commands


def test_cron_line_is_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "cron.d" / "autotune-nightly"
    p = cron_plan(DEFINITIONS_DIR, 7, target)
    install(p)
    text = target.read_text()
    assert text.splitlines()[-1].startswith("7 * * * * root ")
    assert "nightly run --definitions" in text
    assert not list(target.parent.glob(".*.tmp"))


def test_plan_falls_back_to_cron_when_asked(tmp_path: Path) -> None:
    assert plan(DEFINITIONS_DIR, force_cron=True, cron_file=tmp_path / "c").kind == "cron"
