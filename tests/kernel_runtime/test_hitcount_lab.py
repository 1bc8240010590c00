"""Hit counting on the lab kernel: a step whose answer is known in advance, then no leftovers.

The step makes 200 pipes (each runs ``alloc_pipe_info``: PIPE_DEF_BUFFERS) and one loopback
TCP connection that carries data (``tcp_init_transfer``: TCP_INIT_CWND); nothing in it
reclaims memory, so SHRINK_BATCH (``do_shrink_slab``) stays at 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from kernel_runtime.lab.target import LabTarget
from kernel_runtime.lab.vm import Lab

pytestmark = pytest.mark.lab

NAMES = ("PIPE_DEF_BUFFERS", "TCP_INIT_CWND", "SHRINK_BATCH")
PIPES = 200
STEP = f"""
import os, socket
for _ in range({PIPES}):
    r, w = os.pipe(); os.close(r); os.close(w)
srv = socket.create_server(("127.0.0.1", 0))
cli = socket.create_connection(srv.getsockname())
conn, _ = srv.accept()
cli.sendall(b"x" * 4096); conn.recv(4096)
for s in (cli, conn, srv):
    s.close()
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[LabTarget]:
    target = LabTarget(lab=Lab.private())
    try:
        yield target
    finally:
        target.close()


def our_events(lab: LabTarget) -> list[str]:
    res = lab.run(["cat", "/sys/kernel/tracing/kprobe_events"], timeout=20)
    assert res.returncode == 0, res.stderr
    return [line for line in res.stdout.splitlines() if "autotune_cnt_" in line]


def instances(lab: LabTarget) -> list[str]:
    res = lab.run(["ls", "/sys/kernel/tracing/instances"], timeout=20)
    return [n for n in res.stdout.split() if n.startswith("autotune_cnt_")]


def test_counts_hits_of_a_known_step_and_removes_every_event(lab: LabTarget) -> None:
    knobs = {k.name: k for k in lab.knobs() if k.name in NAMES}
    assert sorted(knobs) == sorted(NAMES)
    sites = {(s.function, s.probe_offset) for k in knobs.values() for s in k.sites}
    python = lab.which("python3.11")  # the interpreter the agent runs on
    assert python is not None
    token = lab.start_counting(list(knobs.values()))
    try:
        assert len(our_events(lab)) == len(sites)  # one event per distinct address
        assert instances(lab) == [token]
        res = lab.run([python, "-c", STEP], timeout=60)
        assert res.returncode == 0, res.stderr
    finally:
        counts = lab.stop_counting(token)
    assert counts.sites == len(sites) and not counts.unattached
    assert counts.hits["PIPE_DEF_BUFFERS"] >= PIPES
    assert counts.hits["TCP_INIT_CWND"] >= 1
    assert counts.hits["SHRINK_BATCH"] == 0
    assert our_events(lab) == [] and instances(lab) == []


def test_a_lapsed_lease_removes_armed_counters(lab: LabTarget) -> None:
    assert lab.lease is not None
    lab.start_counting([k for k in lab.knobs() if k.name == "PIPE_DEF_BUFFERS"])
    assert len(our_events(lab)) == 2
    lab.lease.stop()  # a controller that went away: nobody reads or removes the counter
    try:
        time.sleep(lab.lease.lease * 3)
        assert our_events(lab) == [] and instances(lab) == []
    finally:
        lab.lease.start()


def test_counting_sweeps_the_counter_of_a_dead_process(lab: LabTarget) -> None:
    stale = "autotune_cnt_999999_1"  # pid 999999 is above the guest's pid_max: never alive
    res = lab.run(["sh", "-c", f"echo 'p:{stale}/{stale}_0 alloc_pipe_info' >> "
                   "/sys/kernel/tracing/kprobe_events"], timeout=20)
    assert res.returncode == 0, res.stderr
    assert [e for e in our_events(lab) if stale in e]
    knobs = [k for k in lab.knobs() if k.name == "PIPE_DEF_BUFFERS"]
    lab.stop_counting(lab.start_counting(knobs))
    assert our_events(lab) == []
