"""`autotune knob list` on this host: every curated tunable with what it is set to now."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_tunables_show_their_current_value() -> None:
    res = subprocess.run([sys.executable, "-m", "autotune.cli", "knob", "list"], capture_output=True,
                         text=True, env=os.environ | {"COLUMNS": "200"}, timeout=120)
    assert res.returncode == 0, res.stderr
    now = Path("/proc/sys/net/core/somaxconn").read_text().strip()
    row = next(line for line in res.stdout.splitlines() if "net.core.somaxconn" in line)
    assert re.search(rf"\b{now} \(now\)", row), row
