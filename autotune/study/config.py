"""What a study is asked to do: one deliberate config object, validated up front."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from autotune.core.errors import BadInputError

Objective = Literal["throughput", "p99", "both"]
OBJECTIVES: tuple[str, ...] = ("throughput", "p99", "both")
# A TCG-emulated lab shows 10-50% run-to-run spread; asking it for 5% effects would need
# hundreds of repeats, so its default only looks for effects it can actually resolve.
DEFAULT_MIN_EFFECT = {"host": 0.05, "lab": 0.20}


@dataclass(frozen=True)
class StudyConfig:
    """Inputs of one tuning study (also stored on the Optuna study for provenance)."""

    workload: str = "redis"
    workload_options: dict[str, Any] = field(default_factory=dict)
    target: str = "host"
    study_name: str | None = None
    storage: str | None = None
    trials: int = 6
    timeout: float | None = None
    objective: Objective = "throughput"
    repeats: int | None = None
    max_repeats: int = 8
    duration: float = 4.0
    min_effect: float | None = None
    max_regression: float = 0.05
    preflight_runs: int = 5
    top_k: int = 2
    validate_blocks: int = 4
    knobs: tuple[str, ...] = ()
    seed: int | None = None
    workers: int = 1
    ray_address: str | None = None
    catalog: str | None = None  # SIE analysis catalog (default: the target build's cached one)
    allow_unverified_sites: bool = False
    select: bool = True  # count hits once and search only the SIE knobs the workload runs
    max_knobs: int = 8  # SIE knobs kept by selection (named --knob ones come on top)

    def validate(self) -> None:
        checks = [
            (self.objective in OBJECTIVES, f"objective {self.objective!r}; choose {', '.join(OBJECTIVES)}"),
            (self.trials >= 1, f"--trials {self.trials}: need at least 1"),
            (self.repeats is None or 1 <= self.repeats <= 50, f"--repeats {self.repeats}: choose 1..50"),
            (2 <= self.max_repeats <= 50, f"--max-repeats {self.max_repeats}: choose 2..50"),
            (0.5 <= self.duration <= 3600, f"--duration {self.duration}: choose 0.5..3600 s"),
            (self.min_effect is None or 0 < self.min_effect < 1,
             f"--min-effect {self.min_effect}: choose a fraction in (0, 1)"),
            (0 <= self.max_regression < 1, f"--max-regression {self.max_regression}: choose [0, 1)"),
            (3 <= self.preflight_runs <= 100, f"--preflight-runs {self.preflight_runs}: choose 3..100"),
            (self.top_k >= 1, f"--top-k {self.top_k}: need at least 1"),
            (2 <= self.validate_blocks <= 100, f"--validate-blocks {self.validate_blocks}: choose 2..100"),
            (self.timeout is None or self.timeout > 0, f"--timeout {self.timeout}: must be positive"),
            (1 <= self.workers <= 256, f"--workers {self.workers}: choose 1..256 (one per kernel)"),
            (1 <= self.max_knobs <= 64, f"--max-knobs {self.max_knobs}: choose 1..64"),
        ]
        for ok, msg in checks:
            if not ok:
                raise BadInputError(msg)

    def effective_min_effect(self) -> float:
        """The explicit --min-effect, else the target's default (emulated labs are noisier)."""
        if self.min_effect is not None:
            return self.min_effect
        return DEFAULT_MIN_EFFECT.get(self.target, DEFAULT_MIN_EFFECT["host"])

    def name(self) -> str:
        return self.study_name or f"{self.workload}-{self.target}"

    def primary(self) -> str:
        return "p99_ms" if self.objective == "p99" else "throughput"
