"""How trials run: where the measurement work of a study executes.

The study decides *what* to try (Optuna) and *when* to stop; an executor only runs jobs on
targets it owns. ``local`` owns one target; the Ray executor owns one target per actor.
"""

from __future__ import annotations

from autotune.executors.base import Executor, Job, JobResult
from autotune.executors.local import LocalExecutor

__all__ = ["Executor", "Job", "JobResult", "LocalExecutor"]
