"""tracefs kprobe events: where they live and how one command is written.

Shared by the SIE offset checks (a trial registration runs the kernel's own address checks)
and hit counting (events as counters), so both speak to ``kprobe_events`` the same way.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from autotune.core.catalog import Site

MOUNTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


def root() -> Path | None:
    """The tracefs mount that has kprobe events, if any."""
    return next((t for t in MOUNTS if (t / "kprobe_events").exists()), None)


def command(events: Path, line: str) -> int:
    """Write one ``kprobe_events`` command; the errno, 0 when taken.

    O_APPEND only: a truncating open would clear every event, and a seeking one (Python's
    "a" mode) is refused by tracefs.
    """
    try:
        fd = os.open(events, os.O_WRONLY | os.O_APPEND)
    except OSError as e:
        return e.errno or errno.EIO
    try:
        os.write(fd, line.encode())
        return 0
    except OSError as e:
        return e.errno or errno.EIO
    finally:
        os.close(fd)


def spec(site: Site, offset: int) -> str:
    """``[module:]function+offset`` as kprobe events name a probe address."""
    where = f"{site.module.replace('-', '_')}:" if site.module else ""
    return f"{where}{site.function}+{offset}"
