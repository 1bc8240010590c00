"""The Executor interface: run measurement jobs, at most ``concurrency`` at a time."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from autotune.study.worker import Pair
from kernel_runtime.hitcount import Counts

JobKind = Literal["baseline", "pairs", "count", "verify"]


@dataclass(frozen=True)
class Job:
    """One unit of measurement work; ``tag`` lets the caller match results (trial number)."""

    kind: JobKind
    tag: int
    params: dict[str, int] = field(default_factory=dict)
    repeats: int = 1


@dataclass
class JobResult:
    job: Job
    pairs: list[Pair] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    counts: Counts | None = None  # a "count" job: hits per knob during one workload run
    rejected: dict[str, str] = field(default_factory=dict)  # a "verify" job: knob -> why
    error: str | None = None
    worker: str = ""


class Executor(ABC):
    """Owns isolated targets and runs jobs on them."""

    @property
    @abstractmethod
    def concurrency(self) -> int:
        """How many jobs can run at once (one per isolated kernel)."""

    @abstractmethod
    def start(self) -> None:
        """Bring up targets and workloads (calibration included)."""

    @abstractmethod
    def run(self, jobs: list[Job], on_progress: Callable[[str], None] | None = None
            ) -> Iterator[JobResult]:
        """Run the jobs, yielding each result as it finishes (order not guaranteed)."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Facts about the targets (kernel build-ids, names) for provenance."""

    @abstractmethod
    def close(self) -> None:
        """Revert every knob and stop everything started: on success, error and Ctrl-C."""
