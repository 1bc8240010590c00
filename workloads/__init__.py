"""Real services and load generators, driven on a Target, producing Measurements."""

from __future__ import annotations

from workloads.base import Measurement, Sample, Workload
from workloads.registry import WORKLOADS, make_workload

__all__ = ["WORKLOADS", "Measurement", "Sample", "Workload", "make_workload"]
