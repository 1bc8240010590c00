"""Whole studies on the host: real redis, real sysctl writes, and the journal on every exit path.

Marked root + redis: CI runs them as root. Settings are tiny (short runs, loose
--min-effect) because these tests check the plumbing, not the tuning result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.root, pytest.mark.redis]

KNOBS = {"net.core.netdev_budget": "net/core/netdev_budget",
         "net.core.dev_weight": "net/core/dev_weight",
         "net.core.somaxconn": "net/core/somaxconn"}
FAST = ["--target", "host", "--repeats", "2", "--duration", "1.5", "--min-effect", "0.95",
        "--preflight-runs", "3", "--validate-blocks", "2", "--top-k", "1", "--seed", "7"]


def snapshot() -> dict[str, str]:
    return {k: Path("/proc/sys", p).read_text() for k, p in KNOBS.items()}


def cmd(*args: str) -> list[str]:
    knobs = [a for k in KNOBS for a in ("--knob", k)]
    return [sys.executable, "-m", "autotune.cli", "run", *FAST, *knobs, *args]


def leftover_redis(after: float) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name", "create_time", "cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if p.info["create_time"] >= after - 1 and "redis" in (p.info["name"] or "") and \
                "autotune-redis" in cmdline:
            found.append(p)
    return found


@pytest.fixture
def original() -> Iterator[dict[str, str]]:
    before = snapshot()
    yield before
    for k, p in KNOBS.items():  # leave the machine as found even if an assertion failed
        Path("/proc/sys", p).write_text(before[k])


def wait_for_live_change(proc: subprocess.Popen[str], before: dict[str, str], timeout: float = 240
                         ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"study ended early: {proc.stderr.read() if proc.stderr else ''}")
        if snapshot() != before:
            return
        time.sleep(0.05)
    pytest.fail("no candidate value became live in time")


def open_sessions(state: Path) -> int:
    journal = state / "journal.jsonl"
    if not journal.exists():
        return 0
    recs = [json.loads(x) for x in journal.read_text().splitlines() if x.strip()]
    done = {r["session"] for r in recs if r["op"] == "done"}
    return len({r["session"] for r in recs if r["op"] == "set"} - done)


def test_three_trial_study_restores_everything_and_exports(original: dict[str, str],
                                                           private_dirs: Path, tmp_path: Path) -> None:
    start = time.time()
    res = subprocess.run(cmd("--trials", "3", "--study", "it"), capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert snapshot() == original
    assert open_sessions(private_dirs / "state") == 0
    assert leftover_redis(start) == []
    out = tmp_path / "p.toml"
    exp = subprocess.run([sys.executable, "-m", "autotune.cli", "policy", "export", "it", "-o", str(out)],
                         capture_output=True, text=True)
    assert exp.returncode == 0, exp.stderr
    text = out.read_text()
    assert "[evidence]" in text and "build_id" in text and "trials = 3" in text


@contextmanager
def study_with_live_candidate(study: str, original: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A long study in a subprocess, yielded once a candidate value is live; killed on exit."""
    proc = subprocess.Popen(cmd("--trials", "50", "--study", study), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_live_change(proc, original)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_failure_mid_trial_restores_values(original: dict[str, str], private_dirs: Path) -> None:
    start = time.time()
    with study_with_live_candidate("crash", original) as proc:
        servers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                   if p.name() == "redis-server"]
        assert servers
        for s in servers:
            s.kill()  # the service dies mid-trial: every later run fails, the study aborts
        _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "in a row failed" in err
    assert snapshot() == original
    assert open_sessions(private_dirs / "state") == 0
    assert leftover_redis(start) == []


def test_sigint_mid_trial_restores_values(original: dict[str, str], private_dirs: Path) -> None:
    start = time.time()
    with study_with_live_candidate("intr", original) as proc:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert snapshot() == original
    assert leftover_redis(start) == []


def test_sigkill_then_next_start_restores(original: dict[str, str], private_dirs: Path) -> None:
    start = time.time()
    with study_with_live_candidate("killed", original) as proc:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    changed = snapshot()
    assert changed != original, "the kill should have left a value changed"
    assert open_sessions(private_dirs / "state") == 1
    deadline = time.monotonic() + 10
    while leftover_redis(start) and time.monotonic() < deadline:
        time.sleep(0.1)  # children get SIGTERM from the kernel when their parent dies
    assert leftover_redis(start) == []
    res = subprocess.run(cmd("--trials", "1", "--study", "next"), capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "restored" in res.stderr and "previous run" in res.stderr
    assert snapshot() == original
    assert open_sessions(private_dirs / "state") == 0
