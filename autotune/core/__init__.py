"""Plain data types shared by every package (errors, catalog schema, expressions, kernel facts).

This is the one module that packages to the left of ``autotune`` in the data flow
(``analysis``, ``kernel_runtime``, ``workloads``) may import from ``autotune``.
"""

from __future__ import annotations

from autotune.core.errors import (
    AutotuneError,
    BadInputError,
    EnvironmentProblem,
    KernelMismatchError,
    MeasurementError,
    NoiseTooHighError,
)

__all__ = [
    "AutotuneError",
    "BadInputError",
    "EnvironmentProblem",
    "KernelMismatchError",
    "MeasurementError",
    "NoiseTooHighError",
]
