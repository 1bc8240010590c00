"""Enact and undo policies on this machine, checked before anything is written.

A policy is refused whole if it was made for another kernel build, names a knob this
kernel lacks, or carries a value outside the knob's domain here: nothing half-applied.
Applied values stay (a ``policy`` journal session) until ``autotune revert``.
"""

from __future__ import annotations

from dataclasses import dataclass

from autotune.core.catalog import Knob
from autotune.core.errors import BadInputError, EnvironmentProblem, KernelMismatchError
from autotune.policy.schema import Policy
from kernel_runtime.host import HostTarget
from kernel_runtime.sie.knobset import DEFAULT_CHOICE, CatalogChoice


@dataclass(frozen=True)
class PlannedWrite:
    knob: Knob
    value: int
    current: str

    def describe(self) -> str:
        where = f"/{self.knob.backend}/{self.knob.path}" if self.knob.path else self.knob.backend
        return f"{self.knob.name}: {self.current} -> {self.value}  ({self.knob.backend} {where})"


def plan(policy: Policy, target: HostTarget) -> list[PlannedWrite]:
    """Check the policy against this kernel and return the writes it would make."""
    kernel = target.kernel()
    if policy.kernel.build_id != kernel.build_id:
        raise KernelMismatchError(
            f"policy is for kernel {policy.kernel.release} build {policy.kernel.build_id[:12]}, this "
            f"machine runs {kernel.release} build {kernel.build_id[:12]}: re-tune on this build")
    known = {k.name: k for k in target.knobs()}
    _, left = target.control.usable([known[k.name] for k in policy.knobs if k.name in known])
    unusable = dict(left)
    writes = []
    for pk in policy.knobs:
        knob = known.get(pk.name)
        if knob is None:
            raise BadInputError(f"policy knob {pk.name!r} is unknown on this kernel; "
                                "remove it or re-export the policy")
        if pk.name in unusable:
            raise EnvironmentProblem(f"policy knob {pk.name!r} cannot be set here: {unusable[pk.name]}")
        if pk.backend != knob.backend:
            raise BadInputError(f"policy knob {pk.name!r} says backend {pk.backend}, this kernel has "
                                f"it as {knob.backend}; re-export the policy")
        if pk.scope != "global":
            raise BadInputError(f"policy knob {pk.name!r}: scope {pk.scope!r} not supported by "
                                "'apply' yet; use global")
        knob.domain.check(pk.name, pk.value)
        backend = target.control.backend_for(knob)
        writes.append(PlannedWrite(knob, pk.value, str(backend.read(knob)).strip()))
    return writes


def apply_policy(policy: Policy, *, dry_run: bool = False,
                 catalog: CatalogChoice = DEFAULT_CHOICE) -> list[PlannedWrite]:
    """Replace any applied policy by this one; with dry_run only plan."""
    target = HostTarget(session_kind="policy", catalog=catalog)
    writes = plan(policy, target)
    if dry_run:
        return writes
    target.control.recover(include_policies=True)
    target.control.apply({w.knob.name: w.value for w in writes}, {w.knob.name: w.knob for w in writes})
    return writes


def revert_all(catalog: CatalogChoice = DEFAULT_CHOICE) -> list[str]:
    """Undo applied policies and writes left by dead runs; returns restored knob names.

    The journal carries each knob's full spec, so restoring needs no catalog lookup; the
    catalog only decides which SIE backend opens (and a foreign one is refused)."""
    return HostTarget(session_kind="policy", catalog=catalog).control.recover(include_policies=True)
