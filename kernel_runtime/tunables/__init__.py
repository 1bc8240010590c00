"""Existing kernel tunables (sysctl and debugfs files) as journaled knobs."""

from __future__ import annotations

from kernel_runtime.tunables.curated import curated_knobs
from kernel_runtime.tunables.files import DebugfsBackend, SysctlBackend

__all__ = ["DebugfsBackend", "SysctlBackend", "curated_knobs"]
