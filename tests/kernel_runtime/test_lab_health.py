"""Recognising kernel trouble on the lab console, and the watchdog's verdicts.

The console lines are verbatim kernel output (6.12). The watchdog tests feed it a real
file and a fake heartbeat/VM-liveness pair (named as such): what is under test is the
verdict logic, not QEMU.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kernel_runtime.lab import health
from kernel_runtime.lab.health import Watchdog, classify

LINES = [
    ("[   12.345678] Kernel panic - not syncing: sysrq triggered crash", "fatal",
     "kernel panic: sysrq triggered crash"),
    ("[   40.1] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [redis-server:311]", "fatal",
     "soft lockup on CPU#1 (stuck 22s)"),
    ("[   60.2] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "fatal",
     "RCU stall (rcu_preempt)"),
    ("[    9.9] BUG: kernel NULL pointer dereference, address: 0000000000000008", "fatal",
     "kernel BUG: kernel NULL pointer dereference, address: 0000000000000008"),
    ("[    9.9] kernel BUG at mm/slub.c:442!", "fatal", "kernel BUG: mm/slub.c:442!"),
    ("[    9.9] Oops: general protection fault, probably for non-canonical address", "fatal",
     "kernel oops: general protection fault, probably for non-canonical address"),
    ("[    5.0] WARNING: CPU: 0 PID: 1 at kernel/sched/core.c:1234 foo+0x1/0x2", "warning",
     "kernel WARN at kernel/sched/core.c:1234"),
    ("[  130.0] INFO: task kworker/0:1:42 blocked for more than 120 seconds.", "warning",
     "hung task kworker/0:1:42 (blocked > 120 s)"),
]


@pytest.mark.parametrize(("line", "severity", "reason"), LINES)
def test_classify_kernel_lines(line: str, severity: str, reason: str) -> None:
    event = classify(line)
    assert event is not None
    assert (event.severity, event.reason) == (severity, reason)


@pytest.mark.parametrize("line", ["[    1.0] virtio_net virtio0 eth0: renamed",
                                  "autotune-agent: listening on 0.0.0.0:7070",
                                  "[    2.0] Run /init as init process"])
def test_ordinary_lines_are_not_trouble(line: str) -> None:
    assert classify(line) is None


def _watch(console: Path, *, alive: bool, beats: bool) -> str:
    verdict: list[str] = []
    done = threading.Event()

    def fake_heartbeat() -> None:
        if not beats:
            raise ConnectionError("fake: no answer")

    def on_fatal(reason: str) -> None:
        verdict.append(reason)
        done.set()

    dog = Watchdog(console=console, alive=lambda: alive, heartbeat=fake_heartbeat,
                   on_fatal=on_fatal)
    dog.start()
    assert done.wait(health.HANG_AFTER + 10)
    dog.stop()
    return verdict[0]


def test_vm_exit_reports_the_panic_line(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("[ 1.0] sysrq: Trigger a crash\n"
                       "[ 1.1] Kernel panic - not syncing: sysrq triggered crash\n")
    assert _watch(console, alive=False, beats=True) == "kernel panic: sysrq triggered crash"


def test_silent_guest_is_declared_hung(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("[ 1.0] nothing wrong here\n")
    assert _watch(console, alive=True, beats=False).startswith("guest hung: no heartbeat")


def test_lockup_line_is_fatal_while_vm_still_runs(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("[ 40.1] watchdog: BUG: soft lockup - CPU#0 stuck for 23s! [sh:1]\n")
    assert _watch(console, alive=True, beats=True) == "soft lockup on CPU#0 (stuck 23s)"


def test_oops_names_the_faulting_instruction(tmp_path: Path) -> None:
    """An oops is reported with its RIP line, which comes a few lines after the first."""
    console = tmp_path / "console.log"
    console.write_text("[ 88.1] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n"
                       "[ 88.1] CPU: 1 UID: 0 PID: 312 Comm: python3.11 Not tainted 6.12.117\n"
                       "[ 88.1] RIP: 0010:do_shrink_slab+0x2d/0x3c0\n")
    assert _watch(console, alive=True, beats=True) == \
        "kernel oops: int3: 0000 [#1] PREEMPT SMP NOPTI at do_shrink_slab+0x2d/0x3c0"


def test_oops_without_rip_line_is_still_declared(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("[ 88.1] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n")
    assert _watch(console, alive=True, beats=True) == "kernel oops: int3: 0000 [#1] PREEMPT SMP NOPTI"
