"""Build the executor a study config asks for: local (one target) or Ray (one actor per kernel).

Opening targets and choosing knobs happens here rather than in the session, because with Ray
it happens inside each actor, next to the kernel it owns; the caller gets the same triple
(executor, knobs, left-out reasons) either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autotune.core.catalog import Knob
from autotune.core.errors import BadInputError
from autotune.executors.base import Executor
from autotune.executors.local import LocalExecutor
from autotune.study.config import StudyConfig
from autotune.study.worker import TrialWorker
from autotune.targets import choose_target, open_target
from kernel_runtime.sie.knobset import CatalogChoice, KnobSet
from kernel_runtime.target import Target
from workloads import make_workload

Say = Callable[[str], None]


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker needs to measure trials: plain data, so it can travel to a Ray actor."""

    target: str
    workload: str
    workload_options: dict[str, Any] = field(default_factory=dict)
    knob_names: tuple[str, ...] = ()
    duration: float = 4.0
    catalog: str | None = None
    allow_unverified_sites: bool = False
    select: bool = True

    @classmethod
    def from_config(cls, config: StudyConfig) -> WorkerSpec:
        return cls(target=config.target, workload=config.workload,
                   workload_options=dict(config.workload_options),
                   knob_names=tuple(config.knobs), duration=config.duration,
                   catalog=config.catalog, allow_unverified_sites=config.allow_unverified_sites,
                   select=config.select)

    def catalog_choice(self) -> CatalogChoice:
        return CatalogChoice(self.catalog, self.allow_unverified_sites)


def select_knobs(target: Target, names: tuple[str, ...], *, counted: bool = True
                 ) -> tuple[list[Knob], list[tuple[str, str]]]:
    """Usable knobs (optionally only the named ones) and the reasons others were left out.

    With ``counted`` every usable knob is a candidate: the study's hit-count selection
    (``autotune.study.selection``) narrows them. Without it (``--no-select``) analysis-catalog
    knobs are searched only when named: a study over every one of them (dozens) would spend
    its few trials on noise.
    """
    knobs = target.knobs()
    if names:
        known = {k.name for k in knobs}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise BadInputError(f"unknown knob(s) {unknown}; see 'autotune knob list'")
        knobs = [k for k in knobs if k.name in names]
        return target.control.usable(knobs)
    found = getattr(target, "knob_set", None)
    extra = {k.name for k in found.extras()} if isinstance(found, KnobSet) and not counted else set()
    ok, left = target.control.usable([k for k in knobs if k.name not in extra])
    if extra:
        left.append((f"{len(extra)} analysis-catalog knobs",
                     "with --no-select searched only when named: --knob NAME ('autotune knob "
                     "list' shows them)"))
    return ok, left


@dataclass
class OpenedWorker:
    worker: TrialWorker
    knobs: list[Knob]
    left_out: list[tuple[str, str]]
    restored: list[str]


def open_worker(spec: WorkerSpec, target: Target) -> OpenedWorker:
    """Recover what a dead run left changed, choose knobs, and wrap the target in a worker.

    The caller hands over ``target``; it is closed here if anything fails.
    """
    try:
        workload = make_workload(spec.workload, spec.workload_options)
        restored = target.control.recover()
        knobs, left_out = select_knobs(target, spec.knob_names, counted=spec.select)
        worker = TrialWorker(target=target, workload=workload, knobs=knobs,
                             duration=spec.duration)
    except BaseException:
        target.close()
        raise
    return OpenedWorker(worker=worker, knobs=knobs, left_out=left_out, restored=restored)


def uses_ray(config: StudyConfig) -> bool:
    return config.workers > 1 or config.ray_address is not None


def build_executor(config: StudyConfig, say: Say) -> tuple[Executor, list[Knob],
                                                           list[tuple[str, str]]]:
    """The executor for ``config`` with its targets open, the knobs to search, and why others
    were left out. The caller owns the executor and must ``close`` it."""
    spec = WorkerSpec.from_config(config)
    if uses_ray(config):
        from autotune.executors.ray_executor import RayExecutor

        ray_executor = RayExecutor(spec=spec, workers=config.workers, address=config.ray_address,
                                   say=say)
        knobs, left_out = ray_executor.open()
        return ray_executor, knobs, left_out
    chosen, _ = choose_target(spec.target)
    opened = open_worker(spec, open_target(chosen, say=say, catalog=spec.catalog_choice()))
    if opened.restored:
        say(f"restored {len(opened.restored)} knob(s) a previous run left changed: "
            f"{', '.join(opened.restored)}")
    return LocalExecutor(worker=opened.worker), opened.knobs, opened.left_out
