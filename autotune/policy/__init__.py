"""Policy files: a study's verdict as a versioned TOML file that apply/revert enact."""

from __future__ import annotations

from autotune.policy.schema import POLICY_VERSION, Policy, PolicyKnob, load_policy, write_policy

__all__ = ["POLICY_VERSION", "Policy", "PolicyKnob", "load_policy", "write_policy"]
