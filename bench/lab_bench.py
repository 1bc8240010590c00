"""Lab benchmarks: boot time, agent RPC round trip, lab-vs-host redis throughput ratio.

Usage: .venv/bin/python bench/lab_bench.py [--boots 2] [--calls 300] [--redis-runs 3]

Speed lives here, not in tests. The lab runs under TCG, so its redis numbers are emulated:
only the ratio, measured in interleaved runs on the same machine, means anything.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from analysis.debian_kernel import LAB_ROLES, fetch, resolve_version
from kernel_runtime.host import HostTarget
from kernel_runtime.lab.image import build_image
from kernel_runtime.lab.target import LabTarget
from kernel_runtime.lab.vm import Lab
from workloads.redis import RedisOptions, RedisWorkload


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_boot(boots: int) -> list[float]:
    """Seconds from QEMU start to the agent's first hello, image already built."""
    version = resolve_version()
    fetch(LAB_ROLES, version=version)
    image = build_image(version)
    seconds = []
    for _ in range(boots):
        vm = Lab.private()
        try:
            seconds.append(vm.start(image).boot_seconds)
        finally:
            vm.close()
    return seconds


def bench_rpc(lab: LabTarget, calls: int) -> dict[str, list[float]]:
    """Round trips: a bare health call, and a knob value change plus its observation."""
    knob = next(k for k in lab.knobs() if k.name == "net.core.somaxconn")
    client = lab.lab.client()
    client.connect()
    out: dict[str, list[float]] = {"health_ms": [], "apply_observe_ms": []}
    try:
        for i in range(calls):
            t = time.perf_counter()
            client.call("health")
            out["health_ms"].append((time.perf_counter() - t) * 1e3)
            value = 1024 + (i % 2) * 1024
            t = time.perf_counter()
            client.call("apply", values={knob.name: value},
                        knobs={knob.name: knob.model_dump(mode="json")},
                        scope={"kind": "global", "ident": 0})
            state = client.call("status")
            out["apply_observe_ms"].append((time.perf_counter() - t) * 1e3)
            assert [s["value"] for s in state if s["name"] == knob.name] == [str(value)]
        client.call("revert")
    finally:
        client.close()
    return out


def bench_redis(lab: LabTarget, runs: int, duration: float) -> dict[str, list[float]]:
    """Interleaved host/lab redis runs with identical options; throughput in requests/s."""
    opts = RedisOptions(clients=20, keyspace=10000, tests="set,get")
    host = HostTarget()
    on_host, on_lab = RedisWorkload(options=opts), RedisWorkload(options=opts)
    out: dict[str, list[float]] = {"host_rps": [], "lab_rps": []}
    try:
        on_host.setup(host)
        on_lab.setup(lab)
        for _ in range(runs):
            out["host_rps"].append(on_host.run(host, duration).throughput)
            out["lab_rps"].append(on_lab.run(lab, duration).throughput)
    finally:
        on_host.teardown()
        on_lab.teardown()
        host.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=2)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--redis-runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    boots = bench_boot(args.boots)
    lab = LabTarget(lab=Lab.private())
    try:
        rpc = bench_rpc(lab, args.calls)
        redis = bench_redis(lab, args.redis_runs, args.duration)
        kernel = lab.kernel().release
    finally:
        lab.close()
    ratio = statistics.median(redis["lab_rps"]) / statistics.median(redis["host_rps"])
    summary = {
        "kernel": kernel,
        "boot_s_median": statistics.median(boots), "boot_s": boots,
        **{f"{k}_median": round(statistics.median(v), 2) for k, v in rpc.items()},
        **{f"{k}_p95": round(percentile(v, 0.95), 2) for k, v in rpc.items()},
        "host_rps_median": round(statistics.median(redis["host_rps"])),
        "lab_rps_median": round(statistics.median(redis["lab_rps"])),
        "lab_over_host_throughput": round(ratio, 3),
        "tcg_slowdown_x": round(1 / ratio, 1),
        "host_rps": [round(x) for x in redis["host_rps"]],
        "lab_rps": [round(x) for x in redis["lab_rps"]],
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
