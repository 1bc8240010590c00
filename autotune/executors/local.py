"""Run every job in this process on one target (concurrency 1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from autotune.core.errors import KnobRejected, MeasurementError, TargetCrashed
from autotune.executors.base import Executor, Job, JobResult
from autotune.study.worker import TrialWorker


def execute(worker: TrialWorker, job: Job) -> JobResult:
    """Run one job on a worker; a failed measurement becomes an error result, not a crash.

    Shared by the local executor and by remote workers so both fail trials the same way. A
    crashed target fails the job; the worker sets its workload up again on the next job,
    on the target restarted clean.
    """
    try:
        worker.ensure_ready()
        if job.kind == "baseline":
            return JobResult(job=job, runs=worker.baseline_runs(job.repeats))
        if job.kind == "count":
            return JobResult(job=job, counts=worker.count_hits())
        if job.kind == "verify":
            return JobResult(job=job, rejected=worker.verify_defaults(job.params))
        return JobResult(job=job, pairs=worker.pairs(job.params, job.repeats, first=job.tag))
    except (MeasurementError, KnobRejected) as e:
        return JobResult(job=job, error=str(e))
    except TargetCrashed as e:
        worker.mark_crashed()
        return JobResult(job=job, error=f"target crashed: {e}")


class LocalExecutor(Executor):
    def __init__(self, *, worker: TrialWorker) -> None:
        self.worker = worker

    @property
    def concurrency(self) -> int:
        return 1

    def start(self) -> None:
        self.worker.setup()

    def run(self, jobs: list[Job], on_progress: Callable[[str], None] | None = None
            ) -> Iterator[JobResult]:
        for job in jobs:
            result = execute(self.worker, job)
            result.worker = self.worker.target.name
            yield result

    def describe(self) -> dict[str, Any]:
        k = self.worker.target.kernel()
        return {"targets": [{"name": self.worker.target.name, "kernel_release": k.release,
                             "kernel_build_id": k.build_id}]}

    def close(self) -> None:
        self.worker.close()
