"""The body of one Ray actor: one isolated kernel, its workload, one TrialWorker.

Plain Python (Ray wraps the class at run time), so it is importable and readable without
Ray; ``ray_executor`` is the driver side.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from autotune.core.errors import AutotuneError
from autotune.executors.base import Job, JobResult
from autotune.executors.factory import OpenedWorker, WorkerSpec, open_worker
from autotune.executors.local import execute
from autotune.targets import choose_target, open_target
from kernel_runtime.sie.knobset import CatalogChoice
from kernel_runtime.target import Target


def open_isolated_target(kind: str, catalog: CatalogChoice) -> Target:
    """A target no other worker shares: a lab is always a private VM (never the default lab
    that ``autotune lab start`` runs, which every process on this machine would attach to)."""
    chosen, _ = choose_target(kind)
    if chosen == "lab":
        from kernel_runtime.lab.target import LabTarget
        from kernel_runtime.lab.vm import Lab

        return LabTarget(lab=Lab.private(), catalog=catalog)
    return open_target(chosen, say=lambda _: None, catalog=catalog)


class KernelWorker:
    """The body of one Ray actor: one isolated target, its workload, one TrialWorker.

    Errors while opening are kept and raised by ``facts`` so the driver sees the product's own
    error (and its fix) rather than Ray's actor-death report.
    """

    def __init__(self, spec: WorkerSpec) -> None:
        self._opened: OpenedWorker | None = None
        self._error: BaseException | None = None
        try:
            self._opened = open_worker(spec, open_isolated_target(spec.target, spec.catalog_choice()))
        except Exception as e:  # kept for facts(); the actor must stay up to report it
            self._error = e

    def _worker(self) -> OpenedWorker:
        if self._opened is None:
            raise self._error or AutotuneError("worker was not opened")
        return self._opened

    def facts(self) -> dict[str, Any]:
        opened = self._worker()
        target = opened.worker.target
        kernel = target.kernel()
        lab = getattr(target, "lab", None)
        return {"name": target.name, "kernel_release": kernel.release,
                "kernel_build_id": kernel.build_id, "node": socket.gethostname(),
                "pid": os.getpid(), "restored": opened.restored,
                "private_dir": str(lab.run_dir) if lab is not None and not lab.detached else None,
                "knobs": [k.model_dump(mode="json") for k in opened.knobs],
                "left_out": [list(x) for x in opened.left_out]}

    def setup(self) -> None:
        self._worker().worker.ensure_ready()

    def execute(self, job: Job) -> JobResult:
        """Run one job; ``execute`` fails it on a crashed kernel and sets up again next time."""
        return execute(self._worker().worker, job)

    def close(self) -> None:
        if self._opened is not None:
            self._opened.worker.close()
            self._opened = None
