"""SIE knobs end to end in the lab: a real 6.12 kernel, our module, real kprobes.

Each knob is checked the way its effect shows: set -> the kernel behaves as if built with
the value, revert -> the built-in value again, pid scope -> only that process changes.
One VM serves the whole module; every test reverts what it set.
"""

from __future__ import annotations

import json
import re

import pytest

from autotune.core.catalog import Knob
from kernel_runtime.backend import Scope
from kernel_runtime.lab.target import LabTarget

pytestmark = pytest.mark.lab

PIPE_SIZE = "import fcntl, os; r, w = os.pipe(); print(fcntl.fcntl(r, 1032))"  # F_GETPIPE_SZ
# tcp_info.tcpi_snd_cwnd (what `ss -ti` prints as cwnd) of a fresh loopback connection.
CWND = ("import socket, struct; s = socket.create_server(('127.0.0.1', 0)); "
        "c = socket.create_connection(s.getsockname()); "
        "print(struct.unpack_from('I', c.getsockopt(6, 11, 104), 80)[0])")
# Kprobe events (tracefs, no BPF) read kernel state; kprobe_events takes appends only
# (O_APPEND: Python's "a" mode seeks, which tracefs refuses).
TRACE = ("import os, re, socket\nT = '/sys/kernel/tracing/'\n"
         "def kev(line):\n"
         "    fd = os.open(T + 'kprobe_events', os.O_WRONLY | os.O_APPEND)\n"
         "    os.write(fd, line.encode()); os.close(fd)\n"
         "def traced(name, spec, action):\n"
         "    kev(f'p:{name} {spec}\\n'); open(T + f'events/kprobes/{name}/enable', 'w').write('1')\n"
         "    open(T + 'trace', 'w'); action()\n"
         "    open(T + f'events/kprobes/{name}/enable', 'w').write('0')\n"
         "    text = open(T + 'trace').read(); kev(f'-:{name}\\n')\n"
         "    return text\n")
# The batch size do_shrink_slab computes for shrinkers without their own (batch == 0),
# read from its register right after the kernel picked it; drop_caches runs every shrinker.
SHRINK = TRACE + ("def drop():\n"
                  "    open('/proc/sys/vm/drop_caches', 'w').write('2')\n"
                  "t = traced('sie_b', 'do_shrink_slab+0x2c own=+16(%si):u64 batch=%r12:u64', drop)\n"
                  "print(','.join(sorted({b for o, b in re.findall(r'own=(\\d+) batch=(\\d+)', t)"
                  " if o == '0'})))\n")
# icsk_delack_max of a new socket, read at tcp_connect (first argument: the socket).
DELACK = TRACE + ("def connect():\n"
                  "    s = socket.create_server(('127.0.0.1', 0))\n"
                  "    socket.create_connection(s.getsockname()).close(); s.close()\n"
                  "print(re.findall(r'dm=(\\d+)', traced('sie_dm', 'tcp_connect dm=+1232(%di):u32', connect))[-1])\n")
# Waits for <dir>/go, then runs the probe above and writes its output to <dir>/out.
WAITER = ("import os, sys, subprocess, time; d = sys.argv[1]\n"
          "while not os.path.exists(d + '/go'): time.sleep(0.05)\n"
          "exec(compile(sys.argv[2], 'probe', 'exec'), {'print': lambda v: open(d + '/out', 'w')"
          ".write(str(v))})\n")

CASES = {
    # knob: (probe, built-in result, value, result for that value)
    "PIPE_DEF_BUFFERS": (PIPE_SIZE, 65536, 4, 16384),
    "TCP_INIT_CWND": (CWND, 10, 32, 32),
    "SHRINK_BATCH": (SHRINK, 128, 32, 32),
    "TCP_DELACK_MAX": (DELACK, 50, 5, 5),
}


def guest_python(lab: LabTarget, code: str) -> str:
    res = lab.run(["python3.11", "-c", code], timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def scoped_result(lab: LabTarget, knobs: dict[str, Knob], name: str, value: int) -> str:
    """Run the knob's probe in a process that alone has ``value`` (pid scope)."""
    probe = CASES[name][0]
    workdir = lab.make_workdir("sie-scope")
    handle = lab.spawn(["python3.11", "-c", WAITER, workdir, probe], cwd=workdir)
    lab.control.apply({name: value}, knobs, scope=Scope("pid", handle.ident))
    lab.write_file(f"{workdir}/go", "")
    res = lab.run(["sh", "-c", f"while [ ! -s {workdir}/out ]; do sleep 0.1; done; cat {workdir}/out"],
                  timeout=120)
    lab.stop(handle)
    assert res.returncode == 0, (res.stderr, lab.run(["cat", f"{workdir}/process.log"], timeout=20))
    return res.stdout.strip()


def test_lab_catalog_knobs_are_usable(lab: LabTarget, knobs: dict[str, Knob]) -> None:
    assert set(CASES) <= set(knobs)
    ok, left = lab.control.usable(list(knobs.values()))
    assert {k.name for k in ok} >= set(CASES), left


@pytest.mark.parametrize("name", list(CASES))
def test_knob_set_unset_scoped(lab: LabTarget, knobs: dict[str, Knob], name: str) -> None:
    probe, builtin, value, expected = CASES[name]
    assert guest_python(lab, probe) == str(builtin)
    try:
        lab.control.apply({name: value}, knobs)
        assert guest_python(lab, probe) == str(expected)
        state = next(s for s in lab.control.status() if s.name == name)
        assert state.alert is None
        assert sum(v for k, v in state.counters.items() if k.endswith(".applied")) > 0
    finally:
        lab.control.revert()
    assert guest_python(lab, probe) == str(builtin)
    try:
        assert scoped_result(lab, knobs, name, value) == str(expected)
        assert guest_python(lab, probe) == str(builtin)
    finally:
        lab.control.revert()


def test_pipe_values_follow_every_map_update(lab: LabTarget, knobs: dict[str, Knob]) -> None:
    try:
        for pages in (2, 64, 8, 256, 16):
            lab.control.apply({"PIPE_DEF_BUFFERS": pages}, knobs)
            assert guest_python(lab, PIPE_SIZE) == str(pages * 4096)
        counters = next(s for s in lab.control.status() if s.name == "PIPE_DEF_BUFFERS").counters
    finally:
        lab.control.revert()
    # Site 2 rewrites the flags of `cmp $(V*4096-1), %ebp`: its self-check recomputes the
    # CPU's own flags for the default on every hit, so zero mismatches validates the model.
    assert counters["site2.hits"] >= 5 and counters["site2.applied"] >= 5
    assert counters["site2.mismatches"] == 0


def test_module_refuses_an_arbitrary_address(lab: LabTarget) -> None:
    code = (
        "import json, socket\n"
        "from kernel_runtime.sie import SieBackend, module, runtime\n"
        "from kernel_runtime.sie.render import render_refusal\n"
        "b = SieBackend.for_running_kernel()\n"
        "k = b.catalog.knob('TCP_DELACK_MAX'); b.load(k)\n"
        "before = module.counter('refused')\n"
        "res = runtime.refusal_selftest('tcp_init_sock', k.sites[0].probe_offset,\n"
        "    b.object_for(render_refusal()), lambda: [socket.socket().close() for _ in range(3)])\n"
        "res['module_refused'] = module.counter('refused') - before\n"
        "res['pipe_max_size'] = int(open('/proc/sys/fs/pipe-max-size').read())\n"
        "b.unload_knob(k)\n"
        "print(json.dumps(res))\n")
    res = json.loads(guest_python(lab, code))
    assert res["hits"] >= 3
    assert res["arbitrary_address"] == res["instruction_pointer"] == res["trap_flag"] == res["hits"]
    assert res["module_refused"] == 3 * res["hits"]
    assert res["pipe_max_size"] == 1048576


def test_domain_refuses_a_non_power_of_two(lab: LabTarget, knobs: dict[str, Knob]) -> None:
    from autotune.core.errors import BadInputError

    with pytest.raises(BadInputError, match="pow2"):
        lab.control.apply({"PIPE_DEF_BUFFERS": 12}, knobs)
    assert guest_python(lab, PIPE_SIZE) == "65536"


def test_self_check_mismatch_disables_the_knob(lab: LabTarget) -> None:
    """A site probed at the wrong offset (a wrong catalog) finds no default there: no write."""
    code = (
        "import fcntl, json, os\n"
        "from kernel_runtime.sie import SieBackend\n"
        "b = SieBackend.for_running_kernel()\n"
        "k = b.catalog.knob('PIPE_DEF_BUFFERS')\n"
        "early = k.sites[1].model_copy(update={'probe_offset': 0x7c, 'cs_end': 0x7c})\n"
        "bad = k.model_copy(update={'name': 'PIPE_WRONG', 'sites': [k.sites[0], early]})\n"
        "b.catalog.knobs.append(bad); b.load(bad); b.set(bad, 4)\n"
        "r, w = os.pipe(); size = fcntl.fcntl(r, 1032)\n"
        "st = next(s for s in b.status() if s.name == 'PIPE_WRONG')\n"
        "b.unload_knob(bad)\n"
        "print(json.dumps({'size': size, 'alert': st.alert, 'counters': st.counters}))\n")
    res = json.loads(guest_python(lab, code))
    assert res["size"] == 65536
    assert res["counters"]["site1.mismatches"] >= 1
    assert res["counters"]["site0.applied"] == res["counters"]["site1.applied"] == 0
    assert re.search(r"self-check mismatch at alloc_pipe_info\+0x7c", res["alert"])


def test_per_task_mode_latches_on_span_entry(lab: LabTarget) -> None:
    """Per-task: the value is taken on entering the safe span; enter/exit stay balanced."""
    code = (
        "import fcntl, json, os, struct\n"
        "from kernel_runtime.sie import SieBackend, runtime, values\n"
        "from kernel_runtime.sie.libbpf import PinnedMap\n"
        "b = SieBackend.for_running_kernel(); b.mode = 'per-task'\n"
        "b.unload_knob(b.catalog.knob('PIPE_DEF_BUFFERS'))  # one knob per site\n"
        "k = b.catalog.knob('PIPE_DEF_BUFFERS').model_copy(update={'name': 'PIPE_PER_TASK'})\n"
        "b.catalog.knobs.append(k); b.load(k)\n"
        "def size():\n"
        "    r, w = os.pipe(); s = fcntl.fcntl(r, 1032); os.close(r); os.close(w); return s\n"
        "out = {'sizes': [], 'tasks': []}\n"
        "tasks = PinnedMap(runtime.pin_dir(k.name) / 'sie_tasks')\n"
        "for v in (4, 64, None):\n"
        "    b.restore(k, v)\n"
        "    out['sizes'].append(size())\n"
        "    raw = tasks.lookup(struct.pack('<I', os.getpid()), 24)\n"
        "    out['tasks'].append(list(struct.unpack('<QqII', raw)))\n"
        "out['epoch'] = values.control(k.name).epoch\n"
        "out['links'] = sorted(p.name for p in runtime.pin_dir(k.name).glob('link_*'))\n"
        "tasks.close(); b.unload_knob(k)\n"
        "print(json.dumps(out))\n")
    res = json.loads(guest_python(lab, code))
    assert res["sizes"] == [16384, 262144, 65536]
    assert res["epoch"] == 3
    # (epoch seen at entry, latched value, has a value, depth after leaving the span)
    assert [t[0] for t in res["tasks"]] == [1, 2, 3]
    assert [t[2] for t in res["tasks"]] == [1, 1, 0]
    assert [t[1] for t in res["tasks"][:2]] == [4, 64]
    assert all(t[3] == 0 for t in res["tasks"])
    assert "link_span0_in" in res["links"] and "link_span0_out" in res["links"]


def test_unloading_a_copy_keeps_the_other_knobs_slots(lab: LabTarget, knobs: dict[str, Knob]) -> None:
    """Two knobs at one probe: unloading one removes only its own module slots."""
    code = (
        "from kernel_runtime.sie import SieBackend, module\n"
        "b = SieBackend.for_running_kernel()\n"
        "k = b.catalog.knob('PIPE_DEF_BUFFERS').model_copy(update={'name': 'PIPE_COPY'})\n"
        "b.catalog.knobs.append(k); before = len(module.slots()); b.load(k)\n"
        "during = len(module.slots()); b.unload_knob(k)\n"
        "print(before, during, len(module.slots()), len(k.sites))\n")
    try:
        lab.control.apply({"PIPE_DEF_BUFFERS": 4}, knobs)
        before, during, after, sites = map(int, guest_python(lab, code).split())
        assert during == before + sites and after == before
        assert guest_python(lab, PIPE_SIZE) == "16384"
    finally:
        lab.control.revert()


UNPRIVILEGED_PIPE = "import fcntl, os; os.setuid(65534); r, w = os.pipe(); print(fcntl.fcntl(r, 1032))"


def test_pipe_clamp_path_for_unprivileged_users(lab: LabTarget, knobs: dict[str, Knob]) -> None:
    """Below pipe-max-size a user's pipe is clamped by a second path into the same sites:
    the guard keeps that path's value, the flags site moves the limit as a V kernel would."""
    lab.write_file("/proc/sys/fs/pipe-max-size", "32768")
    try:
        assert guest_python(lab, UNPRIVILEGED_PIPE) == "32768"  # 16 pages > 8: clamped
        lab.control.apply({"PIPE_DEF_BUFFERS": 4}, knobs)
        assert guest_python(lab, UNPRIVILEGED_PIPE) == "16384"  # 4 pages fit under the limit
        lab.control.apply({"PIPE_DEF_BUFFERS": 64}, knobs)
        assert guest_python(lab, UNPRIVILEGED_PIPE) == "32768"  # clamped by the kernel's own path
        state = next(s for s in lab.control.status() if s.name == "PIPE_DEF_BUFFERS")
        assert state.alert is None and state.counters["site1.mismatches"] == 0
    finally:
        lab.control.revert()
        lab.write_file("/proc/sys/fs/pipe-max-size", "1048576")
