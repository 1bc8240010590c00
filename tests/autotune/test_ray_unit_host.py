"""Unit-level checks of the Ray executor on the host kernel, with a single worker.

One worker only: Ray actors on one machine share its one kernel, so a real multi-worker
test needs labs (test_ray_executor.py). Here Ray runs real jobs on real redis.
"""

from __future__ import annotations

import time

import psutil
import pytest

from autotune.core.errors import BadInputError
from autotune.executors.base import Job
from autotune.executors.factory import WorkerSpec
from autotune.executors.ray_executor import RayExecutor

SPEC = WorkerSpec(target="host", workload="redis", workload_options={"clients": 10},
                  knob_names=("net.core.netdev_budget",), duration=0.5)


def test_two_workers_on_one_host_kernel_are_refused_before_ray_starts() -> None:
    with pytest.raises(BadInputError, match="one kernel"):
        RayExecutor(spec=SPEC, workers=2)
    import ray

    assert not ray.is_initialized()


@pytest.mark.root
@pytest.mark.redis
def test_unit_single_host_worker_runs_baseline_and_pair_jobs() -> None:
    started = time.time()
    executor = RayExecutor(spec=SPEC, workers=1)
    try:
        knobs, _ = executor.open()
        assert [k.name for k in knobs] == ["net.core.netdev_budget"]
        executor.start()
        jobs = [Job(kind="baseline", tag=0, repeats=2),
                Job(kind="pairs", tag=1, params={"net.core.netdev_budget": 100}, repeats=2)]
        results = {r.job.tag: r for r in executor.run(jobs)}
        assert results[0].error is None and len(results[0].runs) == 2
        assert results[1].error is None and len(results[1].pairs) == 2
        assert {p.order for p in results[1].pairs} == {"AB", "BA"}
        assert results[1].worker.startswith("worker-0/host@")
        pid = executor.worker_pids()[results[1].worker]
    finally:
        executor.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    assert not [p for p in psutil.process_iter(["name", "create_time"])
                if p.info["name"] == "redis-server" and p.info["create_time"] >= started]
