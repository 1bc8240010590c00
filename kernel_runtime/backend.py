"""The Backend interface: how a catalog knob becomes live kernel state.

A backend does raw reads and writes only. Domain checks, journaling and revert are the
controller's job (``kernel_runtime.controller``), so every backend gets them for free and
no backend can skip them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

from autotune.core.catalog import Knob


@dataclass(frozen=True)
class Scope:
    """Who sees a value: everyone (``global``), one cgroup (by id) or one process (tgid)."""

    kind: Literal["global", "cgroup", "pid"] = "global"
    ident: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ident": self.ident}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scope:
        return cls(kind=data["kind"], ident=int(data["ident"]))

    def __str__(self) -> str:
        return "global" if self.kind == "global" else f"{self.kind}:{self.ident}"


GLOBAL = Scope()


@dataclass
class KnobState:
    """What a backend reports about one loaded knob."""

    name: str
    backend: str
    value: Any
    loaded: bool = True
    counters: dict[str, int] = field(default_factory=dict)
    alert: str | None = None


class Backend(ABC):
    """One mechanism for changing kernel behaviour (sysctl, debugfs, SIE)."""

    kind: str = ""

    @abstractmethod
    def unavailable_reason(self, knob: Knob) -> str | None:
        """Why this knob cannot be used here (missing, read-only, feature absent), or None."""

    @abstractmethod
    def load(self, knob: Knob) -> None:
        """Prepare the knob (attach probes, open files); the kernel's own value still applies."""

    @abstractmethod
    def read(self, knob: Knob, scope: Scope = GLOBAL) -> Any:
        """A JSON-serialisable token for the current state, restorable by ``restore``."""

    @abstractmethod
    def set(self, knob: Knob, value: int, scope: Scope = GLOBAL) -> None:
        """Make ``value`` live for ``scope``; the value was validated by the caller."""

    @abstractmethod
    def restore(self, knob: Knob, token: Any, scope: Scope = GLOBAL) -> None:
        """Put back a state previously returned by ``read``."""

    @abstractmethod
    def unload(self) -> None:
        """Detach everything this backend attached."""

    @abstractmethod
    def status(self) -> list[KnobState]:
        """Current state of every loaded knob."""
