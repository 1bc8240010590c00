"""The policy file schema (TOML, versioned, validated) and its atomic reader/writer."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field

from autotune.core.documents import read_document, validate_document
from autotune.core.errors import BadInputError

POLICY_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyKnob(_Strict):
    name: str
    backend: Literal["sie", "sysctl", "debugfs"]
    value: int
    scope: str = "global"


class MetricEvidence(_Strict):
    effect: float
    ci_low: float
    ci_high: float
    n: int


class Evidence(_Strict):
    study: str
    storage: str
    verdict: Literal["improved", "no-change"]
    summary: str
    objective: str
    trials: int
    validated_trial: int | None = None
    metrics: dict[str, MetricEvidence] = Field(default_factory=dict)
    preflight_cv: float | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)


class PolicyKernel(_Strict):
    release: str
    build_id: str


class Policy(_Strict):
    version: int = POLICY_VERSION
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    workload: str
    target: str
    kernel: PolicyKernel
    consistency: Literal["immediate", "per-task", "global"] = "immediate"
    knobs: list[PolicyKnob] = Field(default_factory=list)
    evidence: Evidence


def load_policy(path: Path) -> Policy:
    """Parse and validate a policy file, each problem as one line with the fix."""
    fix = "re-export it with 'autotune policy export'"
    data = read_document(path, kind="policy", fmt="toml", fix=fix)
    if data.get("version") != POLICY_VERSION:
        raise BadInputError(f"policy {path}: version {data.get('version')!r}, this autotune reads "
                            f"version {POLICY_VERSION}; {fix}")
    policy = validate_document(Policy, data, path, kind="policy", fix=fix)
    names = [k.name for k in policy.knobs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInputError(f"policy {path}: knob(s) {dupes} listed twice; keep one entry each")
    return policy


def write_policy(policy: Policy, path: Path) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a policy."""
    text = tomli_w.dumps(_drop_none(policy.model_dump(mode="json")))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _drop_none(value: Any) -> Any:
    """TOML has no null: omit absent values at every depth (provenance dicts included)."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value if v is not None]
    return value
