"""Wire format shared by the agent and its clients: one JSON object per line.

Request ``{"id": 7, "method": "apply", "params": {...}}``; reply ``{"id": 7, "result": ...}``
or ``{"id": 7, "error": {"type": "BadInputError", "message": "..."}}``. The first request
of a connection must be ``hello`` with the per-boot token. Errors travel by class name so
the caller re-raises the same ``AutotuneError`` subclass the agent raised, and the CLI
prints the same one-line message and exit code as on a host.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from autotune.core import errors

PROTOCOL_VERSION = 1
AGENT_PORT = 7070
MAX_LINE = 64 << 20


class ProtocolError(errors.AutotuneError):
    """The peer sent something that is not our protocol (wrong port, version, or token)."""


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except json.JSONDecodeError as e:
        raise ProtocolError(f"agent protocol: unreadable line ({e})") from None
    if not isinstance(message, dict):
        raise ProtocolError("agent protocol: a message must be a JSON object")
    return message


def error_payload(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__}


def raise_remote(payload: dict[str, str], method: str) -> NoReturn:
    """Re-raise an agent-side error as the same AutotuneError subclass, or the root class."""
    cls = getattr(errors, payload.get("type", ""), None)
    message = payload.get("message", "unknown error")
    if isinstance(cls, type) and issubclass(cls, errors.AutotuneError):
        raise cls(message)
    raise errors.AutotuneError(f"lab agent failed in {method}: {payload.get('type')}: {message}")
