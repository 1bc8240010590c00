"""Parsing helpers shared by CLI commands (KEY=VALUE options, signal handling)."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from autotune.core.errors import BadInputError


def parse_kv(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``-o clients=50 -o tests=set,get`` -> {"clients": 50, "tests": "set,get"}."""
    out: dict[str, Any] = {}
    for item in pairs:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise BadInputError(f"option {item!r}: write KEY=VALUE, e.g. -o clients=100")
        out[key.strip().replace("-", "_")] = int(raw) if raw.strip().lstrip("-").isdigit() else raw
    return out


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C so every finally block reverts and stops processes."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
