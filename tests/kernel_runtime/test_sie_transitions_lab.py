"""SIE runtime robustness in the lab: a self-disable no value change can undo, probe offsets
the kernel refuses, and the global (quiescence) transition mode.

Each test runs its own copy of a hand knob inside the guest (a copy renders to the same C,
so the image's objects serve it) and unloads it; PIPE_DEF_BUFFERS copies stay one knob per
site by unloading the original first.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernel_runtime.lab.target import LabTarget

pytestmark = pytest.mark.lab

PRELUDE = (
    "import fcntl, json, os, threading, time\n"
    "from autotune.core.catalog import SafeSpan\n"
    "from kernel_runtime.backend import GLOBAL\n"
    "from kernel_runtime.sie import SieBackend, module, pins, values\n"
    "b = SieBackend.for_running_kernel(allow_unverified=True)\n"
    "pipe = b.catalog.knob('PIPE_DEF_BUFFERS'); b.unload_knob(pipe)\n"
    "def copy(k, name, **changes):\n"
    "    c = k.model_copy(update={'name': name, **changes}); b.catalog.knobs.append(c); return c\n"
    "def size():\n"
    "    r, w = os.pipe(); s = fcntl.fcntl(r, 1032); os.close(r); os.close(w); return s\n"
    "def state(k):\n"
    "    st = next(s for s in b.status() if s.name == k.name)\n"
    "    return {'value': st.value, 'alert': st.alert, 'counters': st.counters}\n")


def guest(lab: LabTarget, code: str) -> Any:
    res = lab.run(["python3.11", "-c", PRELUDE + code], timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_self_disable_survives_concurrent_value_changes(lab: LabTarget) -> None:
    """A value change rewrites the whole control word from what it read before. Replaying
    such a stale write right after a mismatch (the race, made deterministic), then a thread
    rewriting the value as fast as it can while mismatches keep coming: `disabled` lives
    where user space never writes, so it stays set and nothing is ever written."""
    res = guest(lab, (
        "early = pipe.sites[1].model_copy(update={'probe_offset': 0x7c, 'probe_offsets': [0x7c]})\n"
        "bad = copy(pipe, 'PIPE_RACE', sites=[pipe.sites[0], early]); b.load(bad)\n"
        "ctl = pins.pinned(bad.name, 'sie_ctl'); zero = (0).to_bytes(4, 'little')\n"
        "stale = ctl.lookup(zero, 24); size(); ctl.update(zero, stale)\n"
        "replayed = values.live(bad.name).disabled\n"
        "stop = threading.Event()\n"
        "def writer():\n"
        "    v = 4\n"
        "    while not stop.is_set():\n"
        "        values.set_value(bad.name, v, GLOBAL, restoring=True); v ^= 12\n"
        "t = threading.Thread(target=writer); t.start()\n"
        "sizes = [size() for _ in range(200)]\n"
        "stop.set(); t.join()\n"
        "values.set_value(bad.name, 8, GLOBAL, restoring=True)\n"
        "after = [size() for _ in range(5)]\n"
        "try:\n"
        "    b.set(bad, 4); refused = ''\n"
        "except Exception as e:\n"
        "    refused = str(e)\n"
        "out = {'sizes': sorted(set(sizes + after)), 'disabled': values.live(bad.name).disabled,\n"
        "       'replayed': replayed,\n"
        "       'refused': refused, **state(bad)}\n"
        "b.unload_knob(bad); print(json.dumps(out))\n"))
    assert res["replayed"] == 1 and res["disabled"] == 1
    assert res["sizes"] == [65536]
    assert res["counters"]["site1.mismatches"] >= 1
    assert res["counters"]["site0.applied"] == res["counters"]["site1.applied"] == 0
    assert "disabled itself" in res["refused"]
    assert "knob disabled" in res["alert"]


def test_refused_offset_falls_back_to_an_equivalent_one(lab: LabTarget) -> None:
    """do_shrink_slab+0xd is inside an instruction (EILSEQ): the site attaches at +0xf, where
    %eax still holds the batch, says so, and applies there."""
    res = guest(lab, (
        "shrink = b.catalog.knob('SHRINK_BATCH'); b.unload_knob(shrink)\n"
        "site = shrink.sites[0].model_copy(update={'probe_offset': 0xd, 'probe_offsets': [0xd, 0xf]})\n"
        "k = copy(shrink, 'SHRINK_MOVED', sites=[site])\n"
        "reason = b.unavailable_reason(k); b.load(k); b.set(k, 32)\n"
        "open('/proc/sys/vm/drop_caches', 'w').write('2')\n"
        "out = {'reason': reason, 'note': b.moved_note(k), 'links': sorted(p.name for p in\n"
        "       pins.pin_dir(k.name).glob('link_*')), **state(k)}\n"
        "b.restore(k, None); b.unload_knob(k); print(json.dumps(out))\n"))
    assert res["reason"] is None
    assert res["links"] == ["link_site0_at0xf"]
    assert res["note"] == "attached at equivalent offsets: do_shrink_slab+0xd at +0xf"
    assert res["counters"]["site0.offset"] == 0xF
    assert res["counters"]["site0.applied"] > 0 and res["counters"]["site0.mismatches"] == 0


def test_notrace_function_is_unusable_with_the_reason(lab: LabTarget) -> None:
    """sbitmap_queue_resize has no ftrace site: kprobe events refuse every offset in it
    (SBQ_WAKE_BATCH's EINVAL). The knob is unusable before any apply, and a load anyway
    leaves nothing attached and no module slot behind."""
    res = guest(lab, (
        "shrink = b.catalog.knob('SHRINK_BATCH')\n"
        "site = shrink.sites[0].model_copy(update={'function': 'sbitmap_queue_resize',\n"
        "    'probe_offset': 0xc, 'probe_offsets': [0xc, 0x11], 'safe_spans': []})\n"
        "k = copy(shrink, 'SBQ_NOTRACE', sites=[site])\n"
        "slots = len(module.slots()) if module.loaded() else 0\n"
        "reason = b.unavailable_reason(k)\n"
        "try:\n"
        "    b.load(k); err = ''\n"
        "except Exception as e:\n"
        "    err = str(e)\n"
        "print(json.dumps({'reason': reason, 'err': err, 'pinned': pins.pin_dir(k.name).exists(),\n"
        "                  'slots': [slots, len(module.slots())]}))\n"))
    assert "sbitmap_queue_resize has no ftrace site (notrace)" in res["reason"]
    assert "all 2 equivalent offset(s)" in res["reason"]
    assert "+0xc:" in res["err"] and "+0x11:" in res["err"] and "notrace" in res["err"]
    assert res["pinned"] is False
    assert res["slots"][0] == res["slots"][1]


def test_global_mode_applies_each_change(lab: LabTarget) -> None:
    """Global mode: every change is a new generation, taken at the next span entry with no
    task inside; the live value and the switch count follow."""
    res = guest(lab, (
        "b.mode = 'global'; k = copy(pipe, 'PIPE_GLOBAL'); b.load(k)\n"
        "out = {'sizes': [], 'states': []}\n"
        "for v in (4, 64, None):\n"
        "    b.restore(k, v); out['sizes'].append(size()); out['states'].append(state(k))\n"
        "b.unload_knob(k); print(json.dumps(out))\n"))
    assert res["sizes"] == [16384, 262144, 65536]
    assert [s["value"] for s in res["states"]] == [4, 64, None]
    assert [s["counters"]["generation"] for s in res["states"]] == [1, 2, 3]
    assert all("pending.generation" not in s["counters"] for s in res["states"])
    assert res["states"][-1]["counters"]["switches"] == 3


def test_global_change_waits_for_a_task_inside_a_span(lab: LabTarget) -> None:
    """A thread asleep in do_nanosleep (made a safe span of the copy) holds every change:
    new pipes keep the old value, status shows it pending, and it is never forced; the
    moment the sleeper leaves, the change is live."""
    res = guest(lab, (
        "nap = SafeSpan(function='do_nanosleep', start=0, end=1 << 20)\n"
        "sites = [s.model_copy(update={'safe_spans': [*s.safe_spans, nap]}) for s in pipe.sites]\n"
        "b.mode = 'global'; k = copy(pipe, 'PIPE_HELD', sites=sites); b.load(k)\n"
        "sleeper = threading.Thread(target=time.sleep, args=(4,)); sleeper.start(); time.sleep(0.5)\n"
        "b.set(k, 4)\n"
        "held = [size()]; time.sleep(1.5); held.append(size()); pending = state(k)\n"
        "sleeper.join()\n"
        "after = size(); live = values.live(k.name); ctl = values.control(k.name)\n"
        "out = {'held': held, 'pending': pending, 'after': after, 'now': state(k),\n"
        "       'waited_ms': (live.switched_ns - ctl.pending_ns) / 1e6}\n"
        "b.restore(k, None); b.unload_knob(k); print(json.dumps(out))\n"))
    assert res["held"] == [65536, 65536]
    held = res["pending"]["counters"]
    assert held["pending.value"] == 4 and held["pending.since_ms"] >= 1500 and held["inside"] >= 1
    assert res["pending"]["value"] is None
    assert res["after"] == 16384
    assert res["now"]["value"] == 4 and "pending.generation" not in res["now"]["counters"]
    assert res["waited_ms"] >= 2000
