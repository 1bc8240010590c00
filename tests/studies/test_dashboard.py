"""``autotune dashboard``: optuna-dashboard answers on loopback and stops on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna

from kernel_runtime.processes import free_loopback_port


def test_dashboard_serves_the_storage_on_loopback_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="shown", storage=storage)
    port = free_loopback_port()
    proc = subprocess.Popen([sys.executable, "-m", "autotune.cli", "dashboard", "--port", str(port),
                             "--storage", storage], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    body = json.loads(r.read())
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.3)
        assert body is not None
        assert [s["study_name"] for s in body["study_summaries"]] == ["shown"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard/", timeout=5) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert "dashboard stopped" in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2)
        raise AssertionError("the dashboard still answers after Ctrl-C")
    except OSError:
        pass
