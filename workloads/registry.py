"""Workloads by name, built from CLI or study-file options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autotune.core.errors import BadInputError
from workloads.base import Workload


def _redis(options: dict[str, Any]) -> Workload:
    from workloads.redis import RedisOptions, RedisWorkload

    known = set(RedisOptions.__dataclass_fields__)
    unknown = set(options) - known
    if unknown:
        raise BadInputError(f"redis: unknown options {sorted(unknown)}; allowed: {sorted(known)}")
    return RedisWorkload(options=RedisOptions(**options))


WORKLOADS: dict[str, Callable[[dict[str, Any]], Workload]] = {"redis": _redis}


def make_workload(name: str, options: dict[str, Any] | None = None) -> Workload:
    """Build a workload by name; unknown names get the list of known ones."""
    try:
        factory = WORKLOADS[name]
    except KeyError:
        raise BadInputError(f"unknown workload {name!r}; choose one of: {', '.join(sorted(WORKLOADS))}") from None
    return factory(options or {})
