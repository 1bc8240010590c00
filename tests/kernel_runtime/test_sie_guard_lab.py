"""Guarded memory sites in the lab: TCP_ATO_MIN's stores that a join follows.

tcp_dec_quickack_mode stores TCP_ATO_MIN into icsk_ack.ato (inlined in __tcp_transmit_skb at
+0x430), and 'quick == 0' jumps to the next instruction, +0x438, where the site's probe must
sit; tcp_event_data_recv's first-data store at +0xbe is followed the same way by the join of
its else branches at +0xc5. There ato holds the socket's own value: doubled by the delayed-ACK
timer, or grown by a gap between segments. The traffic below makes both happen (the peer
delays its ACK past ato, then answers), so an unguarded copy of those three sites fails its
self-check, and the analysis' guarded sites (a probe on the store marks the task) do not.
"""

from __future__ import annotations

import pytest

from autotune.core.catalog import Knob
from kernel_runtime.lab.target import LabTarget

pytestmark = pytest.mark.lab

NAME = "TCP_ATO_MIN"
# One loopback connection: one-way segments the peer ACKs late (its delayed-ACK timer fires
# after ato = 40 ms and doubles ato), each followed by a question it answers (a transmit with
# quick == 0, the join path). Prints the number of answers.
TRAFFIC = (
    "import socket, threading, time\n"
    "srv = socket.create_server(('127.0.0.1', 0))\n"
    "def peer():\n"
    "    c, _ = srv.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
    "    while (d := c.recv(4096)):\n"
    "        if d.endswith(b'?'): c.sendall(b'!')\n"
    "t = threading.Thread(target=peer); t.start()\n"
    "s = socket.create_connection(srv.getsockname())\n"
    "s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
    "n = 0\n"
    "for _ in range(40):\n"
    "    s.sendall(b'x' * 100); time.sleep(0.1)\n"
    "    s.sendall(b'?'); n += s.recv(16) == b'!'\n"
    "s.close(); t.join(); srv.close(); print(n)\n")


@pytest.fixture(scope="module")
def knob(oracle_knob) -> Knob:  # type: ignore[no-untyped-def]
    return oracle_knob(NAME)


def run_traffic(lab: LabTarget, knob: Knob, value: int) -> tuple[dict[str, int], str | None]:
    """The knob's counters and alert after the traffic at ``value`` (reverted afterwards)."""
    try:
        lab.control.apply({knob.name: value}, {knob.name: knob})
        res = lab.run(["python3.11", "-c", TRAFFIC], timeout=180)
        assert res.returncode == 0 and res.stdout.strip() == "40", res.stderr
        state = next(s for s in lab.control.status() if s.name == knob.name)
        return dict(state.counters), state.alert
    finally:
        lab.control.revert()


def total(counters: dict[str, int], kind: str) -> int:
    return sum(v for k, v in counters.items() if k.endswith("." + kind))


def test_unguarded_join_sites_fail_their_self_check(lab: LabTarget, knob: Knob) -> None:
    """The traffic reaches the joins with ato != 10: without the guard, a mismatch (so the
    guarded run below, with zero, shows the guard at work)."""
    joined = [s.model_copy(update={"guard_offset": None}) for s in knob.sites
              if s.guard_offset is not None]
    assert len(joined) == 3
    bare = knob.model_copy(update={"name": "TCP_ATO_MIN_UNGUARDED", "sites": joined})
    counters, alert = run_traffic(lab, bare, 20)
    assert total(counters, "mismatches") > 0 and alert is not None and "self-check" in alert


def test_guarded_sites_apply_only_on_the_constants_path(lab: LabTarget, knob: Knob) -> None:
    counters, alert = run_traffic(lab, knob, 20)
    assert alert is None and total(counters, "mismatches") == 0, (alert, counters)
    guarded = [i for i, s in enumerate(knob.sites) if s.guard_offset is not None]
    assert sum(counters[f"site{i}.applied"] for i in guarded) > 0
