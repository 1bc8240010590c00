"""A flags-rewriting site and an arithmetic-right-shift site, analysed with the oracle and
written by the runtime in the lab; their effect read back by tracefs kprobes (no BPF).

LAST_INO_BATCH (1024): get_next_ino's 'test $0x3ff, %eax; je' decides when a CPU refills
its batch of inode numbers (the refill path at +0x4e starts with 'mov $0x400, %eax', the
knob's other site). The flags site rewrites ZF/SF/PF/CF/OF as 'test $(V-1)' sets them, so at
V=16 the refill runs whenever the CPU's counter is a multiple of 16; its self-check compares
the CPU's own flags with the model on every call (zero mismatches validates the model).
Pipes each take one inode number; a probe at +0x4e reads the counter that took the branch.

TCP_METRICS_TIMEOUT (an hour of jiffies): 'add $0xdbba0, %rax; jns' in tcp_get_metrics, a
save-recompute site that rewrites the add's flags as well (the kind of btrfs' and bfq's).

tcp_input.c:921 ('m >>= 3' in tcp_rtt_estimator, inlined in tcp_ack_update_rtt as
'sar $3, %rdx', computed before 'test %rsi, %rsi; cmovg %rdx, %rsi' selects it): a
user-given file:line seed, which the lab exercises on every ACK of a loopback transfer.
%rsi still holds m at the cmovg, so a probe there checks %rdx == m >> V, sign included
(negative m are shifted too, then not selected).
"""

from __future__ import annotations

import pytest
from test_sie_recompute_lab import KEV, TRANSFER

from analysis import analyze
from autotune.core.catalog import Knob
from kernel_runtime.lab.target import LabTarget

pytestmark = pytest.mark.lab

INO = "LAST_INO_BATCH"
REFILL = 0x4E  # get_next_ino: 'mov $0x400, %eax', reached when the test's je is taken
RTT = "net/ipv4/tcp_input.c:921"
RTT_FUNC = "tcp_ack_update_rtt"
CMOVG = 0xC6  # cmovg %rdx, %rsi: %rsi = m, %rdx = m >> V
PIPES = 3000
METRICS = "TCP_METRICS_TIMEOUT"  # 60 * 60 * HZ jiffies
CONNS = 40
TRACED = KEV + (  # add an event, run work(), return the trace, remove the event
    "def traced(name, spec, work):\n"
    "    kev(f'p:{name} {spec}\\n')\n"
    "    open(T + f'events/kprobes/{name}/enable', 'w').write('1'); open(T + 'trace', 'w')\n"
    "    work()\n"
    "    open(T + f'events/kprobes/{name}/enable', 'w').write('0')\n"
    "    text = open(T + 'trace').read(); kev(f'-:{name}\\n')\n"
    "    return text\n")
INO_PROBE = TRACED + (
    "def pipes():\n"
    f"    for _ in range({PIPES}):\n"
    "        r, w = os.pipe(); os.close(r); os.close(w)\n"
    f"text = traced('sie_ino', 'get_next_ino+{REFILL:#x} res=%ax:u32', pipes)\n"
    "print(' '.join(re.findall(r'res=(\\d+)', text)))\n")
RTT_PROBE = TRACED + TRANSFER + (
    "def work(): transfer(16 << 20)\n"
    f"text = traced('sie_rtt', '{RTT_FUNC}+{CMOVG:#x} m=%si:s64 shifted=%dx:s64', work)\n"
    "print(' '.join(f'{m},{s}' for m, s in re.findall(r'm=(-?\\d+) shifted=(-?\\d+)', text)))\n")


METRICS_PROBE = TRACED + (
    "import time\n"
    "def conns():\n"
    "    srv = socket.create_server(('127.0.0.1', 0), backlog=64)\n"
    f"    for _ in range({CONNS}):\n"
    "        c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()\n"
    "        c.close(); a.close(); time.sleep(0.02)\n"
    "    srv.close()\n"
    "print(len(re.findall(r'sie_suck:', traced('sie_suck', 'tcpm_suck_dst', conns))))\n")


@pytest.fixture(scope="module")
def catalog(lab_files):  # type: ignore[no-untyped-def]
    return analyze.analyze(lab_files, names=[INO, RTT, METRICS], oracle=True, jobs=2,
                           force=True).catalog


def refills(lab: LabTarget) -> list[int]:
    """The per-CPU counters that took the refill branch while PIPES pipes were made."""
    res = lab.run(["python3.11", "-c", INO_PROBE], timeout=180)
    assert res.returncode == 0, res.stderr
    return [int(v) for v in res.stdout.split()]


def shifts(lab: LabTarget) -> list[tuple[int, int]]:
    """(m, %rdx) at the cmovg for every RTT sample of one loopback transfer."""
    res = lab.run(["python3.11", "-c", RTT_PROBE], timeout=180)
    assert res.returncode == 0, res.stderr
    pairs = [tuple(int(x) for x in p.split(",")) for p in res.stdout.split()]
    # only RTT samples below the estimate take this path (10 in a 4 MB transfer, once)
    assert len(pairs) >= 5 and any(m < 0 for m, _ in pairs) and any(m > 0 for m, _ in pairs)
    return pairs  # type: ignore[return-value]


def counters(lab: LabTarget, name: str) -> tuple[int, int]:
    state = next(s for s in lab.control.status() if s.name == name)
    assert state.alert is None
    c = state.counters
    return (sum(n for k, n in c.items() if k.endswith(".applied")),
            sum(n for k, n in c.items() if k.endswith(".mismatches")))


def test_analysis_emits_the_new_kinds(catalog) -> None:  # type: ignore[no-untyped-def]
    ino: Knob = catalog.knob(INO)
    test = next(s for s in ino.sites if s.synthesis == "flags")
    assert (test.function, test.flags_op, test.compare_operand, test.expr) == \
        ("get_next_ino", "test", "eax", "V-1")
    rtt: Knob = catalog.knob(RTT)
    (sar,) = [s for s in rtt.sites if s.function == RTT_FUNC]
    assert (sar.recompute_op, sar.location, sar.width, sar.cs_start) == ("sar", "rdx", "u64", 0xBF)
    assert sar.probe_offset < CMOVG  # the tracefs probe reads after the site wrote
    assert all(s.verified == "oracle" for k in (ino, rtt) for s in k.sites)


def test_test_flags_site_moves_the_batch_boundary(lab: LabTarget, catalog) -> None:  # type: ignore[no-untyped-def]
    knobs = {INO: catalog.knob(INO)}
    builtin = refills(lab)
    assert all(r % 1024 == 0 for r in builtin) and len(builtin) <= PIPES // 1024 + 4
    try:
        lab.control.apply({INO: 16}, knobs)
        tuned = refills(lab)
        assert all(r % 16 == 0 for r in tuned) and any(r % 1024 for r in tuned)
        assert len(tuned) >= PIPES // 16 // 2
        applied, mismatches = counters(lab, INO)
        assert applied >= PIPES and mismatches == 0
    finally:
        lab.control.revert()
    # the default's boundary again; batches may stay short: the shared counter advanced by
    # 16 while tuned, so a refill can start a CPU just below its next multiple of 1024
    assert all(r % 1024 == 0 for r in refills(lab))


def test_sar_site_shifts_sign_preserving(lab: LabTarget, catalog) -> None:  # type: ignore[no-untyped-def]
    knobs = {RTT: catalog.knob(RTT)}
    assert all(s == m >> 3 for m, s in shifts(lab))  # Python's >> is arithmetic, like sar
    try:
        lab.control.apply({RTT: 1}, knobs)
        tuned = shifts(lab)
        assert all(s == m >> 1 for m, s in tuned)
        applied, mismatches = counters(lab, RTT)
        assert applied >= len(tuned) and mismatches == 0
    finally:
        lab.control.revert()
    assert all(s == m >> 3 for m, s in shifts(lab))


def reloads(lab: LabTarget) -> int:
    """How often the cached TCP metrics of 127.0.0.1 were reloaded from the route
    (tcpm_suck_dst) over CONNS loopback connections 20 ms apart."""
    res = lab.run(["python3.11", "-c", METRICS_PROBE], timeout=180)
    assert res.returncode == 0, res.stderr
    return int(res.stdout)


def test_add_flags_site_expires_tcp_metrics(lab: LabTarget, catalog) -> None:  # type: ignore[no-untyped-def]
    """'add $TCP_METRICS_TIMEOUT, %rax; jns' (time_after(jiffies, stamp + timeout)) in
    tcp_get_metrics: at V=1 jiffy every lookup finds the entry stale and reloads it; the
    self-check compares the CPU's flags of the add with the model on every lookup."""
    knob: Knob = catalog.knob(METRICS)
    assert {(s.recompute_op, s.flags_op) for s in knob.sites} == {("add", "add")}
    assert reloads(lab) <= 2  # an hour: only a new entry is loaded
    try:
        lab.control.apply({METRICS: 1}, {METRICS: knob})
        assert reloads(lab) >= CONNS // 2
        applied, mismatches = counters(lab, METRICS)
        assert applied >= CONNS and mismatches == 0
    finally:
        lab.control.revert()
    assert reloads(lab) <= 2
