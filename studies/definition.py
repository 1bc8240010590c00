"""Nightly study definitions: one TOML file per study, validated before anything runs.

A definition says what to tune (workload, options, knobs, objective), how hard to look (the
budget, the same knobs as ``autotune run``), how often (``schedule.every_hours``) and how to
re-check yesterday's policy (``drift``). It maps onto a ``StudyConfig`` so a nightly study is
exactly a study a person could run by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from autotune.core.documents import read_document, validate_document
from autotune.core.errors import BadInputError
from autotune.study.config import StudyConfig

DEFINITIONS_DIR = Path(__file__).resolve().parent / "definitions"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Schedule(_Strict):
    every_hours: float = Field(default=24.0, gt=0, le=24 * 31)


class Budget(_Strict):
    trials: int = Field(default=12, ge=1)
    repeats: int = Field(default=3, ge=1, le=50)
    duration: float = Field(default=4.0, ge=0.5, le=3600)
    min_effect: float = Field(default=0.05, gt=0, lt=1)
    max_regression: float = Field(default=0.05, ge=0, lt=1)
    preflight_runs: int = Field(default=5, ge=3, le=100)
    top_k: int = Field(default=2, ge=1)
    validate_blocks: int = Field(default=4, ge=2, le=100)
    workers: int = Field(default=1, ge=1, le=256)
    timeout: float | None = Field(default=None, gt=0)


class Drift(_Strict):
    pairs: int = Field(default=6, ge=2, le=100)
    tolerance: float = Field(default=0.05, ge=0, lt=1)


class StudyDefinition(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    workload: str = "redis"
    workload_options: dict[str, Any] = Field(default_factory=dict)
    target: Literal["auto", "host", "lab"] = "auto"
    objective: Literal["throughput", "p99", "both"] = "throughput"
    knobs: list[str] = Field(default_factory=list)
    storage: str | None = None
    ray_address: str | None = None
    seed: int | None = None
    catalog: str | None = None  # SIE analysis catalog; default: the target build's cached one
    allow_unverified_sites: bool = False
    schedule: Schedule = Field(default_factory=Schedule)
    budget: Budget = Field(default_factory=Budget)
    drift: Drift = Field(default_factory=Drift)

    def config(self, study_name: str) -> StudyConfig:
        """The study config for one night's session of this definition."""
        b = self.budget
        return StudyConfig(workload=self.workload, workload_options=dict(self.workload_options),
                           target=self.target, study_name=study_name, storage=self.storage,
                           trials=b.trials, timeout=b.timeout, objective=self.objective,
                           repeats=b.repeats, duration=b.duration, min_effect=b.min_effect,
                           max_regression=b.max_regression, preflight_runs=b.preflight_runs,
                           top_k=b.top_k, validate_blocks=b.validate_blocks,
                           knobs=tuple(self.knobs), seed=self.seed, workers=b.workers,
                           ray_address=self.ray_address, catalog=self.catalog,
                           allow_unverified_sites=self.allow_unverified_sites)


def load_definition(path: Path) -> StudyDefinition:
    """Parse one definition; every problem becomes one line naming the file, field and fix."""
    fix = "fix the file (see studies/definitions/redis.toml)"
    data = read_document(path, kind="study definition", fmt="toml", fix=fix)
    definition = validate_document(StudyDefinition, data, path, kind="study definition", fix=fix)
    definition.config(definition.name).validate()
    return definition


def load_definitions(directory: Path) -> list[StudyDefinition]:
    """Every ``*.toml`` in ``directory``, validated all together before any study runs."""
    if not directory.is_dir():
        raise BadInputError(f"study definitions directory {directory} does not exist; "
                            "pass --definitions DIR")
    found = [load_definition(p) for p in sorted(directory.glob("*.toml"))]
    names = [d.name for d in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInputError(f"study definitions in {directory} repeat the name(s) {dupes}; "
                            "give each file its own name")
    return found
