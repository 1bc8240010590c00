"""The Workload interface and the Measurement it produces.

A Measurement is one run: its samples (one per benchmark phase), the load generator's raw
output and the provenance needed to trust or reject it later (pyperf's habit).
"""

from __future__ import annotations

import platform
import time
from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kernel_runtime.target import Target


class Sample(BaseModel):
    """One phase of a run (for redis, one command of the test mix)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    avg_ms: float | None = None
    max_ms: float | None = None


class Measurement(BaseModel):
    """One workload run: aggregate metrics, per-phase samples, raw output, provenance."""

    model_config = ConfigDict(extra="forbid")

    workload: str
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    server_cpu_s: float | None = None
    wall_s: float
    samples: list[Sample]
    raw: str = ""
    provenance: dict[str, Any] = Field(default_factory=dict)


def provenance(target: Target, tools: dict[str, str]) -> dict[str, Any]:
    """Facts that make a number reproducible: kernel build, host, tools, time."""
    k = target.kernel()
    return {
        "target": target.name,
        "kernel_release": k.release,
        "kernel_build_id": k.build_id,
        "controller_host": platform.node(),
        "cpus": target.cpu_count(),
        "tools": tools,
        "time": time.time(),
    }


class Workload(ABC):
    """A service plus its load generator on a target."""

    name: str = ""

    @abstractmethod
    def setup(self, target: Target) -> None:
        """Start the service, preload data, calibrate; raise EnvironmentProblem if impossible."""

    @abstractmethod
    def run(self, target: Target, duration: float) -> Measurement:
        """One measured run of about ``duration`` seconds."""

    @abstractmethod
    def teardown(self) -> None:
        """Stop everything ``setup`` started."""

    def options(self) -> dict[str, Any]:
        """The workload's settings, recorded with every study."""
        return {}
