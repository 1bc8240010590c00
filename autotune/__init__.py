"""kernel autotune: live perf-const knobs for the Linux kernel, tuned per workload.

Kept import-light on purpose: ``autotune --help`` must not pull in optuna, ray or angr.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
