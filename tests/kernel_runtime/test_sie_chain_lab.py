"""A multiply-chain site from analysis to a live knob in the lab: TCP_INIT_CWND * advmss.

tcp_init_buffer_space (inlined in tcp_init_transfer) sizes rcvq_space as
``min3(rcv_ssthresh, rcv_wnd, TCP_INIT_CWND * advmss)``; GCC computes ``advmss * 10`` as
``lea (%rcx,%rcx,4), %eax; add %eax, %eax``, with no immediate. The site saves %rcx on the
lea and writes %ecx * V into %eax after the add. A tracefs kprobe (no BPF) on the compare
that follows reads %eax and %ecx: their ratio is the factor the kernel used. Only the chain
site is loaded, so the other copies of the constant (the initial cwnd) stay at 10.
"""

from __future__ import annotations

import pytest
from test_sie_recompute_lab import KEV

from autotune.core.catalog import Knob
from kernel_runtime.lab.target import LabTarget

pytestmark = pytest.mark.lab

NAME = "TCP_INIT_CWND"
FUNCTION = "tcp_init_transfer"
COMPARE = 0x1C0  # cmp %edx, %eax: the min3 reads the product here, past the site's probe
# Loopback connections: each side runs tcp_init_transfer once per connection.
PROBE = KEV + (
    f"kev('p:sie_chain {FUNCTION}+{COMPARE:#x} prod=%ax:u32 mss=%cx:u32\\n')\n"
    "open(T + 'events/kprobes/sie_chain/enable', 'w').write('1'); open(T + 'trace', 'w')\n"
    "srv = socket.create_server(('127.0.0.1', 0))\n"
    "for _ in range(4):\n"
    "    c = socket.create_connection(srv.getsockname()); a, _ = srv.accept(); c.close(); a.close()\n"
    "srv.close()\n"
    "open(T + 'events/kprobes/sie_chain/enable', 'w').write('0')\n"
    "text = open(T + 'trace').read(); kev('-:sie_chain\\n')\n"
    "pairs = [(int(p), int(m)) for p, m in re.findall(r'prod=(\\d+) mss=(\\d+)', text)]\n"
    "print(','.join(sorted({f'{p / m:g}' for p, m in pairs if m})))\n")


@pytest.fixture(scope="module")
def knob(oracle_knob) -> Knob:  # type: ignore[no-untyped-def]
    """The knob with only its chain site (the oracle verified every site of the constant)."""
    full = oracle_knob(NAME)
    chain = [s for s in full.sites if s.function == FUNCTION and s.recompute_op == "mul"]
    return full.model_copy(update={"sites": chain})


def factors(lab: LabTarget) -> set[float]:
    """product / advmss at the compare, over a few loopback connections."""
    res = lab.run(["python3.11", "-c", PROBE], timeout=180)
    assert res.returncode == 0, res.stderr
    return {float(f) for f in res.stdout.strip().split(",") if f}


def test_analysis_finds_the_chain(knob: Knob) -> None:
    (site,) = knob.sites
    assert (site.synthesis, site.recompute_op, site.expr, site.verified) == (
        "save-recompute", "mul", "V", "oracle")
    assert (site.location, site.save_input, site.width) == ("eax", "rcx", "u32")
    assert (site.save_offset, site.probe_offset) == (0x1B5, 0x1BA)


def test_receive_space_follows_the_knob(lab: LabTarget, knob: Knob) -> None:
    assert factors(lab) == {10.0}
    try:
        lab.control.apply({NAME: 20}, {NAME: knob})
        assert factors(lab) == {20.0}
        state = next(s for s in lab.control.status() if s.name == NAME)
        assert state.alert is None
        assert state.counters["site0.applied"] > 0 and state.counters["site0.mismatches"] == 0
    finally:
        lab.control.revert()
    assert factors(lab) == {10.0}
