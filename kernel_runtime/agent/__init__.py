"""The on-target agent: JSON-lines RPC that runs knobs and processes where the kernel is."""

from __future__ import annotations

from kernel_runtime.agent.client import AgentClient
from kernel_runtime.agent.protocol import AGENT_PORT, PROTOCOL_VERSION

__all__ = ["AGENT_PORT", "PROTOCOL_VERSION", "AgentClient"]
