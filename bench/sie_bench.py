"""SIE costs measured in the lab: switch latency, load time, cost per hit, jump optimization.

Run: .venv/bin/python bench/sie_bench.py [--rounds 200]
Boots (or attaches to) the lab VM and runs the measurement inside it, next to the kernel.
Under QEMU TCG the absolute numbers are emulated: compare only the ratios printed beside
them (probed vs unprobed, optimized vs int3) with real-hardware goals.
"""

from __future__ import annotations

import argparse
import json

from kernel_runtime.lab.target import LabTarget

GUEST = r'''
import fcntl, json, os, statistics, struct, sys, time
from kernel_runtime.sie import SieBackend, pins, values
from kernel_runtime.backend import GLOBAL
ROUNDS = int(sys.argv[1])
OPT = "/proc/sys/debug/kprobes-optimization"
b = SieBackend.for_running_kernel()
pipe = b.catalog.knob("PIPE_DEF_BUFFERS")

def pipes(n):
    t = time.perf_counter_ns()
    for _ in range(n):
        r, w = os.pipe(); os.close(r); os.close(w)
    return (time.perf_counter_ns() - t) / n

def size():
    r, w = os.pipe(); s = fcntl.fcntl(r, 1032); os.close(r); os.close(w); return s

out = {}
loads = []
for _ in range(5):
    t = time.perf_counter_ns(); b.load(pipe); loads.append(time.perf_counter_ns() - t)
    b.unload_knob(pipe)
out["load_ms"] = statistics.median(loads) / 1e6

# Samples interleaved (TCG drifts): unprobed vs probed, no value vs value, jump vs int3.
base, idle, active, int3 = [], [], [], []
for _ in range(7):
    base.append(pipes(ROUNDS))
    b.load(pipe)
    idle.append(pipes(ROUNDS))
    b.set(pipe, 16)
    active.append(pipes(ROUNDS))
    open(OPT, "w").write("0"); time.sleep(0.2)
    int3.append(pipes(ROUNDS))
    open(OPT, "w").write("1")
    b.unload_knob(pipe)
b.load(pipe); b.set(pipe, 16)
# The site programs' own run time per hit, as the kernel accounts it (bpf_stats).
open("/proc/sys/kernel/bpf_stats_enabled", "w").write("1")
pipes(ROUNDS)
import subprocess
progs = [p for p in json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True,
         text=True).stdout) if p.get("name") == "sie_site" and p.get("run_cnt")]
open("/proc/sys/kernel/bpf_stats_enabled", "w").write("0")
out["prog_ns_per_hit"] = sum(p["run_time_ns"] for p in progs) / max(1, sum(p["run_cnt"] for p in progs))
sites = len(pipe.sites)
paired = lambda xs: statistics.median(x - y for x, y in zip(xs, base)) / sites
out["pipe_ns"] = statistics.median(base)
out["pipe_spread_ns"] = max(base) - min(base)
out["sites"] = len(pipe.sites)
out["hit_ns_optimized"] = paired(active)
out["hit_ns_no_value"] = paired(idle)
out["hit_ns_int3"] = paired(int3)
raw = pins.pinned(pipe.name, "sie_values")
key, val = values.scope_key(GLOBAL), struct.pack("<qQ", 16, 1)
bare = []
for _ in range(ROUNDS):
    t = time.perf_counter_ns(); raw.update(key, val); bare.append(time.perf_counter_ns() - t)



def alternate(after=None):
    """ROUNDS value changes 64 <-> 4 pages: (update ns, change -> applied ns, pipes of the
    wrong size, ``after()`` per change)."""
    update, switch, wrong, extra = [], [], 0, []
    for i in range(ROUNDS):
        v = 4 if i % 2 else 64
        t0 = time.perf_counter_ns()
        values.set_value(pipe.name, v, GLOBAL)
        t1 = time.perf_counter_ns()
        wrong += size() != v * 4096
        t2 = time.perf_counter_ns()
        update.append(t1 - t0); switch.append(t2 - t0)
        if after is not None:
            extra.append(after())
    return update, switch, wrong, extra


update, switch, wrong, _ = alternate()
q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] / 1e3
out.update(bare_us_p50=q(bare, 0.5), bare_us_p99=q(bare, 0.99),
           update_us_p50=q(update, 0.5), update_us_p99=q(update, 0.99),
           switch_us_p50=q(switch, 0.5), switch_us_p99=q(switch, 0.99),
           switch_wrong=wrong, switches=ROUNDS)
b.unload_knob(pipe)

# Global mode: the same alternating switches; a change is published, and the next span
# entry (alloc_pipe_info) with no task inside switches generations. The kernel-side delay
# is switched_ns - pending_ns (both CLOCK_MONOTONIC).
b.mode = "global"; b.load(pipe)
gupdate, gswitch, gwrong, gkernel = alternate(
    lambda: values.live(pipe.name).switched_ns - values.control(pipe.name).pending_ns)
out.update(gupdate_us_p50=q(gupdate, 0.5), gupdate_us_p99=q(gupdate, 0.99),
           gswitch_us_p50=q(gswitch, 0.5), gswitch_us_p99=q(gswitch, 0.99),
           gkernel_us_p50=q(gkernel, 0.5), gkernel_us_p99=q(gkernel, 0.99), gswitch_wrong=gwrong)
b.unload_knob(pipe); b.mode = "immediate"

opt, total = 0, 0
for k in b.catalog.knobs:
    b.load(k)
for st in b.status():
    flags = [v for n, v in st.counters.items() if n.endswith(".optimized")]
    opt += sum(flags); total += len(flags)
b.unload()
out["optimized_sites"], out["all_sites"] = opt, total
print(json.dumps(out))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000, help="pipes / switches per sample")
    args = parser.parse_args()
    with LabTarget() as lab:
        res = lab.run(["python3.11", "-c", GUEST, str(args.rounds)], timeout=900)
        if res.returncode != 0:
            raise SystemExit(f"guest benchmark failed: {res.stderr.strip()}")
        r = json.loads(res.stdout)
    print(f"lab kernel: {lab.kernel().release} (QEMU TCG: absolute numbers are emulated)")
    print(f"knob load (PIPE_DEF_BUFFERS, {r['sites']} sites), median of 5:   {r['load_ms']:.1f} ms")
    print(f"bpf map update syscall alone (ctypes), p50 / p99:     "
          f"{r['bare_us_p50']:.1f} / {r['bare_us_p99']:.1f} us")
    print(f"set_value (value + epoch, from Python), p50 / p99:    "
          f"{r['update_us_p50']:.1f} / {r['update_us_p99']:.1f} us")
    print(f"update -> first applying hit (incl. pipe()), p50/p99: "
          f"{r['switch_us_p50']:.1f} / {r['switch_us_p99']:.1f} us; "
          f"{r['switches'] - r['switch_wrong']}/{r['switches']} switches applied on the next hit")
    print(f"global mode: publish (copy table + pending), p50/p99: "
          f"{r['gupdate_us_p50']:.1f} / {r['gupdate_us_p99']:.1f} us")
    print(f"global mode: publish -> first applying hit, p50/p99: "
          f"{r['gswitch_us_p50']:.1f} / {r['gswitch_us_p99']:.1f} us; "
          f"{r['switches'] - r['gswitch_wrong']}/{r['switches']} applied on the next hit")
    print(f"global mode: published -> generation switched (kernel clock), p50/p99: "
          f"{r['gkernel_us_p50']:.1f} / {r['gkernel_us_p99']:.1f} us")
    print(f"site program run time per hit (kernel bpf_stats):     {r['prog_ns_per_hit']:.0f} ns")
    print(f"pipe() + close unprobed, median (max-min of samples): {r['pipe_ns']:.0f} ns "
          f"({r['pipe_spread_ns']:.0f} ns: per-hit deltas below this are noise)")
    for key, label in [("hit_ns_optimized", "added per hit, jump-optimized, value set"),
                       ("hit_ns_no_value", "added per hit, jump-optimized, no value"),
                       ("hit_ns_int3", "added per hit, int3 (optimization off)")]:
        print(f"{label + ':':53} {r[key]:.0f} ns ({r[key] / r['pipe_ns']:.2%} of a pipe())")
    if r["hit_ns_optimized"] > 0:
        print(f"int3 / optimized cost ratio:                          "
              f"{r['hit_ns_int3'] / r['hit_ns_optimized']:.1f}x")
    print(f"jump-optimized sites (all lab knobs loaded):          {r['optimized_sites']}/{r['all_sites']}")


if __name__ == "__main__":
    main()
