"""A save-recompute site with a 3-operand lea, from analysis to a live knob in the lab.

TCP_TIMEOUT_MIN_US (2000 us) is added by ``lea 0x7d0(%rax), %edi`` in
tcp_schedule_loss_probe: the input (srtt/4, still in %ebp) is not the location, so the
site saves %rax before the lea and rewrites %edi after it. The analysis runs with the
oracle (the loader refuses unverified sites); the effect is read by a tracefs kprobe (no
BPF) three instructions later, on the call to __usecs_to_jiffies: %edi - %ebp is the
constant the kernel used for this loss-probe timeout.
"""

from __future__ import annotations

import pytest

from autotune.core.catalog import Knob
from kernel_runtime.lab.target import LabTarget

pytestmark = pytest.mark.lab

NAME = "TCP_TIMEOUT_MIN_US"
TLP = "tcp_schedule_loss_probe.part.0"
CALL = 0x7A  # call __usecs_to_jiffies, after the site's probe at +0x6d
RTO_MIN_US = 200000  # the packets_out == 1 path joins at that call with tcp_rto_min_us() instead
# Guest code for reading a register through a tracefs kprobe event (no BPF): kev() adds or
# removes an event; transfer() is a bulk loopback transfer, whose every ACK with several
# segments in flight re-arms the loss probe (test_sie_flags_lab reads RTT samples with it).
KEV = ("import os, re, socket, threading\nT = '/sys/kernel/tracing/'\n"
       "def kev(line):\n"
       "    fd = os.open(T + 'kprobe_events', os.O_WRONLY | os.O_APPEND)\n"
       "    os.write(fd, line.encode()); os.close(fd)\n")
TRANSFER = ("def transfer(size=8 << 20):\n"
            "    srv = socket.create_server(('127.0.0.1', 0))\n"
            "    def sink():\n"
            "        c, _ = srv.accept()\n"
            "        while c.recv(1 << 16): pass\n"
            "    t = threading.Thread(target=sink); t.start()\n"
            "    s = socket.create_connection(srv.getsockname())\n"
            "    s.sendall(b'x' * size); s.close(); t.join(); srv.close()\n")
PROBE = KEV + TRANSFER + (
    f"kev('p:sie_tlp {TLP}+{CALL:#x} us=%di:u32 base=%bp:u32\\n')\n"
    "open(T + 'events/kprobes/sie_tlp/enable', 'w').write('1'); open(T + 'trace', 'w')\n"
    "transfer()\n"
    "open(T + 'events/kprobes/sie_tlp/enable', 'w').write('0')\n"
    "text = open(T + 'trace').read(); kev('-:sie_tlp\\n')\n"
    "print(','.join(sorted({str(int(u) - int(b)) for u, b in re.findall(r'us=(\\d+) base=(\\d+)', text)})))\n")


@pytest.fixture(scope="module")
def knob(oracle_knob) -> Knob:  # type: ignore[no-untyped-def]
    return oracle_knob(NAME)


def timeouts(lab: LabTarget) -> set[int]:
    """The minimum timeouts the loss probes of one transfer added (the other path's apart)."""
    res = lab.run(["python3.11", "-c", PROBE], timeout=180)
    assert res.returncode == 0, res.stderr
    return {int(t) for t in res.stdout.strip().split(",") if t} - {RTO_MIN_US}


def test_analysis_saves_the_lea_source(knob: Knob) -> None:
    site = next(s for s in knob.sites if s.function == TLP)
    assert (site.synthesis, site.recompute_op, site.location, site.save_input) == \
        ("save-recompute", "add", "edi", "rax")
    assert (site.save_offset, site.probe_offset, site.verified) == (0x67, 0x6D, "oracle")
    assert all(s.verified == "oracle" for s in knob.sites) and len(knob.sites) == 2


def test_loss_probe_timeout_follows_the_knob(lab: LabTarget, knob: Knob) -> None:
    assert timeouts(lab) == {2000}
    try:
        lab.control.apply({NAME: 5000}, {NAME: knob})
        assert timeouts(lab) == {5000}
        state = next(s for s in lab.control.status() if s.name == NAME)
        i = next(i for i, s in enumerate(knob.sites) if s.function == TLP)
        assert state.alert is None
        assert state.counters[f"site{i}.applied"] > 0 and state.counters[f"site{i}.mismatches"] == 0
    finally:
        lab.control.revert()
    assert timeouts(lab) == {2000}
