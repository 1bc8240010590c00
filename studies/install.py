"""Schedule ``autotune nightly run``: a systemd timer, or a cron line where systemd is absent.

The timer only wakes the command up (hourly by default); each definition's own
``schedule.every_hours`` decides whether it runs, so one timer serves every definition.
``Persistent=true`` makes a night missed while the machine was off run at the next boot.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from autotune.core.errors import EnvironmentProblem

UNIT = "autotune-nightly"
CRON_FILE = Path("/etc/cron.d/autotune-nightly")


@dataclass(frozen=True)
class InstallPlan:
    """Files to write (path -> text) and the commands that enable them."""

    kind: str
    files: dict[Path, str]
    commands: list[list[str]]


def systemd_running() -> bool:
    """The sd_booted() test: systemd is PID 1 exactly when this directory exists."""
    return Path("/run/systemd/system").is_dir()


def _command(definitions: Path) -> list[str]:
    return [sys.executable, "-m", "autotune.cli", "nightly", "run", "--definitions",
            str(definitions.resolve())]


def _env() -> dict[str, str]:
    """Our own directories travel into the unit so it reads the same studies and state."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("AUTOTUNE_")}


def systemd_plan(definitions: Path, on_calendar: str, unit_dir: Path) -> InstallPlan:
    env = "".join(f"Environment={shlex.quote(f'{k}={v}')}\n" for k, v in _env().items())
    service = (f"[Unit]\nDescription=kernel autotune: run due nightly studies\n"
               f"After=network-online.target\n\n[Service]\nType=oneshot\n{env}"
               f"ExecStart={shlex.join(_command(definitions))}\n"
               f"TimeoutStopSec=120\nKillSignal=SIGTERM\n")
    timer = (f"[Unit]\nDescription=kernel autotune nightly studies\n\n[Timer]\n"
             f"OnCalendar={on_calendar}\nPersistent=true\nRandomizedDelaySec=60\n\n"
             f"[Install]\nWantedBy=timers.target\n")
    return InstallPlan(kind="systemd", files={unit_dir / f"{UNIT}.service": service,
                                              unit_dir / f"{UNIT}.timer": timer},
                       commands=[["systemctl", "daemon-reload"],
                                 ["systemctl", "enable", "--now", f"{UNIT}.timer"]])


def cron_plan(definitions: Path, minute: int, cron_file: Path) -> InstallPlan:
    env = "".join(f"{k}={v}\n" for k, v in _env().items())
    line = (f"{env}{minute} * * * * root {shlex.join(_command(definitions))} "
            f">> /var/log/autotune-nightly.log 2>&1\n")
    return InstallPlan(kind="cron", files={cron_file: line}, commands=[])


def plan(definitions: Path, *, on_calendar: str = "hourly", minute: int = 7,
         unit_dir: Path = Path("/etc/systemd/system"), cron_file: Path = CRON_FILE,
         force_cron: bool = False) -> InstallPlan:
    """What ``install`` would write on this machine."""
    if systemd_running() and not force_cron:
        return systemd_plan(definitions, on_calendar, unit_dir)
    return cron_plan(definitions, minute, cron_file)


def install(p: InstallPlan) -> None:
    """Write the files atomically, then enable them."""
    for path, text in p.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    for argv in p.commands:
        if shutil.which(argv[0]) is None:
            raise EnvironmentProblem(f"{argv[0]} not found: run {shlex.join(argv)} by hand")
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise EnvironmentProblem(f"{shlex.join(argv)} failed: {res.stderr.strip()[:200]}")
