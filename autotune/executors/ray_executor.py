"""Run jobs on Ray actors, each owning one isolated kernel: a private lab VM, or a cluster node.

A kernel is a shared, global resource, so concurrency is the number of live actors and each
actor holds one ``autotune_kernel`` Ray resource: a local cluster offers one per lab we boot,
a cluster node offers one per kernel it lends (``ray start --resources '{"autotune_kernel": 1}'``).
The Optuna storage stays the single source of truth: the driver asks and tells, actors only
measure. An actor that dies (process killed, node lost) fails its job with the reason; the job
is retried once on another live actor, so the study goes on with the workers that remain.
Ray is imported only here, and only when a study asks for it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from autotune.core.catalog import Knob
from autotune.core.errors import AutotuneError, BadInputError, EnvironmentProblem
from autotune.executors.base import Executor, Job, JobResult
from autotune.executors.factory import Say, WorkerSpec
from autotune.executors.ray_worker import KernelWorker
from autotune.targets import choose_target

KERNEL_RESOURCE = "autotune_kernel"
MAX_ATTEMPTS = 2
OPEN_TIMEOUT = 900.0
CLOSE_TIMEOUT = 60.0
OBJECT_STORE_BYTES = 80 * 1024 * 1024


@dataclass
class _Actor:
    label: str
    handle: Any
    facts: dict[str, Any] = field(default_factory=dict)


def _autotune_env() -> dict[str, str]:
    """Our own settings (data, state and cache dirs) travel with the actors."""
    return {k: v for k, v in os.environ.items() if k.startswith("AUTOTUNE_")}


def _reason(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0][:200] if lines else 'no detail'}"


class RayExecutor(Executor):
    """One Ray actor per isolated kernel; jobs go to whichever actor is idle."""

    def __init__(self, *, spec: WorkerSpec, workers: int, address: str | None = None,
                 say: Say = lambda _: None) -> None:
        if workers < 1:
            raise BadInputError(f"--workers {workers}: need at least 1")
        if address in (None, "local") and workers > 1 and choose_target(spec.target)[0] == "host":
            raise BadInputError(f"--workers {workers} on --target host would run {workers} trials "
                                "on one kernel at once; use --target lab (one VM per worker) or "
                                "--ray-address with one node per kernel")
        self.spec = spec
        self.workers = workers
        self.address = address
        self.say = say
        self.deaths: list[str] = []
        self._actors: list[_Actor] = []
        self._owns_ray = False

    # lifecycle ---------------------------------------------------------------------------

    def open(self) -> tuple[list[Knob], list[tuple[str, str]]]:
        """Start (or join) Ray and one actor per kernel; returns the knobs all of them search.

        Anything that fails or is interrupted here (a lab that does not boot, Ctrl-C during
        the boots) stops what was started before the error propagates.
        """
        ray = self._init_ray()
        try:
            return self._start_actors(ray)
        except BaseException:
            self.close()
            raise

    def _init_ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise EnvironmentProblem("Ray is not installed: pip install 'kernel-autotune[ray]' "
                                     "(or run scripts/setup.sh with AUTOTUNE_WITH_RAY=1)") from None
        if ray.is_initialized():
            return ray
        local = self.address in (None, "local")
        try:
            ray.init(address=self.address, namespace="autotune", include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING,
                     runtime_env={"env_vars": _autotune_env()},
                     num_cpus=self.workers if local else None,
                     resources={KERNEL_RESOURCE: self.workers} if local else None,
                     object_store_memory=OBJECT_STORE_BYTES if local else None,
                     # a local cluster serves only this machine: keep it off the network
                     _node_ip_address="127.0.0.1" if local else None)
        except Exception as e:  # ray raises ConnectionError, ValueError, RuntimeError, ...
            raise EnvironmentProblem(f"cannot {'start' if local else 'join'} Ray"
                                     f"{'' if local else f' at {self.address}'}: {_reason(e)}; "
                                     "check --ray-address") from None
        self._owns_ray = True
        return ray

    def _start_actors(self, ray: Any) -> tuple[list[Knob], list[tuple[str, str]]]:
        offered = ray.cluster_resources().get(KERNEL_RESOURCE, 0)
        if offered < self.workers:
            raise EnvironmentProblem(
                f"the Ray cluster offers {offered:g} '{KERNEL_RESOURCE}' resource(s), --workers "
                f"is {self.workers}: start each node with ray start --resources "
                f"'{{\"{KERNEL_RESOURCE}\": 1}}' or lower --workers")
        remote = ray.remote(num_cpus=0, resources={KERNEL_RESOURCE: 1}, max_restarts=0,
                            max_task_retries=0)(KernelWorker)
        self.say(f"starting {self.workers} Ray worker(s), each with its own "
                 f"{self.spec.target} kernel")
        self._actors = [_Actor(f"worker-{i}", remote.remote(self.spec))
                        for i in range(self.workers)]
        try:
            facts = ray.get([a.handle.facts.remote() for a in self._actors], timeout=OPEN_TIMEOUT)
        except ray.exceptions.RayTaskError as e:
            cause = e.cause
            if isinstance(cause, AutotuneError):
                raise type(cause)(str(cause)) from None
            raise EnvironmentProblem(f"a Ray worker failed to open its target: {_reason(e)}") \
                from None
        except (ray.exceptions.RayError, TimeoutError) as e:
            raise EnvironmentProblem(f"Ray workers did not start within {OPEN_TIMEOUT:.0f} s: "
                                     f"{_reason(e)}") from None
        for actor, f in zip(self._actors, facts, strict=True):
            actor.facts = f
            actor.label = f"{actor.label}/{f['name']}@{f['node']}:{f['pid']}"
            if f["restored"]:
                self.say(f"{actor.label}: restored {', '.join(f['restored'])}")
        return self._agreed_knobs()

    def _agreed_knobs(self) -> tuple[list[Knob], list[tuple[str, str]]]:
        """Every worker must search the same knobs, or trials would not be comparable."""
        sets = {tuple(k["name"] for k in a.facts["knobs"]) for a in self._actors}
        if len(sets) != 1:
            raise EnvironmentProblem(f"Ray workers offer different knob sets {sorted(sets)}: "
                                     "their kernels differ; use nodes with one kernel build")
        first = self._actors[0].facts
        knobs = [Knob.model_validate(k) for k in first["knobs"]]
        return knobs, [(n, r) for n, r in first["left_out"]]

    @property
    def concurrency(self) -> int:
        return max(1, len(self._actors))

    def start(self) -> None:
        """Start every workload (calibration included); a worker that dies here is dropped."""
        import ray

        refs = {a.handle.setup.remote(): a for a in self._actors}
        for ref, actor in refs.items():
            try:
                ray.get(ref)
            except ray.exceptions.RayTaskError as e:
                raise e.cause if isinstance(e.cause, AutotuneError) else e from None
            except ray.exceptions.RayActorError as e:
                self._bury(actor, e)
        self._require_live()

    def _require_live(self) -> None:
        if not self._actors:
            raise EnvironmentProblem("every Ray worker died: " + "; ".join(self.deaths))

    def _bury(self, actor: _Actor, e: BaseException) -> str:
        """Drop a dead (or unreachable) actor for good and clean its private lab directory:
        its VM dies with it (parent-death signal)."""
        import ray

        ray.kill(actor.handle, no_restart=True)
        reason = f"{actor.label} died: {_reason(e)}"
        self.deaths.append(reason)
        self._actors = [a for a in self._actors if a is not actor]
        private = actor.facts.get("private_dir")
        if private and actor.facts.get("node") == socket.gethostname():
            shutil.rmtree(private, ignore_errors=True)
        self.say(reason)
        return reason

    # jobs --------------------------------------------------------------------------------

    def run(self, jobs: list[Job], on_progress: Callable[[str], None] | None = None
            ) -> Iterator[JobResult]:
        import ray

        say = on_progress or self.say
        self._require_live()
        queue: deque[tuple[Job, list[str]]] = deque((job, []) for job in jobs)
        idle = list(self._actors)
        inflight: dict[Any, tuple[_Actor, Job, list[str]]] = {}
        while queue or inflight:
            while queue and idle:
                actor = idle.pop(0)
                job, why = queue.popleft()
                inflight[actor.handle.execute.remote(job)] = (actor, job, why)
            if not inflight:
                for job, why in queue:
                    yield JobResult(job=job, error="; ".join(why) or "no live worker")
                return
            ready, _ = ray.wait(list(inflight), num_returns=1)
            actor, job, why = inflight.pop(ready[0])
            try:
                result: JobResult = ray.get(ready[0])
            except ray.exceptions.RayActorError as e:
                why = [*why, self._bury(actor, e)]
                idle = [a for a in idle if a is not actor]
                if len(why) < MAX_ATTEMPTS and self._actors:
                    say(f"job {job.kind} #{job.tag}: retrying on another worker")
                    queue.append((job, why))
                else:
                    yield JobResult(job=job, error="; ".join(why), worker=actor.label)
                continue
            idle.append(actor)
            result.worker = actor.label + (f" (retried after: {'; '.join(why)})" if why else "")
            yield result

    def worker_pids(self) -> dict[str, int]:
        """Process ids of live actors by label (for operators, and for the kill test)."""
        return {a.label: int(a.facts["pid"]) for a in self._actors if a.facts}

    def describe(self) -> dict[str, Any]:
        return {"kind": "ray", "address": self.address or "local", "workers": self.workers,
                "deaths": list(self.deaths),
                "targets": [{k: a.facts[k] for k in ("name", "kernel_release", "kernel_build_id",
                                                     "node", "pid")}
                            for a in self._actors if a.facts]}

    def close(self) -> None:
        """Revert and stop every worker's target; kill those that do not answer in time."""
        if not self._owns_ray and not self._actors:
            return
        import ray

        refs = {a.handle.close.remote(): a for a in self._actors}
        try:
            ray.wait(list(refs), num_returns=len(refs), timeout=CLOSE_TIMEOUT)
        finally:
            for actor in self._actors:
                ray.kill(actor.handle, no_restart=True)
            self._actors = []
            if self._owns_ray:
                ray.shutdown()
                self._owns_ray = False
